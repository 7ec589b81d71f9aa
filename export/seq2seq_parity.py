"""Check the encoder and decoder graphs against the PyTorch model.

Four comparisons, on real sentences tokenized with the model's tokenizer.json (fp32 graphs
are held to an absolute difference, a quantized variant to a cosine floor; both recorded):
- the encoder's last_hidden_state (over real tokens) against transformers' encoder;
- the decoder's logits at every step of an onnxruntime greedy loop (one token per row per
  step) against one teacher-forced transformers forward over the same decoder tokens;
- the decoder's logits for those decoder tokens fed CHUNK at a time per row, rows at
  different lengths (as a step that verifies drafted tokens runs), against the same forward;
  the decoder figures recorded are the worse of the two decoder comparisons;
- the greedy token ids against `model.generate(do_sample=False)` with a plain generation
  config (no length constraints, no n-gram rules), which must be identical.

Both decoder loops feed the cache the way the server does: fixed-capacity buffers bound in
place, with slots the rows have not written yet masked (the capacity is larger than the
steps), so the in-place write and the masking of unwritten slots (and, in chunks, of the
chunk's later tokens) are exercised too.
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from tokenizers import Tokenizer
from transformers import GenerationConfig

from export.parity import SENTENCES
from export.seq2seq import Seq2Seq
from service.model_format import (
    CROSS,
    LAST_HIDDEN_STATE,
    LOGITS,
    PAST,
    PRESENT,
    Seq2SeqParity,
    cache_names,
)
from service.runtime.engine import run_in_place

MAX_ABS_DIFF_LIMIT = 1e-4
STEPS = 16
CHUNK = 3  # decoder tokens per row per step in the multi-token comparison
SENTENCE_COUNT = 8


def check(
    model: Seq2Seq,
    encoder: Path,
    decoder: Path,
    tokenizer: Path,
    max_length: int,
    *,
    min_cosine: float | None = None,
) -> Seq2SeqParity:
    """`min_cosine` None: the fp32 gate (max abs diff ≤ MAX_ABS_DIFF_LIMIT times the largest
    reference value where that is over 1, the encoder's and the logits' each; the logits'
    limit is recorded; greedy ids all identical); else a variant's: every encoder state's
    and every step's logits' cosine ≥ min_cosine, with the greedy ids that stay identical
    recorded, not required."""
    ids, mask = tokenize(tokenizer, model.generation.pad_token_id, max_length)
    encoder_session = ort.InferenceSession(str(encoder), providers=["CPUExecutionProvider"])
    decoder_session = ort.InferenceSession(str(decoder), providers=["CPUExecutionProvider"])
    encoded = dict(
        zip(
            model.encoder_outputs,
            encoder_session.run(model.encoder_outputs, {"input_ids": ids, "attention_mask": mask}),
            strict=True,
        )
    )
    with torch.inference_mode():
        reference_hidden = model.model.get_encoder()(
            input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
        ).last_hidden_state.numpy()
    real = mask.astype(bool)
    encoder_diff = float(np.abs(encoded[LAST_HIDDEN_STATE] - reference_hidden)[real].max())
    encoder_cosine = min_cosine_of(encoded[LAST_HIDDEN_STATE][real], reference_hidden[real])

    tokens, logits = _greedy(model, decoder_session, encoded, mask)
    start = model.generation.decoder_start_token_id
    decoder_ids = np.concatenate([np.full((len(ids), 1), start), tokens[:, :-1]], axis=1)
    with torch.inference_mode():
        reference_logits = model.model(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            decoder_input_ids=torch.from_numpy(decoder_ids),
        ).logits.numpy()
    lengths = eos_lengths(tokens, model.generation.eos_token_ids)
    decoder_diff = max(
        float(np.abs(logits[row, :length] - reference_logits[row, :length]).max())
        for row, length in enumerate(lengths)
    )
    decoder_cosine = min(
        min_cosine_of(logits[row, :length], reference_logits[row, :length])
        for row, length in enumerate(lengths)
    )
    chunk_logits, covered = _chunked(model, decoder_session, encoded, mask, decoder_ids)
    # The same steps as above: each row's positions up to its first end-of-sequence token.
    compared = covered & (np.arange(STEPS)[None, :] < np.array(lengths)[:, None])
    if compared.any():
        chunked, reference = chunk_logits[compared], reference_logits[compared]
        decoder_diff = max(decoder_diff, float(np.abs(chunked - reference).max()))
        decoder_cosine = min(decoder_cosine, min_cosine_of(chunked, reference))
    generated = _generate(model, ids, mask)
    identical = sum(
        list(tokens[row, :length]) == generated[row] for row, length in enumerate(lengths)
    )
    # fp32 rounding grows with the values' size: the limit is relative past magnitude 1.
    encoder_limit = MAX_ABS_DIFF_LIMIT * max(1.0, float(np.abs(reference_hidden[real]).max()))
    decoder_limit = MAX_ABS_DIFF_LIMIT * max(1.0, float(np.abs(reference_logits).max()))
    if min_cosine is None:
        passed = (
            encoder_diff <= encoder_limit and decoder_diff <= decoder_limit
        ) and identical == len(ids)
    else:
        passed = min(encoder_cosine, decoder_cosine) >= min_cosine
    return Seq2SeqParity(
        reference="pytorch",
        sentences=len(ids),
        steps=STEPS,
        encoder_max_abs_diff=encoder_diff,
        decoder_max_abs_diff=decoder_diff,
        max_abs_diff_limit=decoder_limit if min_cosine is None else None,
        encoder_min_cosine=encoder_cosine,
        decoder_min_cosine=decoder_cosine,
        min_cosine_limit=min_cosine,
        greedy_identical=identical,
        passed=passed,
    )


def min_cosine_of(a: np.ndarray, b: np.ndarray) -> float:
    """The lowest cosine between matching rows of two [rows, width] arrays."""
    dot = (a * b).sum(axis=-1)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return float((dot / np.maximum(norms, 1e-30)).min())


def tokenize(path: Path, pad: int, max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """The parity sentences' ids and mask, right-padded with `pad` to the longest."""
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    encodings = tokenizer.encode_batch(list(SENTENCES[:SENTENCE_COUNT]))
    width = max(len(e.ids) for e in encodings)
    ids = np.full((len(encodings), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, encoding in enumerate(encodings):
        ids[row, : len(encoding.ids)] = encoding.ids
        mask[row, : len(encoding.ids)] = 1
    return ids, mask


class _Decoder:
    """The decoder step over one batch's fixed-capacity caches, bound in place: each present
    is written into its past's own buffer, as the server runs it."""

    def __init__(
        self,
        model: Seq2Seq,
        session: ort.InferenceSession,
        encoded: dict[str, np.ndarray],
        mask: np.ndarray,
    ) -> None:
        rows = len(mask)
        capacity = STEPS + 3  # slots never written stay masked
        caches = {
            name: np.zeros((rows, model.num_heads, capacity, model.d_kv), dtype=np.float32)
            for name in cache_names(PAST, model.num_layers)
        }
        self.feeds: dict[str, np.ndarray] = dict(caches)
        self.feeds |= {name: encoded[name] for name in cache_names(CROSS, model.num_layers)}
        self.feeds["encoder_attention_mask"] = mask
        self.into = dict(zip(cache_names(PRESENT, model.num_layers), caches.values(), strict=True))
        self.model, self.session = model, session

    def step(self, ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """`ids`, `positions` [rows, tokens] → every token's logits [rows, tokens, vocab]."""
        self.feeds |= {"input_ids": ids, "position_ids": positions}
        outputs = run_in_place(self.session, self.feeds, self.into, self.model.decoder_outputs)
        return dict(zip(self.model.decoder_outputs, outputs, strict=True))[LOGITS]


def _greedy(
    model: Seq2Seq, session: ort.InferenceSession, encoded: dict[str, np.ndarray], mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """STEPS argmax tokens per row, and the logits each step produced: [rows, STEPS, vocab]."""
    rows = len(mask)
    decoder = _Decoder(model, session, encoded, mask)
    current = np.full((rows, 1), model.generation.decoder_start_token_id, dtype=np.int64)
    tokens, logits = [], []
    for step in range(STEPS):
        step_logits = decoder.step(current, np.full((rows, 1), step, np.int64))[:, 0]
        current = step_logits.argmax(axis=-1)[:, None].astype(np.int64)
        tokens.append(current[:, 0])
        logits.append(step_logits)
    return np.stack(tokens, axis=1), np.stack(logits, axis=1)


def _chunked(
    model: Seq2Seq,
    session: ort.InferenceSession,
    encoded: dict[str, np.ndarray],
    mask: np.ndarray,
    decoder_ids: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The logits of `decoder_ids` [rows, STEPS] fed CHUNK tokens per row per step, rows at
    different lengths: row r first takes r % CHUNK tokens one at a time (a row already there
    writes its next slot early, with the key and value its chunk writes there again). Returns
    the logits [rows, STEPS, vocab] and the positions they cover [rows, STEPS]."""
    rows = len(mask)
    decoder = _Decoder(model, session, encoded, mask)
    offsets = np.arange(rows, dtype=np.int64) % CHUNK
    every = np.arange(rows)[:, None]
    for step in range(int(offsets.max(initial=0))):
        positions = np.minimum(step, offsets)[:, None]
        decoder.step(decoder_ids[every, positions], positions)
    logits = np.zeros((rows, STEPS, model.vocab_size), np.float32)
    covered = np.zeros((rows, STEPS), bool)
    for first in range(0, STEPS - CHUNK - int(offsets.max(initial=0)) + 1, CHUNK):
        positions = offsets[:, None] + first + np.arange(CHUNK, dtype=np.int64)[None, :]
        logits[every, positions] = decoder.step(decoder_ids[every, positions], positions)
        covered[every, positions] = True
    return logits, covered


def eos_lengths(tokens: np.ndarray, eos: list[int]) -> list[int]:
    """Tokens per row up to and including the first end-of-sequence token."""
    lengths = []
    for row in tokens:
        ends = np.flatnonzero(np.isin(row, eos))
        lengths.append(int(ends[0]) + 1 if len(ends) else len(row))
    return lengths


def _generate(model: Seq2Seq, ids: np.ndarray, mask: np.ndarray) -> list[list[int]]:
    plain = GenerationConfig(
        decoder_start_token_id=model.generation.decoder_start_token_id,
        eos_token_id=model.generation.eos_token_ids,
        pad_token_id=model.generation.pad_token_id,
        max_new_tokens=STEPS,
        do_sample=False,
        num_beams=1,
    )
    # generate() fills what a config leaves unset from the model's own generation config
    # (n-gram rules, forced tokens): the plain one stands in for it for this call.
    own, model.model.generation_config = model.model.generation_config, plain
    try:
        with torch.inference_mode():
            output = model.model.generate(
                input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)
            )
    finally:
        model.model.generation_config = own
    generated = output[:, 1:].numpy()
    return [
        list(row[:length])
        for row, length in zip(generated, eos_lengths(generated, plain.eos_token_id), strict=True)
    ]
