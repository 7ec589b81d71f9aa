"""CPU time our own Python spends per request on the event loop's thread, without gRPC:
the real servicer, repository, scheduler and engine in one process, driven by N concurrent
coroutines (a stand-in for gRPC's context). The engine runs on worker threads, so the loop
thread's CPU clock (`time.thread_time`) is the handler's, the scheduler's and the reply's.

    .venv/bin/python -m scripts.handler_cpu [--requests 400]

A steadier figure than the server's whole process (docs/request-path.md): gRPC's own cost
and the VM's other threads are out of it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from service.api.calls import CallRunner
from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.text_inference import TextInferenceServicer
from service.config import load_settings
from service.metrics import Metrics
from service.repository import Repository

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "service" / "loadtest" / "corpus.txt"


class Context:
    """What the servicer asks of gRPC's ServicerContext on the success path."""

    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: Any, message: str) -> None:
        raise RuntimeError(f"{code}: {message}")


async def drive(servicer: TextInferenceServicer, texts: list[str], clients: int) -> float:
    """The loop thread's CPU seconds per request over `texts`, `clients` at a time."""
    pending = iter(texts)

    async def client() -> None:
        for text in pending:
            await servicer.Embed(pb.EmbedRequest(texts=[text]), Context())  # type: ignore[arg-type]

    started = time.thread_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    return (time.thread_time() - started) / len(texts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = load_settings(models=ROOT / "models", default_model="minilm")
    metrics = Metrics()
    repository = Repository(settings, metrics)
    repository.discover()
    repository.load("minilm")
    servicer = TextInferenceServicer(repository, CallRunner(repository, metrics))
    texts = [t for t in CORPUS.read_text(encoding="utf-8").splitlines() if t.strip()]
    texts = texts[: args.requests]

    async def rounds() -> None:
        await drive(servicer, texts[:50], 8)  # warm up
        for index in range(args.rounds):
            figures = [await drive(servicer, texts, c) for c in (64, 1)]
            print(
                f"round {index + 1}: loop-thread CPU per request: concurrency 64 "
                f"{figures[0] * 1e6:.0f} µs, concurrency 1 {figures[1] * 1e6:.0f} µs",
                flush=True,
            )

    asyncio.run(rounds())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
