"""The searches on crafted logits: why each finishes, and sampling's warpers against
transformers' own (TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)."""

from __future__ import annotations

import numpy as np
import pytest

from service.seq2seq.search import (
    Beam,
    Greedy,
    Sample,
    Sampling,
    SearchSettings,
    warped,
)

EOS, VOCAB = 2, 10


def settings(max_new: int = 5, beams: int = 1) -> SearchSettings:
    return SearchSettings(0, (EOS,), max_new, beams, 1.0, False, 0, 0, None, None)


def logits_for(token: int, rows: int = 1) -> np.ndarray:
    out = np.zeros((rows, VOCAB), dtype=np.float32)
    out[:, token] = 5.0
    return out


def test_greedy_finishes_on_eos_on_length_and_on_a_stop_string() -> None:
    prompt = [7, 8, 9]
    search = Greedy(settings(), prompt)
    assert search.next_tokens() == [9]  # a causal LM's search continues the prompt
    assert not search.advance(logits_for(4)).done
    assert search.advance(logits_for(EOS)).done and search.finish_reason == "eos"
    assert search.result() == [4, EOS]

    search = Greedy(settings(max_new=3), prompt)
    steps = [search.advance(logits_for(4)).done for _ in range(3)]
    assert steps == [False, False, True] and search.finish_reason == "length"

    search = Greedy(settings(), prompt, stop=lambda ids: ids[-2:] == [4, 5])
    assert not search.advance(logits_for(4)).done
    assert search.advance(logits_for(5)).done and search.finish_reason == "stop"


def test_beam_search_reports_eos_or_length() -> None:
    search = Beam(settings(max_new=2, beams=2), [7, 8])
    assert search.rows == 2 and search.next_tokens() == [8, 8]
    search.advance(logits_for(4, rows=2))
    assert search.advance(logits_for(5, rows=2)).done
    assert search.finish_reason == "length" and len(search.result()) == 2
    search = Beam(settings(max_new=4, beams=2))
    while not search.advance(logits_for(EOS, rows=2)).done:
        pass
    assert search.finish_reason == "eos" and search.result()[-1] == EOS


@pytest.mark.parametrize(
    ("temperature", "top_k", "top_p"), [(1.0, 0, 1.0), (0.7, 3, 1.0), (1.3, 0, 0.6), (0.5, 4, 0.9)]
)
def test_warped_probabilities_equal_transformers(
    temperature: float, top_k: int, top_p: float
) -> None:
    import torch
    from transformers.generation.logits_process import (
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    scores = np.random.default_rng(0).normal(size=VOCAB * 5).astype(np.float32)
    theirs = torch.from_numpy(scores)[None, :]
    theirs = TemperatureLogitsWarper(temperature)(None, theirs)
    if top_k:
        theirs = TopKLogitsWarper(top_k)(None, theirs)
    if top_p < 1.0:
        theirs = TopPLogitsWarper(top_p)(None, theirs)
    expected = torch.softmax(theirs.double(), dim=-1)[0].numpy()
    ours = warped(scores, Sampling(temperature, top_p, top_k, seed=1))
    assert np.allclose(ours, expected, atol=1e-6)
    assert ((ours > 0) == (expected > 0)).all()


def test_a_seed_gives_the_same_tokens() -> None:
    scores = np.random.default_rng(1).normal(size=(1, VOCAB)).astype(np.float32)
    runs = []
    for seed in (5, 5, 6):
        search = Sample(settings(max_new=20), Sampling(3.0, 1.0, 0, seed), [1])
        while not search.advance(scores).done:
            pass
        runs.append(search.result())
    assert runs[0] == runs[1] and runs[0] != runs[2]
