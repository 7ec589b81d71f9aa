"""Text to token ids with the model's own tokenizer.json (the Rust `tokenizers` library).

Padding is switched off (some tokenizer.json files pad every input to a fixed length) and
truncation is set to the model's window: the scheduler pads per batch, to the batch's
longest row, and every truncation is reported to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer


@dataclass(frozen=True, slots=True)
class Encoded:
    ids: np.ndarray  # int64
    truncated: bool


class TextTokenizer:
    def __init__(self, path: Path, max_length: int) -> None:
        self.max_length = max_length
        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length)

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    def encode(self, texts: list[str]) -> list[Encoded]:
        # Without the character offsets no caller here needs (a fifth of `encode`'s time);
        # several texts in parallel on the library's threads.
        encodings = self._tok.encode_batch_fast(texts)
        return [
            Encoded(np.asarray(e.ids, dtype=np.int64), truncated=bool(e.overflowing))
            for e in encodings
        ]

    def encode_with_offsets(self, texts: list[str]) -> list[Encoding]:
        """The library's encodings, with each token's code-point offsets into its text
        (special tokens cover none: start == end) and its type ids."""
        return list(self._tok.encode_batch(texts))

    def encode_whole(self, text: str, special_tokens: bool = True) -> np.ndarray:
        """One text's ids, never truncated (a prompt must fit whole or be refused), special
        tokens added as the tokenizer's own configuration adds them, or none."""
        encoding = self._whole.encode(text, add_special_tokens=special_tokens)
        return np.asarray(encoding.ids, dtype=np.int64)

    @cached_property
    def _whole(self) -> Tokenizer:
        """The same tokenizer without truncation, made on first use: only generating models
        tokenize prompts (refused whole when too long, never cut)."""
        whole = Tokenizer.from_str(self._tok.to_str())
        whole.no_padding()
        whole.no_truncation()
        return whole

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids, special tokens (end of sequence, padding) left out."""
        return str(self._tok.decode(ids, skip_special_tokens=True))
