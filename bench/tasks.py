"""Embed, Answer and Summarize on the default model, each beside the bare engine on the very
rows the server computes for it (issue 13 asks the request-path figures of all three).

Answer on a sentence encoder embeds the question and each sentence of the context; Summarize
each sentence of the document. The rows come from the server's own code (sentence splitter and
tokenizer), so the bare engine does exactly the server's work without the server around it:
loaded, every request's rows batched together; alone, one request's rows at a time; each on the
faster of two schedules (length-sorted under the server's token budget, or the server's own
cut). A lone client is a blocking stub, each request preceded by the same work on the bare
engine (interleaved: this VM drifts between minutes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench import engine as eng
from bench.server_load import QUESTION, Server, run_alone, run_load
from service.batching.queue import Entry, Row, RowQueue
from service.config import DEFAULT_BATCH_TOKENS, DEFAULT_PADDING_SLACK
from service.model_format import Manifest
from service.tasks.sentences import split_sentences
from service.tasks.tokenizer import TextTokenizer

# Summarize runs 16 clients, not 64: 64 documents of ~16 sentences queue more than the 2 s
# the server admits, and it refuses most of them (as it should).
LOADED_CLIENTS = {"embed": 64, "answer": 64, "summarize": 16}
ALONE_REQUESTS = 200
BUDGET = DEFAULT_BATCH_TOKENS["cpu"]


def task_inputs(texts: list[str]) -> dict[str, list[str]]:
    """One request per corpus text; Summarize: four consecutive texts as one document."""
    documents = [" ".join(texts[i : i + 4]) for i in range(0, len(texts) - 3, 4)]
    return {"embed": texts[:512], "answer": texts[:512], "summarize": documents[:192]}


def request_rows(task: str, text: str, tokenizer: TextTokenizer) -> list[np.ndarray]:
    """The rows the server computes for one request of `task` over `text`."""
    if task == "embed":
        parts = [text]
    elif task == "answer":
        parts = [QUESTION, *(s.text for s in split_sentences(text))]
    else:
        parts = [s.text for s in split_sentences(text)]
    return [e.ids for e in tokenizer.encode(parts)]


def server_cut(rows: list[np.ndarray]) -> list[list[np.ndarray]]:
    """The batches the server's queue cuts from these rows (its CPU budget and slack)."""
    queue = RowQueue(max(len(r) for r in rows))
    entry = Entry(enqueued=0.0, deadline=None)
    entry.rows = [Row(entry, i, r, None) for i, r in enumerate(rows)]
    queue.add(entry)
    batches = []
    while (batch := queue.next_batch(BUDGET, len(rows), DEFAULT_PADDING_SLACK["cpu"])) is not None:
        batches.append([row.ids for row in batch.rows])
    return batches


def schedules(rows: list[np.ndarray]) -> list[list[list[np.ndarray]]]:
    """Two ways to batch the same rows; the bare engine is given the faster: length-sorted
    under the budget (fewest batches), or the server's own cut (least padding)."""
    return [eng.sorted_budget_batches(rows, BUDGET), server_cut(rows)]


def bare_rate(encoder: eng.Encoder, requests: list[list[np.ndarray]]) -> float:
    """Requests per second with every request's rows batched together, on the faster of
    `schedules`."""
    rows = [row for request in requests for row in request]
    per_second = max(eng.schedule_rate(encoder, s) for s in schedules(rows))
    return per_second * len(requests) / len(rows)


def bare_alone(encoder: eng.Encoder, requests: list[list[np.ndarray]], i: int) -> float:
    """Seconds for request i's rows alone, on the faster of `schedules`."""
    best = float("inf")
    for schedule in schedules(requests[i]):
        started = time.perf_counter()
        for batch in schedule:
            encoder.run_padded(batch)
        best = min(best, time.perf_counter() - started)
    return best


def tasks_section(
    results: dict[str, Any],
    models: Path,
    texts: list[str],
    threads: int,
    log: Callable[[str], None],
) -> None:
    manifest = Manifest.read(models / "minilm")
    tokenizer = TextTokenizer(
        models / "minilm" / manifest.tokenizer_file, manifest.max_sequence_length
    )
    encoder = eng.OrtEncoder(models / "minilm" / "model.onnx", threads)
    runs = []
    with Server(models, []) as server:
        for task, items in task_inputs(texts).items():
            requests = [request_rows(task, t, tokenizer) for t in items]
            loaded = run_load(server, "minilm", items, LOADED_CLIENTS[task], task)
            bare = {"bare_requests_per_s": bare_rate(encoder, requests)}
            runs.append({"task": task, **bare, **asdict(loaded)})
            alone, bare_p50 = run_alone(
                server,
                "minilm",
                items[:ALONE_REQUESTS],
                task,
                partial(bare_alone, encoder, requests),
            )
            runs.append({"task": task, "bare_alone_p50_ms": bare_p50, **asdict(alone)})
            log(f"task {task}: {runs[-2]}; {runs[-1]}")
    results["tasks"] = runs
