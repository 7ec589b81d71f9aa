"""The tests' way to the real server (harness/server.py), and the skip when no model is built."""

from __future__ import annotations

from pathlib import Path

from harness.server import MODELS, ROOT, ServerProcess, free_port, link_model

__all__ = ["MODELS", "ROOT", "ServerProcess", "free_port", "link_model"]


def require_default_model() -> Path:
    src = MODELS / "minilm"
    if not (src / "model.yaml").is_file():
        import pytest

        pytest.skip("models/minilm is not built: run `make models` (make test does)")
    return src
