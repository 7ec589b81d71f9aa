"""Realistic requests for each task, built from the bundled corpus of English texts."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb

CORPUS = Path(__file__).with_name("corpus.txt")
TASKS = ("embed", "answer", "summarize")


def corpus() -> list[str]:
    return [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


@dataclass(frozen=True, slots=True)
class Workload:
    """An endless, reproducible sequence of requests of one task."""

    task: str
    model: str = ""
    seed: int = 0

    def requests(self, count: int) -> list[Any]:
        texts = corpus()
        rng = random.Random(self.seed)
        make = {"embed": self._embed, "answer": self._answer, "summarize": self._summarize}
        return [make[self.task](texts, rng) for _ in range(count)]

    def _embed(self, texts: list[str], rng: random.Random) -> pb.EmbedRequest:
        return pb.EmbedRequest(texts=[rng.choice(texts)], model=self.model, normalize=True)

    def _answer(self, texts: list[str], rng: random.Random) -> pb.AnswerRequest:
        paragraph = rng.sample(texts, 4)
        words = rng.choice(paragraph).split()
        question = "What " + " ".join(words[1 : min(len(words), 9)]) + "?"
        return pb.AnswerRequest(question=question, context=" ".join(paragraph), model=self.model)

    def _summarize(self, texts: list[str], rng: random.Random) -> pb.SummarizeRequest:
        document = " ".join(rng.sample(texts, rng.randint(6, 16)))
        return pb.SummarizeRequest(text=document, model=self.model, max_sentences=3)
