"""Embed on a sentence encoder: one vector per text, in request order."""

from __future__ import annotations

from collections.abc import Sequence

from service.tasks.encoder import SentenceEncoder
from service.tasks.pipelines import EMBED, Vectors
from service.tasks.texts import Text


class EncoderEmbedder:
    def __init__(self, encoder: SentenceEncoder) -> None:
        self._encoder = encoder

    async def embed(
        self, texts: Sequence[Text], normalize: bool, deadline: float | None
    ) -> Vectors:
        return await self._encoder.encode(texts, EMBED.name, normalize, deadline)
