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
from service.seq2seq.pipeline import Options
from service.tasks.answer import answer
from service.tasks.embed import embed
from service.tasks.encoder import Limits, check_texts
from service.tasks.span_qa import SpanRequest
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
    """The model's outputs by name, for inputs already checked by read_inputs.

    The catalogue only hands out ready models and tasks they can do; each task goes to the
    pipeline the model has for it, as in attnserve.v1.
    """
    limits = catalogue.limits()
    if v2.task == BARE:
        outputs = catalogue.outputs(v2, model)
        return await _bare(catalogue, model, metrics, inputs, outputs, deadline)
    if v2.task == "embed":
        assert model.encoder is not None
        items = _texts(limits, inputs["TEXT"])
        normalize = bool_parameter(params, "normalize", True)
        vectors = await embed(model.encoder, items, normalize, deadline)
        return _named(Tensor("EMBEDDING", "FP32", vectors.values.shape, array=vectors.values))
    if v2.task == "answer":
        return await _answer(model, limits, inputs, deadline)
    assert v2.task == "summarize"
    items = _texts(limits, inputs["TEXT"])
    if model.summarizer is not None:
        abstracts = await _gather(
            model.summarizer.summarize(text, Options(), deadline) for text in items
        )
        texts = [a.text.encode() for a in abstracts]
    else:
        assert model.encoder is not None
        picks = int_parameter(params, "max_sentences", 0)  # 0: the server's default
        summaries = await _gather(summarize(model.encoder, text, picks, deadline) for text in items)
        texts = [s.text.encode() for s in summaries]
    return _named(Tensor("SUMMARY", BYTES, (len(texts),), items=texts))


async def _answer(
    model: Model, limits: Limits, inputs: dict[str, Tensor], deadline: float | None
) -> dict[str, Tensor]:
    questions = _texts(limits, inputs["QUESTION"])
    contexts = _texts(limits, inputs["CONTEXT"])
    if len(questions) != len(contexts):
        raise InvalidArgument(
            f"QUESTION has {len(questions)} elements and CONTEXT {len(contexts)}; "
            "send one question per context"
        )
    pairs = zip(questions, contexts, strict=True)
    if model.span_qa is not None:
        span_qa = model.span_qa
        results = await _gather(span_qa.answer(SpanRequest(q, c), deadline) for q, c in pairs)
    else:
        assert model.encoder is not None
        encoder = model.encoder
        results = await _gather(answer(encoder, q, c, 1, deadline) for q, c in pairs)
    best = [r.answers[0] if r.answers else None for r in results]  # none: "" and 0
    texts = [b.text.encode() if b else b"" for b in best]
    scores = np.array([b.score if b else 0.0 for b in best], dtype=np.float32)
    return _named(
        Tensor("ANSWER", BYTES, (len(best),), items=texts),
        Tensor("SCORE", "FP32", (len(best),), array=scores),
    )


def _named(*tensors: Tensor) -> dict[str, Tensor]:
    return {t.name: t for t in tensors}


def _texts(limits: Limits, tensor: Tensor) -> list[str]:
    items = decode_texts(tensor)
    check_texts(items, tensor.name, limits)
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
    catalogue: Catalogue,
    model: Model,
    metrics: Metrics,
    inputs: dict[str, Tensor],
    outputs: Sequence[TensorSpec],
    deadline: float | None,
) -> dict[str, Tensor]:
    scheduler, tokenizer = model.scheduler, model.tokenizer
    assert scheduler is not None and tokenizer is not None  # the catalogue checked
    max_rows = catalogue.limits().max_texts
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
    if rows > max_rows:
        raise InvalidArgument(f"input 'input_ids' has {rows} rows; the limit is {max_rows}")
    if length > tokenizer.max_length:
        raise InvalidArgument(
            f"input 'input_ids' has {length} tokens per row; the model takes at most "
            f"{tokenizer.max_length}"
        )
    lengths = _lengths(mask)
    real = mask.astype(bool)
    _check_range(ids[real], tokenizer.vocab_size, "input_ids")
    if types is not None:
        _check_range(types[real], catalogue.type_vocabulary(model), "token_type_ids")
    token_rows = [ids[i, : lengths[i]] for i in range(rows)]
    type_rows = None if types is None else [types[i, : lengths[i]] for i in range(rows)]
    per_row = await scheduler.submit(token_rows, type_rows, deadline=deadline)
    metrics.input_tokens.labels(model.name, BARE).inc(int(lengths.sum()))
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
