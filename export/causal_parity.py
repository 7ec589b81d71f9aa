"""Check a causal LM's step graph against the PyTorch model, the way the server runs it.

On real prompts tokenized as transformers' `tokenizer(prompt)` does (tokenizer.json, its own
special tokens): each prompt goes into its own row of fixed-capacity cache buffers bound in
place, in chunks of PREFILL_CHUNK tokens (one row per call, as the server prefills; each
chunk asks for every one of its tokens' logits, as verifying drafted tokens does), then
every row takes STEPS greedy steps together, rows at different lengths in one call. Every
token's and step's logits are compared with one teacher-forced transformers forward over
the same tokens, and the greedy ids with `generate(do_sample=False)`, which must be
identical for fp32.
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from tokenizers import Tokenizer
from transformers import GenerationConfig

from export.causal import Causal
from export.parity import SENTENCES
from export.seq2seq_parity import eos_lengths, min_cosine_of
from service.model_format import LOGITS, PAST, PRESENT, CausalParity, cache_names
from service.runtime.engine import run_in_place

MAX_ABS_DIFF_LIMIT = 1e-4
STEPS = 12
PROMPT_COUNT = 4
PREFILL_CHUNK = 5  # small, so that every prompt takes several chunks


def prompts(tokenizer: Path, window: int) -> list[list[int]]:
    """The parity prompts' ids, special tokens as the tokenizer adds them."""
    tok = Tokenizer.from_file(str(tokenizer))
    tok.no_padding()
    tok.enable_truncation(window - STEPS - 1)
    return [e.ids for e in tok.encode_batch(list(SENTENCES[:PROMPT_COUNT]))]


def check(
    model: Causal, graph: Path, tokenizer: Path, *, min_cosine: float | None = None
) -> CausalParity:
    """`min_cosine` None: the fp32 gate (max abs diff ≤ MAX_ABS_DIFF_LIMIT, greedy ids all
    identical); else a variant's: every position's logits' cosine ≥ min_cosine, with the
    greedy ids that stay identical recorded, not required."""
    rows = prompts(tokenizer, model.context_window)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    ours, tokens = _run(model, session, rows)
    diffs, cosines, identical = [], [], 0
    generated = _generate(model, rows)
    eos = model.generation.eos_token_ids
    for prompt, logits, chosen, theirs in zip(rows, ours, tokens, generated, strict=True):
        length = eos_lengths(np.array([chosen]), eos)[0]
        full = [*prompt, *chosen[: length - 1]]
        with torch.inference_mode():
            reference = model.model(input_ids=torch.tensor([full])).logits[0].numpy()
        # The steps after the last token the reference holds predict past it: left out.
        positions = sorted(logits)[: len(logits) - (STEPS - length + 1)]
        mine = np.stack([logits[p] for p in positions])
        wanted = reference[positions]
        diffs.append(float(np.abs(mine - wanted).max()))
        cosines.append(min_cosine_of(mine, wanted))
        identical += list(chosen[:length]) == theirs
    diff = max(diffs)
    if min_cosine is None:
        passed = diff <= MAX_ABS_DIFF_LIMIT and identical == len(rows)
    else:
        passed = min(cosines) >= min_cosine
    return CausalParity(
        reference="pytorch",
        prompts=len(rows),
        steps=STEPS,
        prefill_chunk=PREFILL_CHUNK,
        max_abs_diff=diff,
        max_abs_diff_limit=MAX_ABS_DIFF_LIMIT if min_cosine is None else None,
        min_cosine=min(cosines),
        min_cosine_limit=min_cosine,
        greedy_identical=identical,
        passed=passed,
    )


def _run(
    model: Causal, session: ort.InferenceSession, rows: list[list[int]]
) -> tuple[list[dict[int, np.ndarray]], list[list[int]]]:
    """Each row's logits by the position they were computed at, and its STEPS greedy ids."""
    past, present = cache_names(PAST, model.num_layers), cache_names(PRESENT, model.num_layers)
    capacity = max(len(r) for r in rows) + STEPS + 3  # slots never written stay masked
    shape = (len(rows), model.num_kv_heads, capacity, model.head_dim)
    caches = {name: np.zeros(shape, dtype=np.float32) for name in past}
    logits: list[dict[int, np.ndarray]] = [{} for _ in rows]
    last = np.zeros((len(rows), model.vocab_size), dtype=np.float32)

    def step(
        ids: np.ndarray, positions: np.ndarray, wanted: np.ndarray, views: dict[str, np.ndarray]
    ) -> np.ndarray:
        feeds = {"input_ids": ids, "position_ids": positions, "logit_positions": wanted}
        feeds |= views
        into = dict(zip(present, views.values(), strict=True))  # written in place
        out = run_in_place(session, feeds, into, model.outputs)
        return out[model.outputs.index(LOGITS)]

    for r, prompt in enumerate(rows):
        views = {name: caches[name][r : r + 1] for name in past}
        for start in range(0, len(prompt), PREFILL_CHUNK):
            chunk = np.array([prompt[start : start + PREFILL_CHUNK]], dtype=np.int64)
            positions = np.arange(start, start + chunk.shape[1], dtype=np.int64)[None, :]
            every = np.arange(chunk.shape[1], dtype=np.int64)
            out = step(chunk, positions, every, views)
            for offset in range(chunk.shape[1]):
                logits[r][start + offset] = out[0, offset]
            last[r] = out[0, -1]
    lengths = np.array([len(p) for p in rows], dtype=np.int64)
    tokens: list[list[int]] = [[] for _ in rows]
    for _ in range(STEPS):
        chosen = last.argmax(axis=-1)
        for r in range(len(rows)):
            tokens[r].append(int(chosen[r]))
        only = np.zeros(1, dtype=np.int64)
        last = step(chosen[:, None].astype(np.int64), lengths[:, None], only, caches)[:, 0]
        for r in range(len(rows)):
            logits[r][int(lengths[r])] = last[r]
        lengths += 1
    return logits, tokens


def _generate(model: Causal, rows: list[list[int]]) -> list[list[int]]:
    plain = GenerationConfig(
        eos_token_id=model.generation.eos_token_ids,
        pad_token_id=model.generation.pad_token_id,
        max_new_tokens=STEPS,
        do_sample=False,
        num_beams=1,
    )
    own, model.model.generation_config = model.model.generation_config, plain
    found = []
    try:
        for prompt in rows:  # one by one: no padding to reason about
            with torch.inference_mode():
                output = model.model.generate(
                    input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt))
                )
            generated = output[0, len(prompt) :].numpy()
            length = eos_lengths(generated[None, :], plain.eos_token_id)[0]
            found.append([int(t) for t in generated[:length]])
    finally:
        model.model.generation_config = own
    return found
