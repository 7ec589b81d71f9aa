"""The model repository: every models/<name>/ with a model.yaml, loaded and warmed up.

A model that cannot be loaded (missing file, hash mismatch, corrupt ONNX, a tokenizer that
does not fit) is kept with the reason, reported NOT ready, and the others are served.
Nothing in a model folder is executed: only ONNX, tokenizer.json and YAML are read.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from service.batching.scheduler import BatchingConfig, Scheduler
from service.config import ConfigError, Settings
from service.errors import ModelNotFound, TaskNotSupported, Unavailable
from service.metrics import Metrics
from service.runtime.engine import Engine
from service.seq2seq.batcher import ContinuousBatcher
from service.seq2seq.graphs import Seq2SeqGraphs
from service.seq2seq.pipeline import Seq2SeqSummarizer
from service.seq2seq.spec import Seq2SeqSpec
from service.tasks.encoder import Limits, SentenceEncoder
from service.tasks.span_qa import SpanQA, SpanSettings
from service.tasks.span_windows import QuestionWindows
from service.tasks.tokenizer import TextTokenizer

log = logging.getLogger(__name__)

MANIFEST = "model.yaml"
ENCODER_TASKS = ("embed", "summarize", "answer")
SPAN_QA = "question-answering"
SUMMARIZATION = "summarization"
# model.yaml's export_task says what kind of model it is, and so which tasks it may list.
KIND_TASKS = {
    "feature-extraction": ENCODER_TASKS,
    SPAN_QA: ("answer",),
    SUMMARIZATION: ("summarize",),
}
SPAN_OUTPUTS = ["start_logits", "end_logits"]


class ModelLoadError(Exception):
    """The model folder is not servable; the message says why."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """The parts of model.yaml (written by `attnserve export`) that serving reads."""

    name: str
    export_task: str
    tasks: list[str]
    architecture: str
    precision: str
    model_file: str
    tokenizer_file: str
    sha256: dict[str, str]
    max_sequence_length: int
    hidden_size: int
    pooling: str
    inputs: list[str]
    span: SpanSettings | None  # span question-answering models only
    seq2seq: Seq2SeqSpec | None  # summarization (encoder-decoder) models only

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST
        try:
            raw: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ModelLoadError(f"cannot read {MANIFEST}: {exc}") from exc
        if not isinstance(raw, dict):
            raise ModelLoadError(f"{MANIFEST} is not a mapping")
        try:
            files = raw["files"]
            manifest = cls(
                name=folder.name,
                export_task=str(raw["export_task"]),
                tasks=[str(t) for t in raw["tasks"]],
                architecture=str(raw["architecture"]),
                precision=str(raw.get("precision", "fp32")),
                # A seq2seq model's "model" (what KServe serves bare) is its encoder.
                model_file=str(
                    files["encoder" if raw["export_task"] == SUMMARIZATION else "model"]
                ),
                tokenizer_file=str(files["tokenizer"]),
                sha256={str(k): str(v) for k, v in raw["sha256"].items()},
                max_sequence_length=int(raw["max_sequence_length"]),
                hidden_size=int(raw["hidden_size"]),
                pooling=str(raw.get("pooling", "mean")),
                inputs=[str(i) for i in raw["inputs"]],
                span=_span_settings(raw["question_answering"])
                if raw["export_task"] == SPAN_QA
                else None,
                seq2seq=Seq2SeqSpec.read(raw) if raw["export_task"] == SUMMARIZATION else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelLoadError(f"{MANIFEST} is missing or has a bad value for {exc}") from exc
        kind_tasks = KIND_TASKS.get(manifest.export_task)
        if kind_tasks is None:
            kinds = ", ".join(KIND_TASKS)
            raise ModelLoadError(
                f"{MANIFEST}: export_task {manifest.export_task!r} is not served (only {kinds})"
            )
        unknown = set(manifest.tasks) - set(kind_tasks)
        if unknown or not manifest.tasks:
            raise ModelLoadError(f"{MANIFEST} lists tasks this server cannot serve: {unknown}")
        if not 1 <= manifest.max_sequence_length <= 8192:
            raise ModelLoadError(f"{MANIFEST}: bad max_sequence_length")
        return manifest


def _span_settings(raw: Any) -> SpanSettings:
    settings = SpanSettings(
        doc_stride=int(raw["doc_stride"]),
        max_answer_length=int(raw["max_answer_length"]),
        cls_token_id=int(raw["cls_token_id"]),
    )
    if settings.doc_stride < 1 or settings.max_answer_length < 1:
        raise ModelLoadError(f"{MANIFEST}: doc_stride and max_answer_length must be positive")
    return settings


def _check_files(folder: Path, manifest: Manifest) -> None:
    names = [manifest.model_file, manifest.tokenizer_file]
    if manifest.seq2seq is not None:
        names.append(manifest.seq2seq.decoder_file)
    for name in names:
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise ModelLoadError(f"file {name} is missing")
        want = manifest.sha256.get(name)
        if want is None:
            raise ModelLoadError(f"{MANIFEST} records no sha256 for {name}")
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != want:
            raise ModelLoadError(f"{name} does not match the sha256 in {MANIFEST}")


@dataclass
class Model:
    name: str
    manifest: Manifest | None = None
    engine: Engine | None = None
    encoder: SentenceEncoder | None = None
    span_qa: SpanQA | None = None
    summarizer: Seq2SeqSummarizer | None = None  # abstractive, on seq2seq models
    # The encoder graph's own way in (KServe V2 serves it bare): not on seq2seq models.
    scheduler: Scheduler | None = None
    tokenizer: TextTokenizer | None = None
    error: str = ""
    ready: bool = False
    providers: list[str] = field(default_factory=list)

    @property
    def tasks(self) -> list[str]:
        return self.manifest.tasks if self.manifest else []


class Repository:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.models: dict[str, Model] = {}
        # What one request may send, the same for every model and both APIs.
        self.limits = Limits(settings.max_text_chars, settings.max_texts)

    def discover(self) -> list[str]:
        """Names of the model folders (those with a model.yaml), without loading them.

        Raises ConfigError when the repository is not a directory, holds no model, or lacks
        the default model: a server started so could never answer a request without a name.
        """
        root = self.settings.models
        if not root.is_dir():
            raise ConfigError(f"invalid --models / ATTNSERVE_MODELS: {root} is not a directory")
        names = sorted(p.parent.name for p in root.glob(f"*/{MANIFEST}"))
        if not names:
            raise ConfigError(f"no models under {root} (no */{MANIFEST}): run `make models`")
        default = self.settings.default_model
        if default not in names:
            raise ConfigError(
                f"invalid --default-model / ATTNSERVE_DEFAULT_MODEL: no model {default!r} "
                f"under {root} (models: {', '.join(names)})"
            )
        for name in names:
            self.models[name] = Model(name)
            self.metrics.model_ready.labels(name).set(0)
        return names

    def load(self, name: str) -> Model:
        """Load and warm up one model; a failure is recorded on the model, not raised."""
        model = self.models[name]
        try:
            self._load(model)
        except Exception as exc:  # any failure keeps this model out, not the server
            model.error = str(exc) or type(exc).__name__
            log.error("model %s is not served: %s", name, model.error)
        return model

    def _load(self, model: Model) -> None:
        folder = self.settings.models / model.name
        manifest = Manifest.read(folder)
        model.manifest = manifest
        _check_files(folder, manifest)
        if manifest.seq2seq is not None:
            self._load_seq2seq(model, folder, manifest, manifest.seq2seq)
            return
        engine = Engine(
            model.name,
            folder / manifest.model_file,
            self.settings.providers,
            self.settings.threads(),
            self.settings.sessions_for,
        )
        missing = set(engine.input_names) - {"input_ids", "attention_mask", "token_type_ids"}
        if missing:
            raise ModelLoadError(f"the ONNX graph has inputs this server cannot feed: {missing}")
        tokenizer = TextTokenizer(folder / manifest.tokenizer_file, manifest.max_sequence_length)
        _check_vocabulary(engine, tokenizer, manifest)
        batching = BatchingConfig(
            max_batch_tokens=self.settings.batch_tokens_for(engine.provider),
            padding_slack=self.settings.padding_slack_for(engine.provider),
            max_batch_size=self.settings.max_batch_size,
            max_queue_delay=self.settings.max_queue_delay_ms / 1000.0,
            max_queued_tokens=self.settings.max_queued_tokens,
            max_queue_wait=self.settings.max_queue_wait_ms / 1000.0,
            policy=self.settings.batching,
        )
        scheduler = Scheduler(
            model.name, engine, batching, manifest.max_sequence_length, self.metrics
        )
        model.engine = engine
        if manifest.span is not None:
            if engine.output_names != SPAN_OUTPUTS:
                raise ModelLoadError(f"a span QA graph must output {SPAN_OUTPUTS}")
            windows = QuestionWindows(
                folder / manifest.tokenizer_file,
                manifest.max_sequence_length,
                manifest.span.cls_token_id,
            )
            model.span_qa = SpanQA(
                model.name, windows, scheduler, manifest.span, self.limits, self.metrics
            )
        else:
            model.encoder = SentenceEncoder(
                model.name, tokenizer, scheduler, manifest.pooling, self.limits, self.metrics
            )
        model.scheduler, model.tokenizer = scheduler, tokenizer
        model.providers = engine.providers
        _warm_up(engine, manifest, tokenizer.vocab_size)
        model.ready = True
        self.metrics.model_ready.labels(model.name).set(1)
        log.info("model %s ready: tasks %s", model.name, ", ".join(manifest.tasks))

    def _load_seq2seq(
        self, model: Model, folder: Path, manifest: Manifest, spec: Seq2SeqSpec
    ) -> None:
        graphs = Seq2SeqGraphs(
            model.name, folder, spec, self.settings.providers, self.settings.threads()
        )
        tokenizer = TextTokenizer(folder / manifest.tokenizer_file, manifest.max_sequence_length)
        if tokenizer.vocab_size > spec.vocab_size:
            raise ModelLoadError(
                f"tokenizer.json has {tokenizer.vocab_size} tokens; the model {spec.vocab_size}"
            )
        # First runs allocate arenas and pick kernels; do it before reporting SERVING.
        cache = graphs.new_cache()
        encoded = graphs.encode([np.full(8, spec.pad_token_id, dtype=np.int64)])
        cache.add(encoded.cross, encoded.mask)
        graphs.step(np.array([spec.decoder_start_token_id], dtype=np.int64), cache)
        batcher = ContinuousBatcher(
            model.name,
            graphs,
            self.settings.max_batch_size,
            self.settings.max_sequences,
            self.metrics,
        )
        model.engine = graphs.encoder
        model.summarizer = Seq2SeqSummarizer(
            model.name, tokenizer, spec, batcher, self.limits, self.metrics
        )
        model.providers = graphs.providers
        model.ready = True
        self.metrics.model_ready.labels(model.name).set(1)
        log.info("model %s ready: tasks %s (seq2seq)", model.name, ", ".join(manifest.tasks))

    def resolve(self, name: str) -> Model:
        """The named model (empty: the default); NOT_FOUND or UNAVAILABLE when it can't serve."""
        wanted = name or self.settings.default_model
        model = self.models.get(wanted)
        if model is None:
            known = ", ".join(sorted(self.models)) or "none"
            raise ModelNotFound(f"model {wanted!r} not found (models: {known})")
        if not model.ready:
            why = model.error or "still loading"
            raise Unavailable(f"model {wanted!r} is not ready: {why}")
        return model

    def encoder_for(self, name: str, task: str) -> tuple[Model, SentenceEncoder]:
        model = self.resolve(name)
        if task not in model.tasks or model.encoder is None:
            raise TaskNotSupported(
                f"model {model.name!r} cannot {task}; it can: {', '.join(model.tasks)}"
            )
        return model, model.encoder

    def answerer_for(self, name: str) -> tuple[Model, SentenceEncoder | SpanQA]:
        """What answers on the model: exact spans from a span QA head, sentences otherwise."""
        model = self.resolve(name)
        if model.span_qa is not None:
            return model, model.span_qa
        return self.encoder_for(name, "answer")

    def batchers(self) -> list[ContinuousBatcher]:
        return [m.summarizer.batcher for m in self.models.values() if m.summarizer is not None]

    def schedulers(self) -> list[Scheduler]:
        return [
            pipeline.scheduler
            for m in self.models.values()
            for pipeline in (m.encoder, m.span_qa)
            if pipeline is not None
        ]


def _check_vocabulary(engine: Engine, tokenizer: TextTokenizer, manifest: Manifest) -> None:
    # A tokenizer from another model produces ids past the embedding table: catch it at load,
    # not as a crash in the first request.
    probe = tokenizer.encode(["attnserve checks that the tokenizer fits the model."])[0].ids
    vocab = tokenizer.vocab_size
    if vocab <= 0 or int(probe.max()) >= vocab:
        raise ModelLoadError("the tokenizer produces ids outside its own vocabulary")
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


def _warm_up(engine: Engine, manifest: Manifest, vocab_size: int) -> None:
    # First runs allocate arenas and pick kernels; do it before reporting SERVING.
    token = min(1000, vocab_size - 1)  # any real id: small vocabularies end before 1000
    for rows, length in ((1, 8), (8, 32), (4, manifest.max_sequence_length)):
        ids = np.full((rows, length), token, dtype=np.int64)
        engine.run(_feeds(engine, ids))
