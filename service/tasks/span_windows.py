"""Question + context → model windows, as the transformers question-answering pipeline makes
them: the question first, the context cut into overlapping windows (truncation only_second
with a document stride, overflowing encodings), every window keeping its offsets.

Call from the event-loop thread only: the stride is set on the shared tokenizer per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from service.errors import InvalidArgument

CONTEXT = 1  # sequence index of the context in a (question, context) pair


@dataclass(frozen=True, slots=True)
class Window:
    ids: np.ndarray  # int64 [tokens]
    type_ids: np.ndarray  # int64 [tokens]
    # Tokens an answer may start or end on: the context's, and the classifier token's
    # (kept unmasked as the pipeline does; its logit is the "no answer" score).
    candidates: np.ndarray  # bool [tokens]
    encoding: Encoding  # for token → word → character offsets in the context


class QuestionWindows:
    def __init__(self, path: Path, max_length: int, cls_token_id: int) -> None:
        self.max_length = max_length
        self._cls_token_id = cls_token_id
        self._pairs = Tokenizer.from_file(str(path))
        self._pairs.no_padding()
        # Lengths are measured untruncated, to check a stride before the tokenizer sees it.
        self._plain = Tokenizer.from_file(str(path))
        self._plain.no_padding()
        self._plain.no_truncation()
        self._specials = self._pairs.num_special_tokens_to_add(is_pair=True)

    def split(self, question: str, context: str, doc_stride: int) -> list[Window]:
        """The windows of one request, in context order; INVALID_ARGUMENT when the question
        leaves no room for the context or for the stride."""
        question_tokens, context_tokens = (
            len(encoding.ids)
            for encoding in self._plain.encode_batch([question, context], add_special_tokens=False)
        )
        room = self.max_length - self._specials - question_tokens
        if question_tokens + context_tokens + self._specials > self.max_length and (
            room <= doc_stride
        ):
            # The tokenizer would panic (stride) or fail (no room): say what to change.
            raise InvalidArgument(
                f"the question takes {question_tokens} of the model's {self.max_length} "
                f"tokens, leaving {max(room, 0)} for each context window; that must exceed "
                f"doc_stride ({doc_stride}): shorten the question or lower doc_stride"
            )
        self._pairs.enable_truncation(
            self.max_length, stride=doc_stride, strategy="only_second", direction="right"
        )
        first = self._pairs.encode(question, context)
        return [self._window(encoding) for encoding in [first, *first.overflowing]]

    def _window(self, encoding: Encoding) -> Window:
        ids = np.asarray(encoding.ids, dtype=np.int64)
        in_context = np.array([sequence == CONTEXT for sequence in encoding.sequence_ids])
        return Window(
            ids=ids,
            type_ids=np.asarray(encoding.type_ids, dtype=np.int64),
            candidates=in_context | (ids == self._cls_token_id),
            encoding=encoding,
        )
