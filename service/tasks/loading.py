"""One builder per kind of model: from its checked files to its table of pipelines by task.

Each builder opens the model's graphs, checks that they fit its tokenizer, warms them up,
and adds every pipeline its kind can serve; the repository keeps those that model.yaml
lists. What the drain must close and what ListModels shows go on the model as soon as they
exist, so a model that fails half-way still reports them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from service.batching.scheduler import BatchingConfig, Scheduler
from service.causal.batch import CausalBatch
from service.causal.graphs import CausalGraphs
from service.causal.pipeline import CausalSummarizer
from service.config import Settings
from service.metrics import Metrics
from service.model_format import SPAN_OUTPUTS, Manifest
from service.runtime.engine import Engine
from service.runtime.precision import Route
from service.seq2seq.batch import DecoderBatch
from service.seq2seq.batcher import ContinuousBatcher
from service.seq2seq.graphs import Seq2SeqGraphs
from service.seq2seq.pipeline import Seq2SeqSummarizer
from service.seq2seq.speculation import Draft, Speculator
from service.tasks.answer import SentenceAnswerer
from service.tasks.embed import EncoderEmbedder
from service.tasks.encoder import SentenceEncoder
from service.tasks.explain import (
    EXPLAIN_BATCH_TOKENS,
    AttentionExplainer,
    CrossAttentionExplainer,
)
from service.tasks.generate import TextGenerator
from service.tasks.pipelines import ANSWER, EMBED, GENERATE, SUMMARIZE, TENSORS, Pipelines
from service.tasks.span_qa import SpanQA
from service.tasks.span_windows import QuestionWindows
from service.tasks.summarize import ExtractiveSummarizer
from service.tasks.tensors import ID_INPUTS, BareGraph, type_vocab_size
from service.tasks.texts import Limits
from service.tasks.tokenizer import TextTokenizer

if TYPE_CHECKING:
    from service.repository import Model


DRAFT_ROUTE = Route("int8", ("cpu",), ("cpu",), reason="the draft of speculative rounds")


class ModelLoadError(Exception):
    """The model folder is not servable; the message says why."""


class Builders:
    def __init__(self, settings: Settings, metrics: Metrics, limits: Limits) -> None:
        self._settings = settings
        self._metrics = metrics
        self._limits = limits

    def encoder(self, model: Model, folder: Path, manifest: Manifest, route: Route) -> Pipelines:
        """Embed, Summarize and Answer on sentence vectors, and the bare graph."""
        engine, tokenizer, scheduler = self._graph(model, folder, manifest, route)
        encoder = SentenceEncoder(model.name, tokenizer, scheduler, manifest.pooling, self._metrics)
        table = self._bare(model, folder, engine, tokenizer, scheduler)
        table.add(EMBED, EncoderEmbedder(encoder))
        table.add(ANSWER, SentenceAnswerer(encoder))
        table.add(SUMMARIZE, ExtractiveSummarizer(encoder))
        self._explainer(model, folder, manifest, route, scheduler.config)
        _warm_up(model, engine, manifest.max_sequence_length, tokenizer.vocab_size)
        return table

    def span_qa(self, model: Model, folder: Path, manifest: Manifest, route: Route) -> Pipelines:
        """Answer with exact spans from a question-answering head, and the bare graph."""
        assert manifest.span is not None
        span = manifest.span
        engine, tokenizer, scheduler = self._graph(model, folder, manifest, route)
        if engine.output_names != SPAN_OUTPUTS:
            raise ModelLoadError(f"a span QA graph must output {SPAN_OUTPUTS}")
        windows = QuestionWindows(
            folder / manifest.tokenizer_file, manifest.max_sequence_length, span.cls_token_id
        )
        table = self._bare(model, folder, engine, tokenizer, scheduler)
        table.add(ANSWER, SpanQA(model.name, windows, scheduler, span, self._metrics))
        self._explainer(model, folder, manifest, route, scheduler.config)
        _warm_up(model, engine, manifest.max_sequence_length, tokenizer.vocab_size)
        return table

    def _explainer(
        self,
        model: Model,
        folder: Path,
        manifest: Manifest,
        route: Route,
        batching: BatchingConfig,
    ) -> None:
        """The model's explainer, when its folder has an explanation graph (loaded on first
        use, not now: most servers never explain)."""
        if manifest.explain is None:
            return
        model.explainer = AttentionExplainer(
            model,
            folder,
            manifest.explain,
            folder / manifest.tokenizer_file,
            manifest.max_sequence_length,
            manifest.pooling,
            route,
            self._settings.threads(),
            replace(
                batching, max_batch_tokens=min(batching.max_batch_tokens, EXPLAIN_BATCH_TOKENS)
            ),
            self._metrics,
        )

    def seq2seq(self, model: Model, folder: Path, manifest: Manifest, route: Route) -> Pipelines:
        """Abstractive Summarize: encoder and decoder graphs under a continuous batcher."""
        assert manifest.seq2seq is not None
        settings, spec = self._settings, manifest.seq2seq
        graphs = Seq2SeqGraphs(model.name, folder, spec, route, settings.threads())
        model.engines.extend([graphs.encoder, graphs.decoder])
        tokenizer = TextTokenizer(folder / manifest.tokenizer_file, manifest.max_sequence_length)
        if tokenizer.vocab_size > spec.vocab_size:
            raise ModelLoadError(
                f"tokenizer.json has {tokenizer.vocab_size} tokens; the model {spec.vocab_size}"
            )
        draft = self._draft(manifest, route)
        drafter = None
        if draft is not None and draft.seq2seq is not None:
            drafter = Seq2SeqGraphs(
                f"{model.name}.draft", folder, draft.seq2seq, DRAFT_ROUTE, settings.threads()
            )
            model.engines.extend([drafter.encoder, drafter.decoder])
        speculator = self._speculator(drafter, route)
        for each in (graphs, speculator and speculator.draft):
            if isinstance(each, Seq2SeqGraphs):
                _warm_up_seq2seq(each)
        batcher = ContinuousBatcher(
            model.name,
            lambda: DecoderBatch(graphs, speculator),
            settings.max_batch_size,
            settings.max_sequences,
            self._metrics,
        )
        model.batchers.append(batcher)
        if manifest.explain is not None:
            model.explainer = CrossAttentionExplainer(
                model,
                folder,
                manifest.explain,
                folder / manifest.tokenizer_file,
                manifest.max_sequence_length,
                spec.decoder_start_token_id,
                route,
                settings.threads(),
            )
        generator = TextGenerator(
            model.name,
            tokenizer,
            spec.defaults,
            batcher,
            self._metrics,
            window=manifest.max_sequence_length,
            max_new_limit=spec.max_decoder_length - 1,
            causal=False,
        )
        table = Pipelines()
        table.add(GENERATE, generator)
        table.add(SUMMARIZE, Seq2SeqSummarizer(generator, self._metrics))
        model.providers, model.sessions = graphs.providers, graphs.encoder.concurrency
        return table

    def causal(self, model: Model, folder: Path, manifest: Manifest, route: Route) -> Pipelines:
        """Generate and Summarize on a decoder-only LM: its step graph under a continuous
        batcher that prefills prompts in chunks between decode steps."""
        assert manifest.causal is not None
        settings, spec = self._settings, manifest.causal
        graphs = CausalGraphs(model.name, folder, spec, route, settings.threads())
        model.engines.append(graphs.decoder)
        draft = self._draft(manifest, route)
        drafter = None
        if draft is not None and draft.causal is not None:
            drafter = CausalGraphs(
                f"{model.name}.draft", folder, draft.causal, DRAFT_ROUTE, settings.threads()
            )
            model.engines.append(drafter.decoder)
        speculator = self._speculator(drafter, route)
        tokenizer = TextTokenizer(folder / manifest.tokenizer_file, spec.context_window)
        if tokenizer.vocab_size > spec.vocab_size:
            raise ModelLoadError(
                f"tokenizer.json has {tokenizer.vocab_size} tokens; the model {spec.vocab_size}"
            )
        for each in (graphs, speculator and speculator.draft):
            if isinstance(each, CausalGraphs):
                _warm_up_causal(each)
        batcher = ContinuousBatcher(
            model.name,
            lambda: CausalBatch(graphs, settings.prefill_tokens, speculator),
            settings.max_batch_size,
            settings.max_sequences,
            self._metrics,
        )
        model.batchers.append(batcher)
        generator = TextGenerator(
            model.name,
            tokenizer,
            spec.defaults,
            batcher,
            self._metrics,
            window=spec.context_window,
            max_new_limit=spec.context_window - 1,
            causal=True,
        )
        table = Pipelines()
        table.add(GENERATE, generator)
        table.add(SUMMARIZE, CausalSummarizer(generator, spec, self._metrics))
        model.providers, model.sessions = graphs.providers, graphs.decoder.concurrency
        return table

    def _speculator(self, drafter: Draft | None, route: Route) -> Speculator | None:
        """Speculative rounds on the CPU provider (a GPU's step is not bound by the bytes it
        reads the way a CPU's is) when --draft-tokens is not 0: the draft model's and lookups,
        or lookups alone."""
        settings = self._settings
        if settings.draft_tokens == 0 or route.providers != ("cpu",):
            return None
        if drafter is None and settings.draft_lookup == 0:
            return None
        return Speculator(
            drafter, settings.draft_tokens, settings.prefill_tokens, lookup=settings.draft_lookup
        )

    def _draft(self, manifest: Manifest, route: Route) -> Manifest | None:
        """The model's int8 variant, to draft speculative rounds (service/seq2seq/
        speculation.py): when the model runs at another precision on the CPU provider alone
        (a GPU's step is not bound by the bytes it reads the way a CPU's is) and
        --draft-tokens is not 0."""
        if (
            self._settings.draft_tokens == 0
            or route.precision == "int8"
            or route.providers != ("cpu",)
            or "int8" not in manifest.variants
        ):
            return None
        return manifest.running("int8")

    def _graph(
        self, model: Model, folder: Path, manifest: Manifest, route: Route
    ) -> tuple[Engine, TextTokenizer, Scheduler]:
        """A graph that takes token ids, its tokenizer, and the scheduler in front of it."""
        settings = self._settings
        engine = Engine(
            model.name,
            folder / manifest.model_file,
            route,
            settings.threads(),
            settings.sessions_for,
        )
        engines = [engine]
        up_to = manifest.variant.fp32_rows_up_to
        if up_to:
            fp32 = Engine(
                f"{model.name} (rows of up to {up_to} tokens)",
                folder / manifest.variants["fp32"].file,
                Route("fp32", route.providers, ()),
                settings.threads(),
                settings.sessions_for,
            )
            engine.send_short_rows(fp32, up_to)
            engines.append(fp32)
        # Only once every engine of this route loaded: a route that fails leaves none behind.
        model.engines.extend(engines)
        missing = set(engine.input_names) - set(ID_INPUTS)
        if missing:
            raise ModelLoadError(f"the ONNX graph has inputs this server cannot feed: {missing}")
        tokenizer = TextTokenizer(folder / manifest.tokenizer_file, manifest.max_sequence_length)
        _check_vocabulary(engine, tokenizer)
        batching = BatchingConfig(
            max_batch_tokens=settings.batch_tokens_for(engine.provider),
            padding_slack=settings.padding_slack_for(engine.provider),
            max_batch_size=settings.max_batch_size,
            max_queue_delay=settings.max_queue_delay_ms / 1000.0,
            max_queued_tokens=settings.max_queued_tokens,
            max_queue_wait=settings.max_queue_wait_ms / 1000.0,
            policy=settings.batching,
        )
        scheduler = Scheduler(
            model.name, engine, batching, manifest.max_sequence_length, self._metrics
        )
        model.schedulers.append(scheduler)
        return engine, tokenizer, scheduler

    def _bare(
        self,
        model: Model,
        folder: Path,
        engine: Engine,
        tokenizer: TextTokenizer,
        scheduler: Scheduler,
    ) -> Pipelines:
        """A new table holding the graph's own way in: token ids through its scheduler."""
        # The type vocabulary is read once here, not per request.
        types = type_vocab_size(folder)
        bare = BareGraph(
            model.name, engine, scheduler, tokenizer, types, self._limits, self._metrics
        )
        table = Pipelines()
        table.add(TENSORS, bare)
        return table


def _check_vocabulary(engine: Engine, tokenizer: TextTokenizer) -> None:
    # A tokenizer from another model produces ids past the embedding table: catch it at load,
    # not as a crash in the first request.
    probe = tokenizer.encode(["attnserve checks that the tokenizer fits the model."])[0].ids
    vocab = tokenizer.vocab_size
    if vocab <= 0 or int(probe.max()) >= vocab:
        raise ModelLoadError("the tokenizer produces ids outside its own vocabulary")
    # OpenVINO's Gather returns zeros for an id past the table, where onnxruntime's raises:
    # where the engine knows the table's rows, they are compared; else the last id is run.
    rows = engine.vocab_rows()
    if rows is not None:
        if vocab > rows:
            raise ModelLoadError(
                f"tokenizer.json does not fit the model (vocabulary of {vocab}): its ids run "
                f"to {vocab - 1}, past the model's word-embedding table of {rows} rows"
            )
        return
    try:
        engine.run(_feeds(engine, np.array([[vocab - 1]], dtype=np.int64)))
    except Exception as exc:
        raise ModelLoadError(
            f"tokenizer.json does not fit the model (vocabulary of {vocab}): {exc}"
        ) from exc


def _feeds(engine: Engine, ids: np.ndarray) -> dict[str, np.ndarray]:
    by_name = {
        "input_ids": ids,
        "attention_mask": np.ones_like(ids),
        "token_type_ids": np.zeros_like(ids),
    }
    return {name: by_name[name] for name in engine.input_names}


def _warm_up_seq2seq(graphs: Seq2SeqGraphs) -> None:
    """First runs allocate arenas and pick kernels: an encoding, a step and a verify."""
    spec = graphs.spec
    cache = graphs.new_cache()
    encoded = graphs.encode([np.full(8, spec.pad_token_id, dtype=np.int64)])
    cache.add(encoded.cross, encoded.mask)
    graphs.step(np.array([spec.decoder_start_token_id], dtype=np.int64), cache)
    graphs.verify(np.full((1, 4), spec.decoder_start_token_id, dtype=np.int64), cache)


def _warm_up_causal(graphs: CausalGraphs) -> None:
    """First runs allocate arenas and pick kernels: a prefill, a verify and a decode step."""
    pad = graphs.spec.pad_token_id
    cache = graphs.new_cache()
    cache.add_rows(1)
    graphs.step(np.full((1, 8), pad, dtype=np.int64), cache, 0)
    graphs.verify(np.full((1, 4), pad, dtype=np.int64), cache)
    graphs.step(np.full((1, 1), pad, dtype=np.int64), cache)


def _warm_up(model: Model, engine: Engine, max_length: int, vocab_size: int) -> None:
    model.providers, model.sessions = engine.providers, engine.concurrency
    # First runs allocate arenas and pick kernels; do it before reporting SERVING.
    token = min(1000, vocab_size - 1)  # any real id: small vocabularies end before 1000
    for rows, length in ((1, 8), (8, 32), (4, max_length)):
        ids = np.full((rows, length), token, dtype=np.int64)
        engine.run(_feeds(engine, ids))
