"""What only the exporter puts in model.yaml: where the source came from, the library
versions and the time. The format itself (keys, dataclasses, writing) is service.model_format.
"""

import importlib
import tomllib
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from export.source import SourceFolder
from service.model_format import Source, sha256_file

# The libraries that shape the graph, recorded so that an export can be reproduced.
_RECORDED_LIBRARIES = ("torch", "transformers", "onnx", "onnxruntime")


def source_record(source: SourceFolder) -> Source:
    return Source(path=str(source.path), config_sha256=sha256_file(source.config_path))


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
