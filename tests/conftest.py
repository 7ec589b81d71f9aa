from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_process import ServerProcess, link_model, require_default_model


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository: the default model, an embed-only model and a broken one."""
    src = require_default_model()
    root = tmp_path_factory.mktemp("repo") / "models"
    root.mkdir()
    link_model(src, root / "minilm")
    link_model(src, root / "embedder", tasks=["embed"])
    # No variants: on a CPU with bf16 units the bf16 variant (the fp32 file, compiled by
    # OpenVINO) would load from model.onnx and leave the model unbroken.
    files = {"model": "missing.onnx", "tokenizer": "tokenizer.json"}
    link_model(src, root / "broken", files=files, variants=None)
    return root


@pytest.fixture(scope="session")
def server(repository: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(repository, "--max-text-chars", "20000", "--max-texts", "64")
    try:
        proc.wait_serving()
        yield proc
    finally:
        proc.stop()
