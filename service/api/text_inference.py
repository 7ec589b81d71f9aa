"""attnserve.v1.TextInference: Summarize, Answer, Embed, ListModels."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from service.api.calls import CallRunner
from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from service.repository import Repository
from service.seq2seq.pipeline import Options
from service.tasks.answer import answer
from service.tasks.embed import embed
from service.tasks.span_qa import SpanQA, SpanRequest
from service.tasks.spans import ScoredSpan
from service.tasks.summarize import summarize


def _span(span: ScoredSpan) -> pb.Span:
    return pb.Span(text=span.text, score=span.score, start=span.start, end=span.end)


def _options(request: pb.SummarizeRequest) -> Options:
    return Options(
        max_new_tokens=request.max_new_tokens,
        num_beams=request.num_beams,
        length_penalty=request.length_penalty,
        no_repeat_ngram_size=request.no_repeat_ngram_size,
    )


class TextInferenceServicer(pb_grpc.TextInferenceServicer):
    def __init__(self, repository: Repository, calls: CallRunner) -> None:
        self._repo = repository
        self._calls = calls

    async def Embed(
        self, request: pb.EmbedRequest, context: grpc.aio.ServicerContext
    ) -> pb.EmbedResponse:
        async def work(deadline: float | None) -> pb.EmbedResponse:
            model, encoder = self._repo.encoder_for(request.model, "embed")
            vectors = await embed(encoder, list(request.texts), request.normalize, deadline)
            return pb.EmbedResponse(
                embeddings=[pb.Embedding(values=row) for row in vectors.values.tolist()],
                model=model.name,
                dimensions=vectors.values.shape[1],
                truncated_texts=vectors.truncated,
            )

        return await self._calls.run(context, "embed", request.model, work)

    async def Summarize(
        self, request: pb.SummarizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.SummarizeResponse:
        async def work(deadline: float | None) -> pb.SummarizeResponse:
            summarizer = self._repo.resolve(request.model).summarizer
            if summarizer is not None:
                abstract = await summarizer.summarize(request.text, _options(request), deadline)
                return pb.SummarizeResponse(
                    summary=abstract.text, model=summarizer.model, token_ids=abstract.token_ids
                )
            model, encoder = self._repo.encoder_for(request.model, "summarize")
            result = await summarize(encoder, request.text, request.max_sentences, deadline)
            return pb.SummarizeResponse(
                summary=result.text,
                sentences=[_span(s) for s in result.sentences],
                model=model.name,
                truncated_sentences=result.truncated_sentences,
            )

        return await self._calls.run(context, "summarize", request.model, work)

    async def SummarizeStream(
        self, request: pb.SummarizeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.SummarizeChunk]:
        async def work(deadline: float | None) -> AsyncIterator[pb.SummarizeChunk]:
            summarizer = self._repo.resolve(request.model).summarizer
            if summarizer is None:
                # Extractive: the summary is known only whole.
                model, encoder = self._repo.encoder_for(request.model, "summarize")
                result = await summarize(encoder, request.text, request.max_sentences, deadline)
                yield pb.SummarizeChunk(text=result.text, done=True, model=model.name)
                return
            # One piece behind, so that the last chunk can say it is the last.
            held: str | None = None
            async for piece in summarizer.stream(request.text, _options(request), deadline):
                if held is not None:
                    yield pb.SummarizeChunk(text=held, model=summarizer.model)
                held = piece
            yield pb.SummarizeChunk(text=held or "", done=True, model=summarizer.model)

        async for chunk in self._calls.stream(context, "summarize", request.model, work):
            yield chunk

    async def Answer(
        self, request: pb.AnswerRequest, context: grpc.aio.ServicerContext
    ) -> pb.AnswerResponse:
        async def work(deadline: float | None) -> pb.AnswerResponse:
            model, answerer = self._repo.answerer_for(request.model)
            if isinstance(answerer, SpanQA):
                options = SpanRequest(
                    request.question,
                    request.context,
                    request.top_k,
                    request.max_answer_length,
                    request.doc_stride,
                    request.allow_no_answer,
                )
                result = await answerer.answer(options, deadline)
            else:
                result = await answer(
                    answerer, request.question, request.context, request.top_k, deadline
                )
            return pb.AnswerResponse(
                answers=[_span(a) for a in result.answers],
                model=model.name,
                truncated_sentences=result.truncated_sentences,
            )

        return await self._calls.run(context, "answer", request.model, work)

    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        infos = []
        for model in self._repo.models.values():
            manifest = model.manifest
            infos.append(
                pb.ModelInfo(
                    name=model.name,
                    tasks=model.tasks,
                    architecture=manifest.architecture if manifest else "",
                    max_sequence_length=manifest.max_sequence_length if manifest else 0,
                    providers=model.providers,
                    ready=model.ready,
                    precision=manifest.precision if manifest else "",
                    error=model.error,
                    dimensions=manifest.hidden_size if manifest and "embed" in model.tasks else 0,
                )
            )
        return pb.ListModelsResponse(models=infos, default_model=self._repo.settings.default_model)
