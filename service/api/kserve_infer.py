"""What each KServe V2 model takes and gives, and how its tensors become task arguments.

``<model>.<task>`` takes texts and gives the task's results; ``<model>`` is the model's
graph bare (token ids in, its outputs out). A view only translates: the pipeline behind it,
the same one attnserve.v1 calls, does the work. The N items of a task request run
concurrently so that their rows meet in the same batches.

The task views also give EXPLANATION (BYTES, one JSON document per item: method, target and
the token weights, as attnserve.v1's Explanation) when the request's parameter `explain` is
true (`explain_method`, `explain_layer` as in attnserve.v1), on models that can explain.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Protocol, TypeVar

import numpy as np

from service.api.kserve_tensors import (
    BYTES,
    Tensor,
    TensorSpec,
    bool_parameter,
    float_parameter,
    int_parameter,
    string_parameter,
)
from service.api.kserve_tensors import texts as decode_texts
from service.api.protos.inference import grpc_predict_v2_pb2 as pb
from service.errors import InvalidArgument
from service.repository import Model
from service.tasks.explain import (
    Explaining,
    Explanation,
    of_answers,
    of_summary,
    of_texts,
    requested,
)
from service.tasks.pipelines import (
    ANSWER,
    EMBED,
    GENERATE,
    SUMMARIZE,
    TENSORS,
    AnswerQuery,
    Answers,
    GenerateQuery,
    SummaryQuery,
)
from service.tasks.texts import Limits, Text, check_texts

T = TypeVar("T")
Params = Mapping[str, pb.InferParameter]

_ONNX_TYPES = {
    "tensor(float)": "FP32",
    "tensor(float16)": "FP16",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(int8)": "INT8",
    "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL",
}


@dataclass(frozen=True, slots=True)
class Call:
    """One ModelInfer, its inputs already checked against the view's (read_inputs)."""

    model: Model
    inputs: dict[str, Tensor]
    params: Params
    limits: Limits
    deadline: float | None


class View(Protocol):
    def inputs(self, model: Model) -> list[TensorSpec]: ...

    def outputs(self, model: Model) -> list[TensorSpec]: ...

    async def infer(self, call: Call) -> dict[str, Tensor]:
        """The outputs by name."""
        ...


class _Embed:
    def inputs(self, model: Model) -> list[TensorSpec]:
        return [TensorSpec.text("TEXT")]

    def outputs(self, model: Model) -> list[TensorSpec]:
        return [TensorSpec("EMBEDDING", "FP32", (-1, model.card.dimensions)), *_explained(model)]

    async def infer(self, call: Call) -> dict[str, Tensor]:
        texts = _texts(call, "TEXT")
        normalize = bool_parameter(call.params, "normalize", True)
        explaining = _explaining(call)
        vectors = await call.model.pipeline(EMBED).embed(texts, normalize, call.deadline)
        out = _named(Tensor("EMBEDDING", "FP32", vectors.values.shape, array=vectors.values))
        if explaining is not None:
            out |= _explanations(await of_texts(explaining, texts, call.deadline))
        return out


class _Answer:
    def inputs(self, model: Model) -> list[TensorSpec]:
        return [TensorSpec.text("QUESTION"), TensorSpec.text("CONTEXT")]

    def outputs(self, model: Model) -> list[TensorSpec]:
        return [
            TensorSpec("ANSWER", BYTES, (-1,)),
            TensorSpec("SCORE", "FP32", (-1,)),
            *_explained(model),
        ]

    async def infer(self, call: Call) -> dict[str, Tensor]:
        questions = _texts(call, "QUESTION")
        contexts = _texts(call, "CONTEXT")
        if len(questions) != len(contexts):
            raise InvalidArgument(
                f"QUESTION has {len(questions)} elements and CONTEXT {len(contexts)}; "
                "send one question per context"
            )
        answerer = call.model.pipeline(ANSWER)
        explaining = _explaining(call)
        pairs = zip(questions, contexts, strict=True)
        results = await _gather(answerer.answer(AnswerQuery(q, c), call.deadline) for q, c in pairs)
        best = [r.answers[0] if r.answers else None for r in results]  # none: "" and 0
        texts = [b.text.encode() if b else b"" for b in best]
        scores = np.array([b.score if b else 0.0 for b in best], dtype=np.float32)
        out = _named(
            Tensor("ANSWER", BYTES, (len(best),), items=texts),
            Tensor("SCORE", "FP32", (len(best),), array=scores),
        )
        if explaining is not None:
            explained = await _gather(
                of_answers(explaining, context, _first(result), call.deadline)
                for context, result in zip(contexts, results, strict=True)
            )
            # An item with no answer gets an empty explanation: one per item.
            none = Explanation([], explaining[1].label, "answer 0 over context")
            out |= _explanations([found[0] if found else none for found in explained])
        return out


class _Summarize:
    def inputs(self, model: Model) -> list[TensorSpec]:
        return [TensorSpec.text("TEXT")]

    def outputs(self, model: Model) -> list[TensorSpec]:
        return [TensorSpec("SUMMARY", BYTES, (-1,)), *_explained(model)]

    async def infer(self, call: Call) -> dict[str, Tensor]:
        items = _texts(call, "TEXT")
        picks = int_parameter(call.params, "max_sentences", 0)  # 0: the server's default
        summarizer = call.model.pipeline(SUMMARIZE)
        explaining = _explaining(call)
        queries = [SummaryQuery(text, max_sentences=picks) for text in items]
        summaries = await _gather(summarizer.summarize(q, call.deadline) for q in queries)
        texts = [s.text.encode() for s in summaries]
        out = _named(Tensor("SUMMARY", BYTES, (len(texts),), items=texts))
        if explaining is not None:
            explanations = await _gather(
                of_summary(explaining, text, summary, call.deadline)
                for text, summary in zip(items, summaries, strict=True)
            )
            out |= _explanations(explanations)
        return out


class _Generate:
    """PROMPT → TEXT (and FINISH_REASON), one per prompt; the options as parameters named as
    GenerateRequest's fields."""

    def inputs(self, model: Model) -> list[TensorSpec]:
        return [TensorSpec.text("PROMPT")]

    def outputs(self, model: Model) -> list[TensorSpec]:
        return [TensorSpec("TEXT", BYTES, (-1,)), TensorSpec("FINISH_REASON", BYTES, (-1,))]

    async def infer(self, call: Call) -> dict[str, Tensor]:
        params = call.params
        stop = string_parameter(params, "stop", "")
        queries = [
            GenerateQuery(
                prompt,
                max_new_tokens=int_parameter(params, "max_new_tokens", 0),
                num_beams=int_parameter(params, "num_beams", 0),
                temperature=float_parameter(params, "temperature", 0.0),
                top_p=float_parameter(params, "top_p", 0.0),
                seed=int_parameter(params, "seed", 0),
                stop=(stop,) if stop else (),
            )
            for prompt in _texts(call, "PROMPT")
        ]
        generator = call.model.pipeline(GENERATE)
        done = await _gather(generator.generate(q, call.deadline) for q in queries)
        texts = [d.text.encode() for d in done]
        reasons = [d.finish_reason.encode() for d in done]
        return _named(
            Tensor("TEXT", BYTES, (len(texts),), items=texts),
            Tensor("FINISH_REASON", BYTES, (len(reasons),), items=reasons),
        )


class _Tensors:
    def inputs(self, model: Model) -> list[TensorSpec]:
        # token_type_ids may be left out: the scheduler feeds zeros.
        return [
            TensorSpec(name, "INT64", (-1, -1), optional=name == "token_type_ids")
            for name in model.pipeline(TENSORS).inputs
        ]

    def outputs(self, model: Model) -> list[TensorSpec]:
        return [
            TensorSpec(out.name, _ONNX_TYPES.get(out.onnx_type, "FP32"), out.shape)
            for out in model.pipeline(TENSORS).outputs
        ]

    async def infer(self, call: Call) -> dict[str, Tensor]:
        arrays = {name: tensor.values() for name, tensor in call.inputs.items()}
        outputs = await call.model.pipeline(TENSORS).run(arrays, call.deadline)
        result = {}
        for spec in self.outputs(call.model):
            array = outputs[spec.name]
            result[spec.name] = Tensor(spec.name, spec.datatype, array.shape, array=array)
        return result


# Every V2 view, by the task name in ``<model>.<task>``; TENSORS' is the bare ``<model>``.
VIEWS: dict[str, View] = {
    TENSORS.name: _Tensors(),
    EMBED.name: _Embed(),
    ANSWER.name: _Answer(),
    SUMMARIZE.name: _Summarize(),
    GENERATE.name: _Generate(),
}


EXPLANATION = "EXPLANATION"


def _first(result: Answers) -> Answers:
    """The best answer alone: the one a V2 reply returns."""
    return replace(result, answers=result.answers[:1], windows=result.windows[:1])


def _explained(model: Model) -> list[TensorSpec]:
    """EXPLANATION where the model can explain (given only when a request asks)."""
    return [TensorSpec(EXPLANATION, BYTES, (-1,))] if model.explainer is not None else []


def _explaining(call: Call) -> Explaining | None:
    return requested(
        call.model,
        bool_parameter(call.params, "explain", False),
        string_parameter(call.params, "explain_method", ""),
        int_parameter(call.params, "explain_layer", 0),
    )


def _explanations(explanations: list[Explanation]) -> dict[str, Tensor]:
    items = [json.dumps(asdict(e), ensure_ascii=False).encode() for e in explanations]
    return _named(Tensor(EXPLANATION, BYTES, (len(items),), items=items))


def _named(*tensors: Tensor) -> dict[str, Tensor]:
    return {t.name: t for t in tensors}


def _texts(call: Call, name: str) -> list[Text]:
    tensor = call.inputs[name]
    return check_texts(decode_texts(tensor), tensor.name, call.limits)


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
