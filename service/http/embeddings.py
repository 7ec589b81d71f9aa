"""OpenAI's embeddings API: ``POST /v1/embeddings`` and ``GET /v1/models``, as the OpenAI
SDKs (and LangChain's and LlamaIndex's OpenAI embeddings on top of them) call them.

Vectors are unit length, as OpenAI's are; ``usage`` counts the tokens the model read. The
SDKs ask for base64 (little-endian float32) unless told otherwise.
"""

from __future__ import annotations

import base64
import time
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.calls import CallRunner
from service.errors import InvalidArgument, ModelNotFound
from service.http.app import Endpoint, checked, openai_error, parse_object
from service.http.context import HttpContext
from service.repository import Repository
from service.tasks.pipelines import EMBED, Vectors
from service.tasks.texts import check_texts


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # "user" and whatever a newer SDK adds
    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    model: StrictStr = ""
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = Field(None, ge=1)


class OpenAIEmbeddings:
    def __init__(self, repository: Repository, calls: CallRunner) -> None:
        self._repo = repository
        self._calls = calls
        self._started = int(time.time())

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("POST", "/v1/embeddings", self.embeddings, openai_error),
            Endpoint("GET", "/v1/models", self.models, openai_error),
            Endpoint("GET", "/v1/models/{model}", self.model, openai_error),
        ]

    async def embeddings(self, request: Request, body: bytes, context: HttpContext) -> Response:
        query = checked(EmbeddingsRequest, parse_object(body), "the embeddings request")
        texts = _texts(query.input)

        async def work(deadline: float | None) -> tuple[str, Vectors]:
            model, embedder = self._repo.pipeline(query.model, EMBED)
            if query.dimensions not in (None, model.card.dimensions):
                raise InvalidArgument(
                    f"dimensions {query.dimensions}: model {model.name!r} gives "
                    f"{model.card.dimensions} and cannot shorten its vectors; leave it out"
                )
            checked_texts = check_texts(texts, "input", self._repo.limits)
            return model.name, await embedder.embed(checked_texts, True, deadline)

        label = self._calls.model_label(query.model)
        name, vectors = await self._calls.run(
            context.as_servicer_context(), EMBED.name, label, work
        )
        encode = _base64 if query.encoding_format == "base64" else _floats
        data = [
            {"object": "embedding", "index": i, "embedding": encode(row)}
            for i, row in enumerate(vectors.values)
        ]
        usage = {"prompt_tokens": vectors.tokens, "total_tokens": vectors.tokens}
        return JSONResponse({"object": "list", "data": data, "model": name, "usage": usage})

    async def models(self, request: Request, body: bytes, context: HttpContext) -> Response:
        names = [m.name for m in self._repo.models.values() if EMBED.name in m.tasks]
        return JSONResponse({"object": "list", "data": [self._card(n) for n in names]})

    async def model(self, request: Request, body: bytes, context: HttpContext) -> Response:
        name = str(request.path_params["model"])
        model = self._repo.models.get(name)
        if model is None or EMBED.name not in model.tasks:
            raise ModelNotFound(f"model {name!r} not found (GET /v1/models lists them)")
        return JSONResponse(self._card(name))

    def _card(self, name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": self._started, "owned_by": "attnserve"}


def _texts(given: str | list[str] | list[int] | list[list[int]]) -> list[str]:
    if isinstance(given, str):
        return [given]
    if given and not isinstance(given[0], str):
        # The SDK's own tokens are tiktoken's, not this model's vocabulary.
        raise InvalidArgument(
            "input holds token ids; send text (LangChain's OpenAIEmbeddings sends token ids "
            "unless check_embedding_ctx_length=False)"
        )
    return [str(text) for text in given]


def _floats(row: np.ndarray) -> list[float]:
    return list(row.tolist())


def _base64(row: np.ndarray) -> str:
    return base64.b64encode(row.astype("<f4", copy=False).tobytes()).decode()
