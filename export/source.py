"""A local Hugging Face model folder: its config, tokenizer and sentence-transformers metadata.

Only json and pathlib here, so that a wrong SRC_DIR is reported before torch is imported.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.errors import ExportError

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"

# sentence-transformers writes these beside the transformer's own files.
_ST_CONFIG_FILE = "sentence_bert_config.json"
_ST_MODULES_FILE = "modules.json"
_ST_DEFAULT_POOLING_DIR = "1_Pooling"
_TOKENIZER_CONFIG_FILE = "tokenizer_config.json"

# The poolings the server implements; sentence-transformers' older configs spell them as flags.
_POOLING_FLAGS = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
}
_SERVED_POOLINGS = frozenset(_POOLING_FLAGS.values())


@dataclass(frozen=True)
class SourceFolder:
    path: Path
    config: dict[str, Any]

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_FILE

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", ""))


def open_source(path: Path) -> SourceFolder:
    """Check that `path` looks like a Hugging Face model folder and read its config."""
    path = path.expanduser().resolve()
    if not path.exists():
        raise ExportError(f"source folder not found: {path}")
    if not path.is_dir():
        raise ExportError(f"source is not a folder: {path}")
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise ExportError(f"no {CONFIG_FILE} in {path} (expected a Hugging Face model folder)")
    config = _read_json(config_path)
    if not isinstance(config, dict):
        raise ExportError(f"{config_path} is not a JSON object")
    if not (path / TOKENIZER_FILE).is_file():
        # The server tokenizes with the `tokenizers` library, which needs the fast-tokenizer file.
        raise ExportError(f"no {TOKENIZER_FILE} in {path} (save the model with a fast tokenizer)")
    return SourceFolder(path=path, config=config)


def pooling(source: SourceFolder) -> str:
    """The sentence-transformers pooling (mean, cls or max); mean when the folder has none."""
    config_path = source.path / _pooling_dir(source) / CONFIG_FILE
    if not config_path.is_file():
        return "mean"
    config = _read_json(config_path)
    mode = config.get("pooling_mode")
    if mode is None:
        modes = [name for flag, name in _POOLING_FLAGS.items() if config.get(flag)]
        mode = modes[0] if modes else "mean"
    elif isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if mode not in _SERVED_POOLINGS:
        served = ", ".join(sorted(_SERVED_POOLINGS))
        raise ExportError(f"pooling {mode!r} in {config_path} is not supported (only {served})")
    return str(mode)


def normalize(source: SourceFolder) -> bool:
    """True when the sentence-transformers pipeline ends with a Normalize module."""
    return any(str(module.get("type", "")).endswith(".Normalize") for module in _modules(source))


def max_sequence_length(source: SourceFolder, position_limit: int) -> int:
    """The longest input the model was trained for, never more than it has positions for."""
    st_config_path = source.path / _ST_CONFIG_FILE
    if st_config_path.is_file():
        st_length = _read_json(st_config_path).get("max_seq_length")
        if isinstance(st_length, int):
            return min(st_length, position_limit)
    tokenizer_config_path = source.path / _TOKENIZER_CONFIG_FILE
    if tokenizer_config_path.is_file():
        # transformers writes a huge sentinel (1e30) when the limit is unknown: min() drops it.
        model_max_length = _read_json(tokenizer_config_path).get("model_max_length")
        if isinstance(model_max_length, int | float):
            return min(int(model_max_length), position_limit)
    return position_limit


def _pooling_dir(source: SourceFolder) -> str:
    for module in _modules(source):
        if str(module.get("type", "")).endswith(".Pooling"):
            return str(module.get("path", _ST_DEFAULT_POOLING_DIR))
    return _ST_DEFAULT_POOLING_DIR


def _modules(source: SourceFolder) -> list[dict[str, Any]]:
    modules_path = source.path / _ST_MODULES_FILE
    if not modules_path.is_file():
        return []
    modules = _read_json(modules_path)
    return [module for module in modules if isinstance(module, dict)]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"cannot read {path}: {error}") from error
