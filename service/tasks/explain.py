"""What a model attended to: token weights from its own attention probabilities (an
encoder's self-attention; a seq2seq model's cross-attention, CrossAttentionExplainer below).

The fused graph computes attention inside its Attention nodes and never shows it, so the
explanations come from the model's explanation graph (explain.onnx, export/explain.py),
loaded the first time a request asks for one and run through its own scheduler: requests
that do not ask keep the fused graph's queue and speed.

Two methods, both on the head-averaged attention A_l [query, key] of each layer l:
- "rollout" (Abnar & Zuidema 2020): R = Â_L ... Â_2 Â_1 with Â_l = 0.5 A_l + 0.5 I, rows
  renormalized: how much each output position draws on each input token through every
  layer, the residual connections counted.
- "attention:L": layer L's A_L alone.

A text's weights are the mean of those rows over its real tokens (a mean-pooled embedding
draws on every position alike; a [CLS]-pooled one takes row 0), over the tokens that cover
text (special tokens, which cover none, are left out), renormalized to sum to 1. A span
answer's weights are the mean of the rows of the tokens covering the answer, in the window
it was read from, over that window's context tokens.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from service.batching.scheduler import BatchingConfig, Scheduler
from service.errors import InvalidArgument, TaskNotSupported
from service.metrics import Metrics
from service.model_format import ExplainSpec, sha256_file
from service.runtime.engine import Engine
from service.runtime.precision import Route
from service.tasks.pipelines import Answers, Summary
from service.tasks.span_windows import CONTEXT, Window
from service.tasks.spans import ScoredSpan
from service.tasks.tokenizer import TextTokenizer

if TYPE_CHECKING:
    from service.repository import Model

log = logging.getLogger(__name__)

ROLLOUT, ATTENTION = "rollout", "attention"
# Attention outputs are layers x heads x length² floats per row: a smaller token budget
# than the fused graph's keeps one batch's outputs to tens of MB.
EXPLAIN_BATCH_TOKENS = 2048


@dataclass(frozen=True, slots=True)
class TokenWeight:
    token: str  # the text it covers
    start: int  # code points into the text it came from
    end: int
    weight: float


@dataclass(frozen=True, slots=True)
class Explanation:
    tokens: list[TokenWeight]  # in text order; weights >= 0, summing to 1
    method: str  # "rollout" or "attention:L"
    target: str  # what the weights explain


@dataclass(frozen=True, slots=True)
class Method:
    """How to weigh: rollout, or one layer's attention (layer counted from 1)."""

    name: str
    layer: int

    @property
    def label(self) -> str:
        return ROLLOUT if self.name == ROLLOUT else f"{self.name}:{self.layer}"


def check_method(name: str, layer: int, layers: int) -> Method:
    """The request's explain_method and explain_layer; INVALID_ARGUMENT when absurd."""
    name = name or ROLLOUT
    if name not in (ROLLOUT, ATTENTION):
        raise InvalidArgument(f"explain_method must be {ROLLOUT!r} or {ATTENTION!r}; got {name!r}")
    if layer > layers:
        raise InvalidArgument(f"explain_layer must be between 1 and {layers} (0: the last)")
    if name == ROLLOUT:
        if layer:
            raise InvalidArgument("explain_layer applies to explain_method 'attention' only")
        return Method(ROLLOUT, 0)
    return Method(ATTENTION, layer or layers)


def head_mean(layers: Sequence[np.ndarray]) -> np.ndarray:
    """Per-layer [query, heads, key] probabilities → [layers, query, key], heads averaged."""
    return np.stack([np.add.reduce(layer, axis=1) / layer.shape[1] for layer in layers])


def rollout(attention: np.ndarray) -> np.ndarray:
    """[layers, query, key] → [query, key]: attention rollout with the residual added."""
    size = attention.shape[-1]
    result = np.eye(size, dtype=np.float64)
    for layer in attention:
        mixed = 0.5 * layer + 0.5 * np.eye(size)
        mixed /= mixed.sum(axis=-1, keepdims=True)
        result = mixed @ result
    return result


def token_weights(attention: np.ndarray, method: Method, rows: np.ndarray) -> np.ndarray:
    """Scores over the key tokens: the method's matrix averaged over `rows` (query
    positions)."""
    matrix = rollout(attention) if method.name == ROLLOUT else attention[method.layer - 1]
    return np.asarray(matrix[rows].mean(axis=0))


def weighed_tokens(
    text: str,
    offsets: Sequence[tuple[int, int]],
    scores: np.ndarray,
    among: np.ndarray | None = None,
) -> list[TokenWeight]:
    """`text`'s tokens that cover some of it (special tokens cover none and are left out),
    those of `among` when given, each with its score's share of theirs."""
    keep = np.array([end > start for start, end in offsets], dtype=np.float64)
    if among is not None:
        keep *= among
    weights = scores * keep
    total = weights.sum()
    weights = weights / total if total > 0 else keep / max(1, keep.sum())
    return [
        TokenWeight(text[start:end], start, end, float(w))
        for (start, end), w, kept in zip(offsets, weights, keep, strict=True)
        if kept
    ]


class LazyGraph:
    """A model's explanation graph: checked against its sha256 and loaded on first use."""

    def __init__(self, model: Model, folder: Path, spec: ExplainSpec, route: Route, threads: int):
        self._model = model
        self._path = folder / spec.file
        self._sha256 = model.manifest.sha256.get(spec.file) if model.manifest else None
        self._route = Route("fp32", route.providers, ())  # probabilities as exported
        self._threads = threads
        self._engine: Engine | None = None
        self._loading = asyncio.Lock()

    async def engine(self) -> tuple[Engine, bool]:
        """The engine, and whether this call loaded it."""
        async with self._loading:
            if self._engine is not None:
                return self._engine, False
            self._engine = await asyncio.to_thread(self._load)
            return self._engine, True

    def _load(self) -> Engine:
        name = self._model.name
        if not self._path.is_file() or sha256_file(self._path) != self._sha256:
            raise TaskNotSupported(
                f"model {name!r} cannot explain: {self._path.name} is missing or does not "
                "match its sha256 in model.yaml"
            )
        engine = Engine(
            f"{name} (explanations)",
            self._path,
            self._route,
            self._threads,
            lambda provider: 1,  # one session: explanations are occasional
        )
        self._model.engines.append(engine)
        log.info("model %s: explanation graph loaded on first use", name)
        return engine


class AttentionExplainer:
    """A model's explanations: its explanation graph, loaded on first use, and its queue."""

    def __init__(
        self,
        model: Model,
        folder: Path,
        spec: ExplainSpec,
        tokenizer: Path,
        max_length: int,
        pooling: str,
        route: Route,
        threads: int,
        batching: BatchingConfig,
        metrics: Metrics,
    ) -> None:
        self.layers = spec.layers
        self._model = model
        self._graph = LazyGraph(model, folder, spec, route, threads)
        self._batching = batching
        self._metrics = metrics
        self._max_length = max_length
        self._first_row = pooling == "cls"
        self._tokenizer = TextTokenizer(tokenizer, max_length)
        self._scheduler: Scheduler | None = None
        self._inputs: list[str] = []

    def check(self, name: str, layer: int) -> Method:
        return check_method(name, layer, self.layers)

    async def explain(
        self, pieces: Sequence[str], method: Method, deadline: float | None
    ) -> list[list[TokenWeight]]:
        """Each piece's token weights, offsets into that piece."""
        encodings = self._tokenizer.encode_with_offsets(list(pieces))
        attentions = await self._attention(
            [np.asarray(e.ids, dtype=np.int64) for e in encodings],
            [np.asarray(e.type_ids, dtype=np.int64) for e in encodings],
            deadline,
        )
        weighed = []
        for piece, encoding, attention in zip(pieces, encodings, attentions, strict=True):
            queries = np.arange(1) if self._first_row else np.arange(len(encoding.ids))
            scores = token_weights(attention, method, queries)
            weighed.append(weighed_tokens(piece, encoding.offsets, scores))
        return weighed

    async def explain_answers(
        self,
        context: str,
        answers: Sequence[ScoredSpan],
        windows: Sequence[Window],
        method: Method,
        deadline: float | None,
    ) -> list[list[TokenWeight]]:
        """Each span answer's token weights over the context: in the window the answer was
        read from, the rows of the tokens that cover the answer, over that window's context
        tokens (the question's are left out)."""
        unique = list({id(w): w for w in windows}.values())  # top answers share windows
        attentions = await self._attention(
            [w.ids for w in unique], [w.type_ids for w in unique], deadline
        )
        by_window = {id(w): a for w, a in zip(unique, attentions, strict=True)}
        weighed = []
        for answer, window in zip(answers, windows, strict=True):
            offsets = window.encoding.offsets
            in_context = np.array([s == CONTEXT for s in window.encoding.sequence_ids])
            covers = np.array([a < answer.end and b > answer.start for a, b in offsets])
            rows = np.flatnonzero(in_context & covers)
            scores = token_weights(by_window[id(window)], method, rows)
            weighed.append(weighed_tokens(context, offsets, scores, in_context))
        return weighed

    async def _attention(
        self, ids: list[np.ndarray], types: list[np.ndarray], deadline: float | None
    ) -> list[np.ndarray]:
        """Each row's attention through the explanation graph, heads averaged: [layers,
        query, key]."""
        scheduler = await self._ready()
        with_types = "token_type_ids" in self._inputs
        outputs = await scheduler.submit(ids, types if with_types else None, deadline)
        return [
            head_mean([layer[:, :, : len(row)] for layer in out])
            for row, out in zip(ids, outputs, strict=True)
        ]

    async def _ready(self) -> Scheduler:
        engine, loaded = await self._graph.engine()
        if loaded:
            self._inputs = engine.input_names
            name = self._model.name
            self._scheduler = Scheduler(
                f"{name}:explain", engine, self._batching, self._max_length, self._metrics
            )
            self._model.schedulers.append(self._scheduler)
        assert self._scheduler is not None
        return self._scheduler


Explaining = tuple["AttentionExplainer | CrossAttentionExplainer", Method]


def requested(model: Model, explain: bool, method: str, layer: int) -> Explaining | None:
    """The model's explainer and the request's method when it asks to explain, checked
    before any work: FAILED_PRECONDITION (it cannot), INVALID_ARGUMENT (bad method)."""
    if not explain:
        return None
    explainer = model.explaining()
    return explainer, explainer.check(method, layer)


async def of_texts(
    explaining: Explaining, texts: Sequence[str], deadline: float | None
) -> list[Explanation]:
    """One explanation per text: what its embedding drew on."""
    explainer, method = explaining
    assert isinstance(explainer, AttentionExplainer)
    weighed = await explainer.explain(texts, method, deadline)
    return [
        Explanation(tokens, method.label, f"embedding of text {i}")
        for i, tokens in enumerate(weighed)
    ]


async def of_answers(
    explaining: Explaining, context: str, answers: Answers, deadline: float | None
) -> list[Explanation]:
    """One explanation per answer, over the context: a span answer's from its tokens'
    attention in the window it was read from, a sentence answer's from its embedding."""
    explainer, method = explaining
    assert isinstance(explainer, AttentionExplainer)
    targets = [f"answer {i} over context" for i in range(len(answers.answers))]
    if answers.windows:
        weighed = await explainer.explain_answers(
            context, answers.answers, answers.windows, method, deadline
        )
        return [
            Explanation(tokens, method.label, target)
            for tokens, target in zip(weighed, targets, strict=True)
        ]
    # Side by side, so that the answers' rows meet in one explanation batch.
    return list(
        await asyncio.gather(
            *(
                of_spans(explaining, context, [answer], target, deadline)
                for answer, target in zip(answers.answers, targets, strict=True)
            )
        )
    )


async def of_spans(
    explaining: Explaining,
    text: str,
    spans: Sequence[ScoredSpan],
    target: str,
    deadline: float | None,
) -> Explanation:
    """One explanation over `text`: what the embeddings of these pieces of it drew on."""
    explainer, method = explaining
    assert isinstance(explainer, AttentionExplainer)
    weighed = await explainer.explain([s.text for s in spans], method, deadline)
    return over_text(text, [(s.start, s.end) for s in spans], weighed, method, target)


async def of_summary(
    explaining: Explaining, text: str, summary: Summary, deadline: float | None
) -> Explanation:
    """A summary's explanation over its text: the chosen sentences' embeddings
    (extractive), or the generated tokens' cross-attention (seq2seq)."""
    explainer, method = explaining
    if isinstance(explainer, CrossAttentionExplainer):
        return await explainer.summary(text, summary.token_ids, method)
    return await of_spans(
        explaining, text, summary.sentences, "summary sentences over text", deadline
    )


def over_text(
    text: str,
    spans: Sequence[tuple[int, int]],
    weighed: Sequence[Sequence[TokenWeight]],
    method: Method,
    target: str,
) -> Explanation:
    """One explanation over `text` from pieces of it (each at `spans[i]`'s start), each
    piece's weights given an equal share."""
    share = 1.0 / max(1, len(weighed))
    tokens = [
        TokenWeight(t.token, start + t.start, start + t.end, t.weight * share)
        for (start, _end), piece in zip(spans, weighed, strict=True)
        for t in piece
    ]
    return Explanation(sorted(tokens, key=lambda t: t.start), method.label, target)


CROSS_ATTENTION = "cross-attention"


class CrossAttentionExplainer:
    """A seq2seq model's explanations: which source tokens the generated tokens' cross-
    attention weighed. One teacher-forced pass of the explanation graph (the source, and the
    start token with the generated tokens but the last) gives each decoder layer's
    cross-attention [heads, target, source]; the weights are the chosen layer's (the last by
    default), averaged over heads and generated tokens, over the source tokens that cover
    text, renormalized. Rollout has no meaning across the two stacks: refused."""

    def __init__(
        self,
        model: Model,
        folder: Path,
        spec: ExplainSpec,
        tokenizer: Path,
        max_length: int,
        decoder_start: int,
        route: Route,
        threads: int,
    ) -> None:
        self.layers = spec.layers
        self._graph = LazyGraph(model, folder, spec, route, threads)
        self._start = decoder_start
        self._tokenizer = TextTokenizer(tokenizer, max_length)

    def check(self, name: str, layer: int) -> Method:
        if name not in ("", ATTENTION):
            raise InvalidArgument(
                f"a seq2seq model explains with its cross-attention: explain_method "
                f"{ATTENTION!r} (or empty); got {name!r}"
            )
        if layer > self.layers:
            raise InvalidArgument(
                f"explain_layer must be between 1 and {self.layers} (0: the last)"
            )
        return Method(CROSS_ATTENTION, layer or self.layers)

    async def summary(self, text: str, generated: Sequence[int], method: Method) -> Explanation:
        target = "summary over text"
        engine, _ = await self._graph.engine()
        (encoding,) = self._tokenizer.encode_with_offsets([text])
        if not generated:
            return Explanation([], method.label, target)
        ids = np.asarray([encoding.ids], dtype=np.int64)
        decoder = np.asarray([[self._start, *generated[:-1]]], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "decoder_input_ids": decoder,
        }
        outputs = await asyncio.to_thread(engine.run, feeds)
        layer = outputs[method.layer - 1][0]  # [heads, target, source]
        tokens = weighed_tokens(text, encoding.offsets, layer.mean(axis=(0, 1)))
        return Explanation(tokens, method.label, target)
