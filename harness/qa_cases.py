"""The span-QA cases the tests and `make qa-pipeline-check` share: four tiny architectures,
generated questions and contexts, and the answers the transformers pipeline gives on them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from harness import qa_models
from harness.qa_reference import pipeline_answers

CASES_PER_MODEL = 32
STRIDE = 32  # the stride requests ask for; the models' default is MAX_LENGTH // 2
ARCHITECTURES = {
    "bert": "BertForQuestionAnswering",
    "distilbert": "DistilBertForQuestionAnswering",
    "roberta": "RobertaForQuestionAnswering",
    "electra": "ElectraForQuestionAnswering",
}
# Space-separated words for generated text: ASCII, Latin accents, emoji, CJK, punctuation.
VOCABULARY = (
    "the tower river city bridge engineer built year north south Paris Lisbon winter "
    "summer 1889 330 metres tall people visit because museum coffee, garden. café résumé "
    "naïve Zürich São Paulo 🌱 🙂 emoji-rich façade — «quoted» über straße 東京 data"
)
QUESTION_VOCABULARY = "who what when where why how did was is the tower built city"
WORDS = VOCABULARY.split(" ")
QUESTION_WORDS = QUESTION_VOCABULARY.split(" ")


@dataclass(frozen=True)
class Case:
    question: str
    context: str
    top_k: int
    doc_stride: int  # 0: the model's default
    max_answer_length: int  # 0: the model's default
    allow_no_answer: bool


def cases(seed: int) -> list[Case]:
    rng = random.Random(seed)
    generated = []
    for index in range(CASES_PER_MODEL):
        # A third fit one window; the rest overflow it into two to about eight windows.
        length = rng.randint(5, 40) if index % 3 == 0 else rng.randint(60, 260)
        generated.append(
            Case(
                question=" ".join(rng.choices(QUESTION_WORDS, k=rng.randint(2, 7))) + "?",
                context=" ".join(rng.choices(WORDS, k=length)),
                top_k=(1, 3, 2)[index % 3],
                doc_stride=(0, STRIDE)[index % 2],
                max_answer_length=(0, 0, 4)[index % 3],
                allow_no_answer=index % 4 >= 2,
            )
        )
    return generated


def expected(model: Any, tokenizer: Any, case: Case) -> list[dict[str, Any]]:
    """The pipeline's answers as the server reports them: those ranked above "no answer",
    without the zero-probability fillers the pipeline pads a short list with."""
    answers = pipeline_answers(
        model,
        tokenizer,
        case.question,
        case.context,
        max_seq_len=qa_models.MAX_LENGTH,
        doc_stride=case.doc_stride or qa_models.MAX_LENGTH // 2,
        max_answer_len=case.max_answer_length or 15,
        top_k=case.top_k,
        handle_impossible_answer=case.allow_no_answer,
    )
    kept = []
    for answer in answers:
        if answer.get("null"):
            break
        if answer["score"] > 0:
            kept.append(answer)
    return kept
