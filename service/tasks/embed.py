"""Embed: one vector per text, in request order."""

from __future__ import annotations

from service.errors import InvalidArgument
from service.tasks.encoder import SentenceEncoder, Vectors


async def embed(
    encoder: SentenceEncoder, texts: list[str], normalize: bool, deadline: float | None
) -> Vectors:
    if not texts:
        raise InvalidArgument("texts is empty: send at least one text")
    if len(texts) > encoder.limits.max_texts:
        raise InvalidArgument(
            f"{len(texts)} texts in one request; the limit is {encoder.limits.max_texts}"
        )
    for i, text in enumerate(texts):
        encoder.check_text(text, f"texts[{i}]")
    return await encoder.encode(texts, "embed", normalize, deadline)
