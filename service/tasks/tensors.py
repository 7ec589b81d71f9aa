"""Bare tensors: a model's graph served as it is, token ids in, its outputs out (KServe V2).

Each row's real tokens (its mask's 1s) go through the model's scheduler, so bare rows share
batches with every task's; outputs with a sequence axis come back padded as the ids were,
zeros after each row's end. Every check names the input at fault: an id past a table would
fail the whole batch it lands in, other clients' rows included, so it is refused here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from service.batching.scheduler import Scheduler
from service.errors import InvalidArgument
from service.metrics import Metrics
from service.runtime.engine import Engine
from service.tasks.pipelines import TENSORS, TensorInfo
from service.tasks.texts import Limits
from service.tasks.tokenizer import TextTokenizer

ID_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def type_vocab_size(folder: Path) -> int:
    """How many token type ids the model knows (config.json's type_vocab_size, else 1)."""
    try:
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        value = raw.get("type_vocab_size", 1)
    except (OSError, ValueError, AttributeError):
        return 1
    return value if isinstance(value, int) and value > 0 else 1


class BareGraph:
    def __init__(
        self,
        model: str,
        engine: Engine,
        scheduler: Scheduler,
        tokenizer: TextTokenizer,
        type_vocab_size: int,
        limits: Limits,
        metrics: Metrics,
    ) -> None:
        self.model = model
        # attention_mask is always taken: it tells the scheduler each row's real length.
        self.inputs = [
            name for name in ID_INPUTS if name != "token_type_ids" or name in engine.input_names
        ]
        self.outputs = [
            TensorInfo(o.name, o.type, tuple(d if isinstance(d, int) else -1 for d in o.shape))
            for o in engine.outputs()
        ]
        self._scheduler = scheduler
        self._max_length = tokenizer.max_length
        self._vocab_size = tokenizer.vocab_size
        self._type_vocab_size = type_vocab_size
        self._max_rows = limits.max_texts
        self._metrics = metrics

    async def run(
        self, inputs: Mapping[str, np.ndarray], deadline: float | None
    ) -> dict[str, np.ndarray]:
        lengths = self._check(inputs)
        ids, types = inputs["input_ids"], inputs.get("token_type_ids")
        rows, length = ids.shape
        token_rows = [ids[i, : lengths[i]] for i in range(rows)]
        type_rows = None if types is None else [types[i, : lengths[i]] for i in range(rows)]
        per_row = await self._scheduler.submit(token_rows, type_rows, deadline=deadline)
        self._metrics.input_tokens.labels(self.model, TENSORS.name).inc(int(lengths.sum()))
        result: dict[str, np.ndarray] = {}
        for j, out in enumerate(self.outputs):
            parts = [row[j] for row in per_row]
            if len(out.shape) >= 2 and out.shape[1] == -1:  # [batch, sequence, ...]: re-pad
                array = np.zeros((rows, length, *parts[0].shape[1:]), dtype=parts[0].dtype)
                for i, part in enumerate(parts):
                    array[i, : lengths[i]] = part
            else:
                array = np.stack(parts)
            result[out.name] = array
        return result

    def _check(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """Each row's real length, once the inputs are known to fit the model."""
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        for other in ("attention_mask", "token_type_ids"):
            if other in inputs and inputs[other].shape != ids.shape:
                raise InvalidArgument(
                    f"input {other!r} has shape {list(inputs[other].shape)}; "
                    f"input_ids has {list(ids.shape)}: they must match"
                )
        rows, length = ids.shape
        if rows == 0 or length == 0:
            raise InvalidArgument(f"input 'input_ids' has shape {list(ids.shape)}: it is empty")
        if rows > self._max_rows:
            raise InvalidArgument(
                f"input 'input_ids' has {rows} rows; the limit is {self._max_rows}"
            )
        if length > self._max_length:
            raise InvalidArgument(
                f"input 'input_ids' has {length} tokens per row; the model takes at most "
                f"{self._max_length}"
            )
        lengths = _lengths(mask)
        real = mask.astype(bool)
        _check_range(ids[real], self._vocab_size, "input_ids")
        if "token_type_ids" in inputs:
            _check_range(inputs["token_type_ids"][real], self._type_vocab_size, "token_type_ids")
        return lengths


def _lengths(mask: np.ndarray) -> np.ndarray:
    """Each row's real length; the mask must be 1s then 0s (the scheduler pads on the right)."""
    if not np.isin(mask, (0, 1)).all():
        raise InvalidArgument("input 'attention_mask' must hold only 0 and 1")
    lengths = mask.sum(axis=1)
    empty = np.flatnonzero(lengths == 0)
    if len(empty):
        raise InvalidArgument(f"input 'attention_mask' row {int(empty[0])} is all zeros")
    prefix = np.arange(mask.shape[1])[None, :] < lengths[:, None]
    holes = np.flatnonzero((prefix != mask.astype(bool)).any(axis=1))
    if len(holes):
        raise InvalidArgument(
            f"input 'attention_mask' row {int(holes[0])} is not 1s followed by 0s "
            "(pad on the right)"
        )
    return lengths


def _check_range(values: np.ndarray, size: int, name: str) -> None:
    if values.size and (int(values.min()) < 0 or int(values.max()) >= size):
        raise InvalidArgument(
            f"input {name!r} holds ids outside 0..{size - 1} (the model's vocabulary)"
        )
