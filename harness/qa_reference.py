"""The transformers question-answering pipeline, as the reference for served span answers.

transformers 5 removed `pipeline("question-answering")`. This is its last release's
(4.57.6) algorithm, transcribed step for step for a fast tokenizer: the tokenizer call
(question first, truncation only_second, stride, overflowing windows), p_mask with the
classifier token kept, one PyTorch forward per window, transformers' own
`select_starts_ends` (still shipped with document question answering) with
`top_k * 2 + 10` candidates, words from `token_to_word` / `word_to_chars`, merging of equal
answers (case-insensitive) by adding scores, and the no-answer entry.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from transformers.pipelines.document_question_answering import select_starts_ends


def pipeline_answers(
    model: Any,
    tokenizer: Any,
    question: str,
    context: str,
    *,
    max_seq_len: int,
    doc_stride: int,
    max_answer_len: int,
    top_k: int,
    handle_impossible_answer: bool,
) -> list[dict[str, Any]]:
    """The pipeline's answers, best first; the no-answer entry is marked `"null": True`."""
    encoded = tokenizer(
        text=question,
        text_pair=context,
        padding="do_not_pad",
        truncation="only_second",
        max_length=max_seq_len,
        stride=doc_stride,
        return_token_type_ids=True,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    min_null_score = 1000000.0
    answers: list[dict[str, Any]] = []
    for span in range(len(encoded["input_ids"])):
        ids = encoded["input_ids"][span]
        p_mask = [sequence != 1 for sequence in encoded.sequence_ids(span)]
        for index in np.nonzero(np.array(ids) == tokenizer.cls_token_id)[0]:
            p_mask[index] = False
        inputs = {name: torch.tensor([encoded[name][span]]) for name in tokenizer.model_input_names}
        with torch.no_grad():
            output = model(**inputs)
        starts, ends, scores, min_null_score = select_starts_ends(
            output.start_logits,
            output.end_logits,
            np.array(p_mask, dtype=np.int64),
            inputs["attention_mask"].numpy(),
            min_null_score,
            top_k * 2 + 10,
            handle_impossible_answer,
            max_answer_len,
        )
        encoding = encoded[span]
        for s, e, score in zip(starts, ends, scores, strict=True):
            start, end = _indices(encoding, int(s), int(e))
            text = context[start:end]
            same = next((a for a in answers if a["answer"].lower() == text.lower()), None)
            if same is not None:
                same["score"] += score.item()
            else:
                answers.append({"score": score.item(), "start": start, "end": end, "answer": text})
    if handle_impossible_answer:
        answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": "", "null": True})
    return sorted(answers, key=lambda answer: answer["score"], reverse=True)[:top_k]


def _indices(encoding: Any, s: int, e: int) -> tuple[int, int]:
    try:
        start_word = encoding.token_to_word(s)
        end_word = encoding.token_to_word(e)
        start = encoding.word_to_chars(start_word, sequence_index=1)[0]
        end = encoding.word_to_chars(end_word, sequence_index=1)[1]
    except Exception:  # as the pipeline: tokens outside any word keep their own offsets
        start = encoding.offsets[s][0]
        end = encoding.offsets[e][1]
    return int(start), int(end)
