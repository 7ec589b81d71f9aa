"""The models KServe V2 clients see, and what each takes and gives.

Each repository model appears as ``<model>`` (its bare ONNX graph: token ids in, hidden
states out) and as ``<model>.<task>`` for every task it serves (texts in, results out).
Every V2 model has the one version "1".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from service.api.kserve_tensors import BYTES, TensorSpec
from service.api.protos.inference import grpc_predict_v2_pb2 as pb
from service.errors import ModelNotFound, TaskNotSupported
from service.repository import ENCODER_TASKS, Model, Repository
from service.tasks.encoder import Limits

BARE = "infer"  # the task label of a bare-model request, in metrics too
VERSION = "1"
READY, UNAVAILABLE = "READY", "UNAVAILABLE"  # Triton's model states in RepositoryIndex
PLATFORM = "onnxruntime_onnx"
ID_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

# Tensors of the task models; D (the embedding size) is filled in per model.
_TASK_INPUTS = {
    "embed": ("TEXT",),
    "answer": ("QUESTION", "CONTEXT"),
    "summarize": ("TEXT",),
}
_ONNX_TYPES = {
    "tensor(float)": "FP32",
    "tensor(float16)": "FP16",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(int8)": "INT8",
    "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL",
}
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
        if dot and suffix in ENCODER_TASKS:
            return cls(name, base, suffix)
        return cls(name, name, BARE)


class Catalogue:
    def __init__(self, repository: Repository) -> None:
        self._repo = repository

    def limits(self) -> Limits:
        return self._repo.limits

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
        if model is None:
            return False
        return _serves_bare(model) if v2.task == BARE else v2.task in model.tasks

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
        # (below, from resolve), as in attnserve.v1, rather than unable.
        if v2.task != BARE and model.manifest is not None and v2.task not in model.tasks:
            raise TaskNotSupported(
                f"model {v2.model!r} cannot {v2.task}; it can: {', '.join(model.tasks)}"
            )
        if v2.task == BARE and not _serves_bare(model):
            tasks = ", ".join(f"{v2.model}.{t}" for t in model.tasks)
            raise TaskNotSupported(
                f"model {v2.model!r} is an encoder-decoder: its graphs are not served bare; "
                f"use {tasks}"
            )
        return v2

    def lookup(self, name: str, version: str) -> tuple[V2Name, Model]:
        """The ready model behind a V2 name; NOT_FOUND, FAILED_PRECONDITION or UNAVAILABLE."""
        v2 = self.check(name, version)
        return v2, self._repo.resolve(v2.model)

    # -- tensors ------------------------------------------------------------------------

    def inputs(self, v2: V2Name, model: Model) -> list[TensorSpec]:
        if v2.task != BARE:
            return [TensorSpec(name, BYTES, (-1,)) for name in _TASK_INPUTS[v2.task]]
        # attention_mask is always taken: it tells the scheduler each row's real length.
        fed = model.engine.input_names if model.engine else []
        return [
            TensorSpec(name, "INT64", (-1, -1), optional=name == "token_type_ids")
            for name in ID_INPUTS
            if name != "token_type_ids" or name in fed
        ]

    def outputs(self, v2: V2Name, model: Model) -> list[TensorSpec]:
        if v2.task == "embed":
            dims = model.manifest.hidden_size if model.manifest else -1
            return [TensorSpec("EMBEDDING", "FP32", (-1, dims))]
        if v2.task == "answer":
            return [TensorSpec("ANSWER", BYTES, (-1,)), TensorSpec("SCORE", "FP32", (-1,))]
        if v2.task == "summarize":
            return [TensorSpec("SUMMARY", BYTES, (-1,))]
        assert model.engine is not None  # a ready model has one
        return [
            TensorSpec(
                out.name,
                _ONNX_TYPES.get(out.type, "FP32"),
                tuple(d if isinstance(d, int) else -1 for d in out.shape),
            )
            for out in model.engine.outputs()
        ]

    def type_vocabulary(self, model: Model) -> int:
        """How many token type ids the model knows (config.json's type_vocab_size, else 1).

        An id past the embedding table would fail the whole batch it lands in, other
        clients' rows included, so it is refused at the door.
        """
        return _type_vocab_size(self._repo.settings.models / model.name / "config.json")

    # -- protocol messages --------------------------------------------------------------

    def metadata(self, v2: V2Name, model: Model) -> pb.ModelMetadataResponse:
        def tensor(spec: TensorSpec) -> pb.ModelMetadataResponse.TensorMetadata:
            return pb.ModelMetadataResponse.TensorMetadata(
                name=spec.name, datatype=spec.datatype, shape=spec.shape
            )

        return pb.ModelMetadataResponse(
            name=v2.name,
            versions=[VERSION],
            platform=PLATFORM,
            inputs=[tensor(s) for s in self.inputs(v2, model)],
            outputs=[tensor(s) for s in self.outputs(v2, model)],
        )

    def config(self, v2: V2Name, model: Model) -> pb.ModelConfig:
        """Triton's model configuration: dims exclude the batch (first) dimension."""
        settings = self._repo.settings
        manifest = model.manifest
        gpu = bool(model.providers) and model.providers[0] != "cpu"
        parameters = {
            "tasks": ",".join(model.tasks),
            "architecture": manifest.architecture if manifest else "",
            "max_sequence_length": str(manifest.max_sequence_length if manifest else 0),
            "precision": manifest.precision if manifest else "",
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
                for s in self.inputs(v2, model)
            ],
            output=[
                pb.ModelOutput(name=s.name, data_type=_CONFIG_TYPES[s.datatype], dims=s.shape[1:])
                for s in self.outputs(v2, model)
            ],
            instance_group=[
                pb.ModelInstanceGroup(
                    name=model.name,
                    count=model.engine.concurrency if model.engine else 0,
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
    bare = [model.name] if _serves_bare(model) else []
    return [*bare, *(f"{model.name}.{task}" for task in model.tasks)]


def _serves_bare(model: Model) -> bool:
    # Encoders and span-QA heads take token ids in one graph; seq2seq models have two
    # graphs and a search loop, so V2 clients get only their summarize view.
    return model.manifest is None or model.manifest.seq2seq is None


@lru_cache(maxsize=64)
def _type_vocab_size(path: Path) -> int:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("type_vocab_size", 1)
    except (OSError, ValueError, AttributeError):
        return 1
    return value if isinstance(value, int) and value > 0 else 1
