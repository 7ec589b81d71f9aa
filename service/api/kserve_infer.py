"""What a V2 ModelInfer computes: the same pipelines and scheduler as attnserve.v1.

The task models run their N items concurrently so that the items' rows meet in the same
batches. The bare model sends each row's real tokens (mask sum) through the model's
scheduler and puts the hidden states back at their padded positions, with zeros after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from service.api.kserve_models import BARE, Catalogue, V2Name
from service.api.kserve_tensors import BYTES, Tensor, TensorSpec, bool_parameter, int_parameter
from service.api.kserve_tensors import texts as decode_texts
from service.api.protos.inference import grpc_predict_v2_pb2 as pb
from service.errors import InvalidArgument
from service.metrics import Metrics
from service.repository import Model
from service.tasks.answer import answer
from service.tasks.embed import embed
from service.tasks.encoder import SentenceEncoder
from service.tasks.summarize import summarize

T = TypeVar("T")
Params = Mapping[str, pb.InferParameter]


async def infer(
    catalogue: Catalogue,
    metrics: Metrics,
    v2: V2Name,
    model: Model,
    inputs: dict[str, Tensor],
    params: Params,
    deadline: float | None,
) -> dict[str, Tensor]:
    """The model's outputs by name, for inputs already checked by read_inputs."""
    encoder = model.encoder
    assert encoder is not None  # the catalogue only hands out ready models
    if v2.task == BARE:
        outputs = catalogue.outputs(v2, model)
        vocab = (encoder.tokenizer.vocab_size, catalogue.type_vocabulary(model))
        return await _bare(encoder, metrics, inputs, outputs, vocab, deadline)
    if v2.task == "embed":
        items = _texts(encoder, inputs["TEXT"])
        normalize = bool_parameter(params, "normalize", True)
        vectors = await embed(encoder, items, normalize, deadline)
        return _named(Tensor("EMBEDDING", "FP32", vectors.values.shape, array=vectors.values))
    if v2.task == "answer":
        questions = _texts(encoder, inputs["QUESTION"])
        contexts = _texts(encoder, inputs["CONTEXT"])
        if len(questions) != len(contexts):
            raise InvalidArgument(
                f"QUESTION has {len(questions)} elements and CONTEXT {len(contexts)}; "
                "send one question per context"
            )
        results = await _gather(
            answer(encoder, q, c, 1, deadline) for q, c in zip(questions, contexts, strict=True)
        )
        best = [r.answers[0] if r.answers else None for r in results]  # none: "" and 0
        texts = [b.text.encode() if b else b"" for b in best]
        scores = np.array([b.score if b else 0.0 for b in best], dtype=np.float32)
        return _named(
            Tensor("ANSWER", BYTES, (len(best),), items=texts),
            Tensor("SCORE", "FP32", (len(best),), array=scores),
        )
    assert v2.task == "summarize"
    items = _texts(encoder, inputs["TEXT"])
    picks = int_parameter(params, "max_sentences", 0)  # 0: the server's default
    summaries = await _gather(summarize(encoder, text, picks, deadline) for text in items)
    texts = [s.text.encode() for s in summaries]
    return _named(Tensor("SUMMARY", BYTES, (len(texts),), items=texts))


def _named(*tensors: Tensor) -> dict[str, Tensor]:
    return {t.name: t for t in tensors}


def _texts(encoder: SentenceEncoder, tensor: Tensor) -> list[str]:
    items = decode_texts(tensor)
    if not items:
        raise InvalidArgument(f"{tensor.name} is empty: send at least one element")
    if len(items) > encoder.limits.max_texts:
        raise InvalidArgument(
            f"{tensor.name} has {len(items)} elements; the limit is {encoder.limits.max_texts}"
        )
    for i, text in enumerate(items):
        encoder.check_text(text, f"{tensor.name}[{i}]")
    return items


async def _gather(calls: Iterable[Awaitable[T]]) -> list[T]:
    """All results in order; on the first failure the other calls are cancelled."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()  # their queued rows leave the scheduler's queue
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _bare(
    encoder: SentenceEncoder,
    metrics: Metrics,
    inputs: dict[str, Tensor],
    outputs: Sequence[TensorSpec],
    vocab: tuple[int, int],
    deadline: float | None,
) -> dict[str, Tensor]:
    ids = inputs["input_ids"].values()
    mask = inputs["attention_mask"].values()
    types = inputs["token_type_ids"].values() if "token_type_ids" in inputs else None
    for other in ("attention_mask", "token_type_ids"):
        if other in inputs and inputs[other].shape != ids.shape:
            raise InvalidArgument(
                f"input {other!r} has shape {list(inputs[other].shape)}; "
                f"input_ids has {list(ids.shape)}: they must match"
            )
    rows, length = ids.shape
    if rows == 0 or length == 0:
        raise InvalidArgument(f"input 'input_ids' has shape {list(ids.shape)}: it is empty")
    if rows > encoder.limits.max_texts:
        raise InvalidArgument(
            f"input 'input_ids' has {rows} rows; the limit is {encoder.limits.max_texts}"
        )
    if length > encoder.tokenizer.max_length:
        raise InvalidArgument(
            f"input 'input_ids' has {length} tokens per row; the model takes at most "
            f"{encoder.tokenizer.max_length}"
        )
    lengths = _lengths(mask)
    real = mask.astype(bool)
    _check_range(ids[real], vocab[0], "input_ids")
    if types is not None:
        _check_range(types[real], vocab[1], "token_type_ids")
    token_rows = [ids[i, : lengths[i]] for i in range(rows)]
    type_rows = None if types is None else [types[i, : lengths[i]] for i in range(rows)]
    per_row = await encoder.scheduler.submit(token_rows, type_rows, deadline=deadline)
    metrics.input_tokens.labels(encoder.model, BARE).inc(int(lengths.sum()))
    result: dict[str, Tensor] = {}
    for j, spec in enumerate(outputs):
        parts = [row[j] for row in per_row]
        if len(spec.shape) >= 2 and spec.shape[1] == -1:  # [batch, sequence, ...]: re-pad
            array = np.zeros((rows, length, *parts[0].shape[1:]), dtype=parts[0].dtype)
            for i, part in enumerate(parts):
                array[i, : lengths[i]] = part
        else:
            array = np.stack(parts)
        result[spec.name] = Tensor(spec.name, spec.datatype, array.shape, array=array)
    return result


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
