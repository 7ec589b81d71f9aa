"""attnserve.v1.TextInference: Summarize, Answer, Embed, ListModels."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from service.api.calls import CallRunner
from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from service.errors import InvalidArgument
from service.repository import Repository
from service.tasks.explain import Explanation, of_answers, of_summary, of_texts, requested
from service.tasks.pipelines import (
    ANSWER,
    EMBED,
    GENERATE,
    SUMMARIZE,
    AnswerQuery,
    GenerateQuery,
    SummaryQuery,
)
from service.tasks.spans import ScoredSpan
from service.tasks.texts import check_text, check_texts


def _span(span: ScoredSpan) -> pb.Span:
    return pb.Span(text=span.text, score=span.score, start=span.start, end=span.end)


def _explanation(e: Explanation) -> pb.Explanation:
    tokens = [
        pb.TokenWeight(token=t.token, start=t.start, end=t.end, weight=t.weight) for t in e.tokens
    ]
    return pb.Explanation(tokens=tokens, method=e.method, target=e.target)


def _explain_options(
    request: pb.EmbedRequest | pb.AnswerRequest | pb.SummarizeRequest,
) -> tuple[bool, str, int]:
    return request.explain, request.explain_method, request.explain_layer


class TextInferenceServicer(pb_grpc.TextInferenceServicer):
    """Requests to task queries and results to replies; the model's pipelines do the rest."""

    def __init__(self, repository: Repository, calls: CallRunner) -> None:
        self._repo = repository
        self._calls = calls

    async def Embed(
        self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext
    ) -> pb.EmbedResponse:
        async def work(deadline: float | None) -> pb.EmbedResponse:
            model, embedder = self._repo.pipeline(request.model, EMBED)
            texts = check_texts(list(request.texts), "texts", self._repo.limits)
            explaining = requested(model, *_explain_options(request))
            vectors = await embedder.embed(texts, request.normalize, deadline)
            explanations = []
            if explaining is not None:
                explanations = [
                    _explanation(e) for e in await of_texts(explaining, texts, deadline)
                ]
            return pb.EmbedResponse(
                embeddings=[pb.Embedding(values=row) for row in vectors.values.tolist()],
                model=model.name,
                dimensions=vectors.values.shape[1],
                truncated_texts=vectors.truncated,
                explanations=explanations,
            )

        label = self._calls.model_label(request.model)
        return await self._calls.run(context, EMBED.name, label, work)

    async def Summarize(
        self, request: pb.SummarizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.SummarizeResponse:
        async def work(deadline: float | None) -> pb.SummarizeResponse:
            model, summarizer = self._repo.pipeline(request.model, SUMMARIZE)
            query = self._summary_query(request)
            explaining = requested(model, *_explain_options(request))
            summary = await summarizer.summarize(query, deadline)
            explanations = []
            if explaining is not None:
                explanations = [
                    _explanation(await of_summary(explaining, query.text, summary, deadline))
                ]
            return pb.SummarizeResponse(
                summary=summary.text,
                sentences=[_span(s) for s in summary.sentences],
                model=model.name,
                truncated_sentences=summary.truncated_sentences,
                token_ids=summary.token_ids,
                explanations=explanations,
            )

        label = self._calls.model_label(request.model)
        return await self._calls.run(context, SUMMARIZE.name, label, work)

    async def SummarizeStream(
        self, request: pb.SummarizeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SummarizeChunk]:
        async def work(deadline: float | None) -> AsyncIterator[pb.SummarizeChunk]:
            model, summarizer = self._repo.pipeline(request.model, SUMMARIZE)
            if request.explain:
                raise InvalidArgument("explain is offered on Summarize, not on SummarizeStream")
            query = self._summary_query(request)
            # One piece behind, so that the last chunk can say it is the last.
            held: str | None = None
            async for piece in summarizer.stream(query, deadline):
                if held is not None:
                    yield pb.SummarizeChunk(text=held, model=model.name)
                held = piece
            yield pb.SummarizeChunk(text=held or "", done=True, model=model.name)

        label = self._calls.model_label(request.model)
        async for chunk in self._calls.stream(context, SUMMARIZE.name, label, work):
            yield chunk

    async def Answer(
        self, request: pb.AnswerRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnswerResponse:
        async def work(deadline: float | None) -> pb.AnswerResponse:
            model, answerer = self._repo.pipeline(request.model, ANSWER)
            limits = self._repo.limits
            query = AnswerQuery(
                check_text(request.question, "question", limits),
                check_text(request.context, "context", limits),
                request.top_k,
                request.max_answer_length,
                request.doc_stride,
                request.allow_no_answer,
            )
            explaining = requested(model, *_explain_options(request))
            result = await answerer.answer(query, deadline)
            explanations = []
            if explaining is not None:
                explained = await of_answers(explaining, query.context, result, deadline)
                explanations = [_explanation(e) for e in explained]
            return pb.AnswerResponse(
                answers=[_span(a) for a in result.answers],
                model=model.name,
                truncated_sentences=result.truncated_sentences,
                explanations=explanations,
            )

        label = self._calls.model_label(request.model)
        return await self._calls.run(context, ANSWER.name, label, work)

    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> pb.GenerateResponse:
        async def work(deadline: float | None) -> pb.GenerateResponse:
            model, generator = self._repo.pipeline(request.model, GENERATE)
            done = await generator.generate(self._generate_query(request), deadline)
            return pb.GenerateResponse(
                text=done.text,
                model=model.name,
                token_ids=done.token_ids,
                finish_reason=done.finish_reason,
                prompt_tokens=done.prompt_tokens,
            )

        label = self._calls.model_label(request.model)
        return await self._calls.run(context, GENERATE.name, label, work)

    async def GenerateStream(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.GenerateChunk]:
        async def work(deadline: float | None) -> AsyncIterator[pb.GenerateChunk]:
            model, generator = self._repo.pipeline(request.model, GENERATE)
            async for piece in generator.stream(self._generate_query(request), deadline):
                yield pb.GenerateChunk(
                    text=piece.text,
                    done=bool(piece.finish_reason),
                    model=model.name,
                    finish_reason=piece.finish_reason,
                )

        label = self._calls.model_label(request.model)
        async for chunk in self._calls.stream(context, GENERATE.name, label, work):
            yield chunk

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        infos = []
        for model in self._repo.models.values():
            card = model.card
            infos.append(
                pb.ModelInfo(
                    name=model.name,
                    tasks=model.tasks,
                    architecture=card.architecture,
                    max_sequence_length=card.max_sequence_length,
                    providers=model.providers,
                    ready=model.ready,
                    precision=card.precision,
                    error=model.error,
                    dimensions=card.dimensions,
                )
            )
        return pb.ListModelsResponse(models=infos, default_model=self._repo.settings.default_model)

    def _generate_query(self, request: pb.GenerateRequest) -> GenerateQuery:
        return GenerateQuery(
            check_text(request.prompt, "prompt", self._repo.limits),
            request.max_new_tokens,
            request.num_beams,
            request.temperature,
            request.top_p,
            request.seed,
            tuple(request.stop),
        )

    def _summary_query(self, request: pb.SummarizeRequest) -> SummaryQuery:
        return SummaryQuery(
            check_text(request.text, "text", self._repo.limits),
            request.max_sentences,
            request.max_new_tokens,
            request.num_beams,
            request.length_penalty,
            request.no_repeat_ngram_size,
        )
