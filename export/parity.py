"""Check an ONNX graph against the PyTorch model on real sentences.

The graph runs through onnxruntime twice: the sentences as one padded batch, and one at a time
(unpadded). Both are compared with PyTorch's output over real (non-padding) tokens, and by a
cosine per row: of the mean-pooled embeddings for an encoder, of the whole row of logits for a
span question-answering head (which reads sentence pairs, as questions and contexts).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from service.model_format import Parity
from service.tasks.span_decoding import score_window

# Varied lengths, punctuation, numbers, casing and a little non-ASCII, so that padding, long
# rows and unusual word pieces are all exercised.
SENTENCES: tuple[str, ...] = (
    "Hello!",
    "The cat sat on the mat.",
    "What time does the 7:45 train to Boston leave?",
    "Prices rose 3.5% in March, the fastest pace since 1991.",
    'She said, "I\'ll be there by noon" — and she was.',
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Is it true that water boils at 100 °C at sea level?",
    "The quick brown fox jumps over the lazy dog; the dog doesn't mind.",
    "OK.",
    "In 2023, the company shipped 1,250,000 units across 42 countries and hired 3,100 people.",
    "Attention layers let every token look at every other token in the same sequence, "
    "which is why their cost grows with the square of the sequence length.",
    "Don't forget: e-mail addresses, URLs (https://example.com) and hashtags #like-this "
    "are tokenized into many small pieces.",
    "Mount Everest, at 8,849 metres, is the highest mountain above sea level.",
    "Can you recommend a good book about the history of mathematics?",
    "After the storm passed, the villagers gathered in the square to count the damage, share "
    "what food they had left, and decide together how to rebuild the bridge over the river "
    "before the first snow of winter cut them off from the market town.",
    "Résumé, café and naïve are borrowed words.",
)
# (question, context) pairs for span heads: each sentence asks about a later one.
PAIRS: tuple[tuple[str, str], ...] = tuple(
    (question, SENTENCES[(index + 5) % len(SENTENCES)]) for index, question in enumerate(SENTENCES)
)


@dataclass(frozen=True)
class Limits:
    """None: recorded, not enforced."""

    max_abs_diff: float | None
    min_cosine: float
    mean_cosine: float | None


FP32_LIMITS = Limits(max_abs_diff=1e-4, min_cosine=0.9999, mean_cosine=None)
# The variants' floors (bf16, fp16, int8) are in export/variants.py FLOORS.


@dataclass(frozen=True)
class Batch:
    """The sentences tokenized and padded to the longest: one array per graph input."""

    feeds: dict[str, np.ndarray]
    lengths: list[int]

    @property
    def mask(self) -> np.ndarray:
        return self.feeds["attention_mask"]

    def row(self, index: int) -> dict[str, np.ndarray]:
        length = self.lengths[index]
        return {name: array[index : index + 1, :length] for name, array in self.feeds.items()}


def tokenize(
    tokenizer_path: Path,
    input_names: list[str],
    pad_token_id: int,
    max_length: int,
    pairs: bool = False,
) -> Batch:
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    # As the server does: no padding from the file's settings, pad to the batch's longest row.
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length)
    encodings = tokenizer.encode_batch(list(PAIRS if pairs else SENTENCES))
    lengths = [len(encoding.ids) for encoding in encodings]
    shape = (len(encodings), max(lengths))
    columns = {
        "input_ids": np.full(shape, pad_token_id, dtype=np.int64),
        "attention_mask": np.zeros(shape, dtype=np.int64),
        "token_type_ids": np.zeros(shape, dtype=np.int64),
    }
    for row, encoding in enumerate(encodings):
        length = lengths[row]
        columns["input_ids"][row, :length] = encoding.ids
        columns["attention_mask"][row, :length] = encoding.attention_mask
        columns["token_type_ids"][row, :length] = encoding.type_ids
    return Batch(feeds={name: columns[name] for name in input_names}, lengths=lengths)


def mean_over_tokens(row: np.ndarray) -> np.ndarray:
    return np.asarray(row.mean(axis=0))


Runner = Callable[[Mapping[str, np.ndarray]], list[np.ndarray]]


def graph_runner(onnx_path: Path) -> Runner:
    """The graph in an onnxruntime session on the CPU provider."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def run(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        outputs: list[np.ndarray] = session.run(None, dict(feeds))
        return outputs

    return run


def same_best_span(max_answer_length: int) -> Callable[[np.ndarray, np.ndarray], bool]:
    """Whether two rows of [tokens, 2] start and end logits give the same best answer, as
    the server decodes one (score_window, every token a candidate)."""

    def best(logits: np.ndarray) -> tuple[int, int] | None:
        candidates = np.ones(len(logits), dtype=bool)
        spans = score_window(logits[:, 0], logits[:, 1], candidates, max_answer_length, 1).spans
        return (spans[0][0], spans[0][1]) if spans else None

    return lambda actual, expected: best(actual) == best(expected)


def compare(
    graph: Path | Runner,
    batch: Batch,
    reference: np.ndarray,
    limits: Limits,
    pool: Callable[[np.ndarray], np.ndarray] = mean_over_tokens,
    same_answer: Callable[[np.ndarray, np.ndarray], bool] | None = None,
) -> Parity:
    """Compare the graph (a file run on the CPU provider, or a runner) with `reference`
    (PyTorch's output for the padded batch; several outputs stacked on a last axis). `pool`
    turns one row's real tokens into the vector whose cosine is checked; `same_answer`, when
    given, must hold for every row's (actual, expected) pair as well."""
    runner = graph_runner(graph) if isinstance(graph, Path) else graph

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        outputs = runner(feeds)
        return outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=-1)

    batched = run(batch.feeds)
    singles = [run(batch.row(index))[0] for index in range(len(batch.lengths))]
    max_abs_diff = 0.0
    cosines: list[float] = []
    agreed = 0  # rows whose answer is PyTorch's, batched and alone
    for index, length in enumerate(batch.lengths):
        expected = reference[index, :length].astype(np.float64)
        row_agrees = True
        for output in (batched[index, :length], singles[index]):
            actual = output.astype(np.float64)
            max_abs_diff = max(max_abs_diff, float(np.abs(actual - expected).max()))
            # Every position up to `length` is a real token: the plain mean is the masked mean.
            cosines.append(_cosine(pool(actual), pool(expected)))
            row_agrees &= same_answer is None or same_answer(actual, expected)
        agreed += row_agrees
    min_cosine, mean_cosine = min(cosines), float(np.mean(cosines))
    identical = None if same_answer is None else agreed
    passed = (
        (identical is None or identical == len(batch.lengths))
        and min_cosine >= limits.min_cosine
        and (limits.mean_cosine is None or mean_cosine >= limits.mean_cosine)
        and (limits.max_abs_diff is None or max_abs_diff <= limits.max_abs_diff)
    )
    return Parity(
        reference="pytorch",
        sentences=len(batch.lengths),
        max_abs_diff=max_abs_diff,
        min_cosine=min_cosine,
        mean_cosine=mean_cosine,
        max_abs_diff_limit=limits.max_abs_diff,
        min_cosine_limit=limits.min_cosine,
        mean_cosine_limit=limits.mean_cosine,
        identical_answers=identical,
        passed=passed,
    )


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
