"""The baseline a user would otherwise pick: sentence-transformers in-process (PyTorch)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

from service import model_format


def sentence_transformers_rate(models: Path, texts: list[str], threads: int) -> float:
    """Texts per second of `encode(batch_size=32)` over the first 768 texts (it sorts by
    length itself), after a warm-up."""
    model = _load(models, threads)
    texts = texts[:768]
    model.encode(texts[:64], batch_size=32, show_progress_bar=False)
    started = time.perf_counter()
    model.encode(texts, batch_size=32, show_progress_bar=False)
    return len(texts) / (time.perf_counter() - started)


@functools.cache
def _load(models: Path, threads: int) -> Any:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    return SentenceTransformer(
        model_format.read_record(models / "minilm").source.path, device="cpu"
    )
