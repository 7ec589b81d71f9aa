"""model.yaml: the record the server reads next to model.onnx. The field names below are the
schema's keys, defined once; dump order follows field order."""

import hashlib
import importlib
import tomllib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

FORMAT_VERSION = 1
MANIFEST_FILE = "model.yaml"
MODEL_FILE = "model.onnx"
# The libraries that shape the graph, recorded so that an export can be reproduced.
_RECORDED_LIBRARIES = ("torch", "transformers", "onnx", "onnxruntime")


@dataclass(frozen=True)
class Parity:
    reference: str
    sentences: int
    max_abs_diff: float
    min_cosine: float
    mean_cosine: float
    max_abs_diff_limit: float | None  # None: recorded, not enforced
    min_cosine_limit: float
    mean_cosine_limit: float | None
    passed: bool


@dataclass(frozen=True)
class Quantization:
    method: str
    weight_type: str
    per_channel: bool
    fp32_matmuls: int  # MatMuls deliberately left unquantized


@dataclass(frozen=True)
class Source:
    path: str
    config_sha256: str


@dataclass(frozen=True, kw_only=True)
class ManifestHeader:
    """The keys every task's model.yaml starts with."""

    format_version: int = FORMAT_VERSION
    name: str
    export_task: str
    tasks: list[str]
    architecture: str
    model_type: str
    precision: str
    files: dict[str, str]  # role (model, encoder, decoder, tokenizer) -> file name
    sha256: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class Manifest(ManifestHeader):
    """An encoder's model.yaml (feature extraction)."""

    max_sequence_length: int
    hidden_size: int
    num_layers: int
    num_heads: int
    pooling: str
    normalize: bool
    inputs: list[str]
    outputs: list[str]
    opset: int
    fused_ops: dict[str, int]
    unfused_ops: dict[str, int]
    fully_fused: bool  # one fused Attention per layer; false only with --allow-unfused
    parity: Parity
    quantization: Quantization | None  # None: fp32
    source: Source
    versions: dict[str, str]
    created: str


@dataclass(frozen=True)
class SpanDecoding:
    """How the server windows contexts and decodes spans; request options override these."""

    doc_stride: int  # tokens shared by consecutive windows of a long context
    max_answer_length: int  # in tokens
    # The classifier token's id: SQuAD2-style heads score "no answer" there, so it is never
    # masked out as a non-context token.
    cls_token_id: int


@dataclass(frozen=True, kw_only=True)
class SpanManifest(Manifest):
    """A span question-answering model: the common record plus what decoding needs."""

    question_answering: SpanDecoding
    fusion_notes: list[str]  # what the optimizer left unfused, and why


def write_manifest(manifest: Any, directory: Path) -> None:
    """Any task's manifest dataclass as model.yaml, keys in field order."""
    text = yaml.safe_dump(asdict(manifest), sort_keys=False, default_flow_style=None, width=100)
    (directory / MANIFEST_FILE).write_text(text, encoding="utf-8")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {
        name: str(importlib.import_module(name).__version__) for name in _RECORDED_LIBRARIES
    }
    versions["attnserve"] = _attnserve_version()
    return versions


def created_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _attnserve_version() -> str:
    try:
        return metadata.version("attnserve")
    except metadata.PackageNotFoundError:
        # Run from a checkout that was never pip-installed: pyproject.toml has the version.
        pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])
