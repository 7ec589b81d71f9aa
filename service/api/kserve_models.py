"""The models KServe V2 clients see: their names, states, metadata and configuration.

Each repository model appears as ``<model>`` where its graph is served bare (token ids in,
its outputs out) and as ``<model>.<task>`` for every task it serves (texts in, results
out); what each takes and gives is its view's (kserve_infer). Every V2 model has the one
version "1".
"""

from __future__ import annotations

from dataclasses import dataclass

from service.api.kserve_infer import VIEWS
from service.api.kserve_tensors import BYTES, TensorSpec
from service.api.protos.inference import grpc_predict_v2_pb2 as pb
from service.errors import ModelNotFound, TaskNotSupported
from service.repository import Model, Repository
from service.runtime.precision import GPU_PROVIDERS
from service.tasks.pipelines import TENSORS

BARE = TENSORS.name  # the task of a bare-model request, its metrics label too
VERSION = "1"
READY, UNAVAILABLE = "READY", "UNAVAILABLE"  # Triton's model states in RepositoryIndex
PLATFORM = "onnxruntime_onnx"

_CONFIG_TYPES = {
    "BOOL": pb.TYPE_BOOL,
    "UINT8": pb.TYPE_UINT8,
    "INT8": pb.TYPE_INT8,
    "INT32": pb.TYPE_INT32,
    "INT64": pb.TYPE_INT64,
    "FP16": pb.TYPE_FP16,
    "FP32": pb.TYPE_FP32,
    "FP64": pb.TYPE_FP64,
    BYTES: pb.TYPE_STRING,
}


@dataclass(frozen=True, slots=True)
class V2Name:
    name: str  # as the client wrote it: "minilm.embed"
    model: str  # the repository model: "minilm"
    task: str  # "infer", "embed", "answer" or "summarize"

    @classmethod
    def parse(cls, name: str) -> V2Name:
        base, dot, suffix = name.rpartition(".")
        if dot and suffix != BARE and suffix in VIEWS:
            return cls(name, base, suffix)
        return cls(name, name, BARE)


class Catalogue:
    def __init__(self, repository: Repository) -> None:
        self._repo = repository

    def names(self, ready_only: bool = True) -> list[str]:
        return [
            name
            for model in self._repo.models.values()
            if model.ready or not ready_only
            for name in _views(model)
        ]

    def index(self, draining: bool) -> list[pb.RepositoryIndexResponse.ModelIndex]:
        """Every V2 name of every repository model, with Triton's state and the reason.

        READY as ModelReady says it (a ready model, a server not draining); otherwise
        UNAVAILABLE with why: the load error, "still loading", or the shutdown.
        """
        out = []
        for model in self._repo.models.values():
            if model.ready and not draining:
                state, reason = READY, ""
            elif model.ready:
                state, reason = UNAVAILABLE, "the server is shutting down"
            else:
                state, reason = UNAVAILABLE, model.error or "still loading"
            out += [
                pb.RepositoryIndexResponse.ModelIndex(
                    name=name, version=VERSION, state=state, reason=reason
                )
                for name in _views(model)
            ]
        return out

    def exists(self, v2: V2Name) -> bool:
        """Whether the name is one of ours (whatever the model's state)."""
        model = self._repo.models.get(v2.model)
        return model is not None and v2.task in _offers(model)

    def check(self, name: str, version: str) -> V2Name:
        """The parsed name if it is one of ours; NOT_FOUND or FAILED_PRECONDITION if not."""
        v2 = V2Name.parse(name)
        model = self._repo.models.get(v2.model) if name else None
        if model is None:
            known = ", ".join(self.names(ready_only=False)) or "none"
            raise ModelNotFound(f"model {name!r} not found (models: {known})")
        if version not in ("", VERSION):
            raise ModelNotFound(f"model {name!r} has no version {version!r}; it has {VERSION!r}")
        # A model whose manifest could not be read has no known tasks: it is UNAVAILABLE
        # (from resolve, in lookup), as in attnserve.v1, rather than unable.
        if model.offers is None or v2.task in model.offers:
            return v2
        if v2.task != BARE:
            raise model.cannot(v2.task)
        tasks = ", ".join(f"{v2.model}.{t}" for t in model.tasks)
        raise TaskNotSupported(
            f"model {v2.model!r} is an encoder-decoder: its graphs are not served bare; use {tasks}"
        )

    def lookup(self, name: str, version: str) -> tuple[V2Name, Model]:
        """The ready model behind a V2 name; NOT_FOUND, FAILED_PRECONDITION or UNAVAILABLE."""
        v2 = self.check(name, version)
        return v2, self._repo.resolve(v2.model)

    # -- protocol messages --------------------------------------------------------------

    def metadata(self, v2: V2Name, model: Model) -> pb.ModelMetadataResponse:
        def tensor(spec: TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
            return pb.ModelMetadataResponse.TensorMetadata(
                name=spec.name, datatype=spec.datatype, shape=spec.shape
            )

        view = VIEWS[v2.task]
        return pb.ModelMetadataResponse(
            name=v2.name,
            versions=[VERSION],
            platform=PLATFORM,
            inputs=[tensor(s) for s in view.inputs(model)],
            outputs=[tensor(s) for s in view.outputs(model)],
        )

    def config(self, v2: V2Name, model: Model) -> pb.ModelConfig:
        """Triton's model configuration: dims exclude the batch (first) dimension."""
        settings = self._repo.settings
        card, view = model.card, VIEWS[v2.task]
        gpu = bool(model.providers) and model.providers[0] in GPU_PROVIDERS
        parameters = {
            "tasks": ",".join(model.tasks),
            "architecture": card.architecture,
            "max_sequence_length": str(card.max_sequence_length),
            # What really runs: the variant chosen at start and the providers its sessions use.
            "precision": card.precision,
            "providers": ",".join(model.providers),
        }
        return pb.ModelConfig(
            name=v2.name,
            platform=PLATFORM,
            backend="onnxruntime",
            # The most first-dimension rows (texts, pairs, sequences) one request may send.
            max_batch_size=settings.max_texts,
            input=[
                pb.ModelInput(
                    name=s.name,
                    data_type=_CONFIG_TYPES[s.datatype],
                    dims=s.shape[1:],
                    optional=s.optional,
                )
                for s in view.inputs(model)
            ],
            output=[
                pb.ModelOutput(name=s.name, data_type=_CONFIG_TYPES[s.datatype], dims=s.shape[1:])
                for s in view.outputs(model)
            ],
            instance_group=[
                pb.ModelInstanceGroup(
                    name=model.name,
                    count=model.sessions,
                    kind=pb.ModelInstanceGroup.KIND_GPU if gpu else pb.ModelInstanceGroup.KIND_CPU,
                )
            ],
            dynamic_batching=pb.ModelDynamicBatching(
                max_queue_delay_microseconds=round(settings.max_queue_delay_ms * 1000)
            ),
            parameters={k: pb.ModelParameter(string_value=v) for k, v in parameters.items()},
        )


def _views(model: Model) -> list[str]:
    """The V2 names of one repository model: ``<model>`` if served bare, ``<model>.<task>``."""
    return [model.name if task == BARE else f"{model.name}.{task}" for task in _offers(model)]


def _offers(model: Model) -> list[str]:
    # Until model.yaml is read its tasks are unknown; it is listed by its bare name.
    return [BARE] if model.offers is None else model.offers
