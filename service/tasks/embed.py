"""Embed: one vector per text, in request order."""

from __future__ import annotations

from service.tasks.encoder import SentenceEncoder, Vectors, check_texts


async def embed(
    encoder: SentenceEncoder, texts: list[str], normalize: bool, deadline: float | None
) -> Vectors:
    check_texts(texts, "texts", encoder.limits)
    return await encoder.encode(texts, "embed", normalize, deadline)
