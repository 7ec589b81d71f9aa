"""The model repository: every models/<name>/ with a model.yaml, loaded and warmed up.

A model that cannot be loaded (missing file, hash mismatch, corrupt ONNX, a tokenizer that
does not fit) is kept with the reason, reported NOT ready, and the others are served.
Nothing in a model folder is executed: only ONNX, JSON (tokenizer, config) and YAML are read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TypeVar

from service.batching.scheduler import Scheduler
from service.config import ConfigError, Settings
from service.errors import ModelNotFound, TaskNotSupported, Unavailable
from service.metrics import Metrics
from service.model_format import MANIFEST_FILE, Manifest, ManifestError, check_files
from service.runtime.engine import Engine, EngineError
from service.runtime.machine import Machine, detect
from service.runtime.precision import Route, choose
from service.seq2seq.batcher import ContinuousBatcher
from service.tasks.explain import AttentionExplainer, CrossAttentionExplainer
from service.tasks.loading import Builders
from service.tasks.pipelines import EMBED, TENSORS, Pipelines, Task
from service.tasks.texts import Limits

log = logging.getLogger(__name__)

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Card:
    """What ListModels and ModelConfig tell of a model: blank until model.yaml is read."""

    architecture: str = ""
    precision: str = ""
    max_sequence_length: int = 0
    dimensions: int = 0  # the length of its vectors, on a model that embeds


@dataclass
class Model:
    name: str
    manifest: Manifest | None = None  # None until model.yaml is read
    # The Task names it serves once loaded, TENSORS first where its graph is also served
    # as it is; None until model.yaml is read.
    offers: list[str] | None = None
    error: str = ""
    ready: bool = False
    providers: list[str] = field(default_factory=list)
    # The ways to run it that --precision and this machine allow, best first (chosen before
    # anything loads, so that an impossible --precision stops the server).
    routes: list[Route] = field(default_factory=list)
    sessions: int = 0  # engine sessions side by side (KServe's instance count)
    pipelines: Pipelines = field(default_factory=Pipelines)  # filled once it is ready
    # Its work queues, which the drain closes (Repository.schedulers and batchers).
    schedulers: list[Scheduler] = field(default_factory=list)
    batchers: list[ContinuousBatcher] = field(default_factory=list)
    engines: list[Engine] = field(default_factory=list)  # for its engine CPU time
    # None: it cannot explain (`explaining` says why).
    explainer: AttentionExplainer | CrossAttentionExplainer | None = None

    @property
    def tasks(self) -> list[str]:
        return self.manifest.tasks if self.manifest else []

    @property
    def card(self) -> Card:
        m = self.manifest
        if m is None:
            return Card()
        dimensions = m.hidden_size if EMBED.name in m.tasks else 0
        return Card(m.architecture, m.precision, m.max_sequence_length, dimensions)

    def pipeline(self, task: Task[P]) -> P:
        """Its pipeline for the task; FAILED_PRECONDITION if it has none."""
        found = self.pipelines.get(task)
        if found is None:
            raise self.cannot(task.name)
        return found

    def explaining(self) -> AttentionExplainer | CrossAttentionExplainer:
        """Its explainer; FAILED_PRECONDITION saying why it has none."""
        if self.explainer is not None:
            return self.explainer
        why = (
            "its folder has no explanation graph that held its check (model.yaml "
            "`explain`: absent when exported before explanations, or `passed: false` when "
            "its probabilities missed transformers' by more than 1e-5)"
        )
        raise TaskNotSupported(f"model {self.name!r} cannot explain: {why}")

    def cannot(self, task: str) -> TaskNotSupported:
        return TaskNotSupported(
            f"model {self.name!r} cannot {task}; it can: {', '.join(self.tasks)}"
        )


class Repository:
    def __init__(
        self, settings: Settings, metrics: Metrics, machine: Machine | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.machine = machine or detect()
        self.models: dict[str, Model] = {}
        # What one request may send, the same for every model and both APIs.
        self.limits = Limits(settings.max_text_chars, settings.max_texts)
        self._build = Builders(settings, metrics, self.limits)

    def discover(self) -> list[str]:
        """Names of the model folders (those with a model.yaml), without loading them.

        Raises ConfigError when the repository is not a directory, holds no model, or lacks
        the default model: a server started so could never answer a request without a name;
        PrecisionError (a ConfigError) when --precision names what a model or this machine
        cannot run.
        """
        root = self.settings.models
        if not root.is_dir():
            raise ConfigError(f"invalid --models / ATTNSERVE_MODELS: {root} is not a directory")
        names = sorted(p.parent.name for p in root.glob(f"*/{MANIFEST_FILE}"))
        if not names:
            raise ConfigError(f"no models under {root} (no */{MANIFEST_FILE}): run `make models`")
        default = self.settings.default_model
        if default not in names:
            raise ConfigError(
                f"invalid --default-model / ATTNSERVE_DEFAULT_MODEL: no model {default!r} "
                f"under {root} (models: {', '.join(names)})"
            )
        for name in names:
            self.models[name] = model = Model(name)
            self.metrics.model_ready.labels(name).set(0)
            try:
                manifest = Manifest.read(root / name)
            except ManifestError:
                continue  # load() reports it; the other models are served
            model.routes = choose(manifest, self.machine, self.settings)
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
        # A generating model is graphs and a search loop: no one graph to serve bare.
        generating = manifest.seq2seq is not None or manifest.causal is not None
        model.offers = [*([] if generating else [TENSORS.name]), *manifest.tasks]
        routes = model.routes or choose(manifest, self.machine, self.settings)
        # One builder per kind of model; each builds every pipeline its kind can serve.
        if manifest.seq2seq is not None:
            build = self._build.seq2seq
        elif manifest.causal is not None:
            build = self._build.causal
        elif manifest.span is not None:
            build = self._build.span_qa
        else:
            build = self._build.encoder
        for index, route in enumerate(routes):
            running = manifest.running(route.precision)
            check_files(folder, running)
            try:
                table = build(model, folder, running, route)
            except EngineError as exc:
                if index + 1 == len(routes):
                    raise
                log.warning("model %s: %s; trying %s", model.name, exc, routes[index + 1].precision)
                continue
            log.info("model %s runs %s: %s", model.name, route.precision, route.reason)
            model.manifest = running
            break
        model.pipelines = table.only(model.offers)
        model.ready = True
        self.metrics.model_ready.labels(model.name).set(1)
        self.metrics.start_at_zero(model.name, manifest.tasks)
        tasks = ", ".join(manifest.tasks)
        log.info("model %s ready: tasks %s", model.name, tasks)

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

    def pipeline(self, name: str, task: Task[P]) -> tuple[Model, P]:
        """The named model and its pipeline for the task: NOT_FOUND or UNAVAILABLE as
        `resolve` says, FAILED_PRECONDITION when the model does not serve the task."""
        model = self.resolve(name)
        return model, model.pipeline(task)

    def batchers(self) -> list[ContinuousBatcher]:
        return [b for m in self.models.values() for b in m.batchers]

    def schedulers(self) -> list[Scheduler]:
        return [s for m in self.models.values() for s in m.schedulers]

    def engine_cpu_seconds(self) -> dict[str, float]:
        """Each model's CPU time inside its engines so far (attnserve_engine_cpu_seconds)."""
        return {
            m.name: sum(e.cpu.seconds() for e in m.engines)
            for m in list(self.models.values())
            if m.engines
        }
