"""The tasks a model serves, each behind one small protocol, and the keys that find them.

At load time the repository builds, for each model, a table of its pipelines by task;
servicers look a pipeline up by its Task key and never ask what kind of model is behind
it. A new kind of model is one more builder that fills the table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, cast

import numpy as np

from service.tasks.span_windows import Window
from service.tasks.spans import ScoredSpan
from service.tasks.texts import Text

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class Task(Generic[P]):
    """A task and the protocol its pipelines follow; `name` is model.yaml's and the
    metrics' task label."""

    name: str


# -- embed ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vectors:
    values: np.ndarray  # float32 [N, D]
    truncated: list[int]  # indices of texts cut to the model's window
    tokens: int = 0  # tokens the model read, all texts together (OpenAI's usage)


class Embedder(Protocol):
    async def embed(
        self, texts: Sequence[Text], normalize: bool, deadline: float | None
    ) -> Vectors: ...


# -- answer -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnswerQuery:
    """Options are 0 (or False) for the model's default; answer-sentence selection reads
    only top_k, the span options are for span question-answering models."""

    question: Text
    context: Text
    top_k: int = 0  # 0: one answer
    max_answer_length: int = 0
    doc_stride: int = 0
    allow_no_answer: bool = False


@dataclass(frozen=True, slots=True)
class Answers:
    answers: list[ScoredSpan]  # best first
    truncated_sentences: int
    # Span QA: the model window each answer was read from (its explanation reads it
    # again); empty when the answers are sentences.
    windows: Sequence[Window] = ()


class Answerer(Protocol):
    async def answer(self, query: AnswerQuery, deadline: float | None) -> Answers: ...


# -- summarize --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SummaryQuery:
    """Options are 0 for the model's default: extractive summaries read max_sentences,
    abstractive (seq2seq) ones the generation options."""

    text: Text
    max_sentences: int = 0
    max_new_tokens: int = 0
    num_beams: int = 0
    length_penalty: float = 0.0
    no_repeat_ngram_size: int = 0


@dataclass(frozen=True, slots=True)
class Summary:
    text: str
    sentences: list[ScoredSpan] = field(default_factory=list)  # extractive: document order
    token_ids: list[int] = field(default_factory=list)  # abstractive: the generated ids
    truncated_sentences: int = 0


class Summarizer(Protocol):
    async def summarize(self, query: SummaryQuery, deadline: float | None) -> Summary: ...

    def stream(self, query: SummaryQuery, deadline: float | None) -> AsyncIterator[str]:
        """Pieces of the summary text, in order; joined they equal `summarize`'s text."""
        ...


# -- generate ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerateQuery:
    """GenerateRequest's options; 0 (and empty) for the model's default."""

    prompt: str
    max_new_tokens: int = 0
    num_beams: int = 0
    temperature: float = 0.0  # 0: greedy (or beam search); above: sampling
    top_p: float = 0.0  # 0: 1.0, off
    seed: int = 0  # 0: a fresh random seed
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Generated:
    text: str  # up to the first stop string, which is left out
    token_ids: list[int]  # the generated ids, as generate() returns them after the prompt
    finish_reason: str  # length, stop or eos
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class GeneratedPiece:
    text: str
    finish_reason: str = ""  # set on the last piece only


class Generator(Protocol):
    async def generate(self, query: GenerateQuery, deadline: float | None) -> Generated: ...

    def stream(self, query: GenerateQuery, deadline: float | None) -> AsyncIterator[GeneratedPiece]:
        """Pieces of the text, in order; joined they equal `generate`'s text; the last one
        carries the finish reason."""
        ...


# -- bare tensors -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One output of a model's graph."""

    name: str
    onnx_type: str  # as onnxruntime names it: "tensor(float)"
    shape: tuple[int, ...]  # -1: any size


class TensorRunner(Protocol):
    """The model's graph as it is: right-padded token ids and their mask in, its outputs
    out, padded the same way."""

    inputs: list[str]  # input_ids, attention_mask and token_type_ids where the graph has it
    outputs: list[TensorInfo]

    async def run(
        self, inputs: Mapping[str, np.ndarray], deadline: float | None
    ) -> dict[str, np.ndarray]: ...


EMBED: Task[Embedder] = Task("embed")
ANSWER: Task[Answerer] = Task("answer")
SUMMARIZE: Task[Summarizer] = Task("summarize")
GENERATE: Task[Generator] = Task("generate")
TENSORS: Task[TensorRunner] = Task("infer")


class Pipelines:
    """One model's table: a pipeline per task, each given back with its task's type."""

    def __init__(self) -> None:
        self._by_task: dict[str, object] = {}

    def add(self, task: Task[P], pipeline: P) -> None:
        self._by_task[task.name] = pipeline

    def get(self, task: Task[P]) -> P | None:
        # add() stored it under this Task, whose type parameter says what it is.
        return cast(P | None, self._by_task.get(task.name))

    def only(self, names: Iterable[str]) -> Pipelines:
        """The table of just these tasks (KeyError for one the table lacks)."""
        kept = Pipelines()
        kept._by_task = {name: self._by_task[name] for name in names}
        return kept
