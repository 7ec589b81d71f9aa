"""A scored piece of the request's text, with code-point offsets into it."""

from __future__ import annotations

from dataclasses import dataclass

from service.errors import InvalidArgument

# Largest max_sentences / top_k a request may ask for: far beyond any useful answer, small
# enough that a typo (or 2**32-1) is caught as a bad option rather than served.
MAX_PICKS = 1000


@dataclass(frozen=True, slots=True)
class ScoredSpan:
    text: str
    score: float
    start: int
    end: int


def check_picks(value: int, default: int, name: str) -> int:
    """The option's value, with 0 meaning the server default; INVALID_ARGUMENT if absurd."""
    if value == 0:
        return default
    if not 0 < value <= MAX_PICKS:
        raise InvalidArgument(f"{name} must be between 1 and {MAX_PICKS}; got {value}")
    return value
