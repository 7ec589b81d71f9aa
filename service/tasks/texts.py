"""What one request may send as text, the same for every model and both APIs.

A servicer checks each text once, where it still knows the field's name on the wire
("texts[2]", "QUESTION[0]"); the pipelines take only checked texts (`Text`), so the check
is neither skipped nor repeated.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import NewType

from service.errors import InvalidArgument

Text = NewType("Text", str)  # a text that passed check_text


@dataclass(frozen=True, slots=True)
class Limits:
    max_text_chars: int
    max_texts: int


def _has_visible_character(text: str) -> bool:
    # Zero-width and other format/control characters (categories Cf, Cc) carry no content.
    return any(not c.isspace() and unicodedata.category(c) not in {"Cf", "Cc"} for c in text)


def check_text(text: str, what: str, limits: Limits) -> Text:
    """INVALID_ARGUMENT for an empty, blank or over-long text; `what` names it."""
    if not _has_visible_character(text):
        raise InvalidArgument(f"{what} is empty (or only whitespace and invisible characters)")
    if len(text) > limits.max_text_chars:
        raise InvalidArgument(
            f"{what} has {len(text)} characters; the limit is {limits.max_text_chars}"
        )
    return Text(text)


def check_texts(texts: list[str], what: str, limits: Limits) -> list[Text]:
    """INVALID_ARGUMENT for no texts, too many, or any bad one; `what` names the field."""
    if not texts:
        raise InvalidArgument(f"{what} is empty: send at least one text")
    if len(texts) > limits.max_texts:
        raise InvalidArgument(f"{what} has {len(texts)} texts; the limit is {limits.max_texts}")
    return [check_text(text, f"{what}[{i}]", limits) for i, text in enumerate(texts)]
