"""Explanations beside plain requests, on the default model through the real server.

Two figures: what `explain` costs one request (Embed of one text, plain and explained in
turn from one blocking client, p50 of each), and what explanations running beside plain
traffic cost it (closed-loop plain Embed at 16 clients alone, then again while one client
sends explained Embeds back to back). Explanations run on their own graph and queue, so
plain requests share only the cores with them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from bench.server_load import Server, run_load
from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc

MODEL = "minilm"
ALONE_TEXTS = 48
LOAD_TEXTS = 512
CONCURRENCY = 16


def explain_section(
    results: dict[str, Any], models: Path, texts: list[str], log: Callable[[str], None]
) -> None:
    with Server(models, []) as server:
        plain_ms, explained_ms = _alone(server, texts[:ALONE_TEXTS])
        log(f"explain: one text p50 plain {plain_ms:.1f} ms, explained {explained_ms:.1f} ms")
        alone = run_load(server, MODEL, texts[:LOAD_TEXTS], CONCURRENCY)
        stop = threading.Event()
        explained: list[float] = []
        side = threading.Thread(target=_explain_until, args=(server, texts, stop, explained))
        side.start()
        try:
            beside = run_load(server, MODEL, texts[:LOAD_TEXTS], CONCURRENCY)
        finally:
            stop.set()
            side.join()
    results["explain"] = {
        "model": MODEL,
        "one_text_plain_p50_ms": plain_ms,
        "one_text_explained_p50_ms": explained_ms,
        "concurrency": CONCURRENCY,
        "plain_alone_rps": alone.throughput,
        "plain_beside_explanations_rps": beside.throughput,
        "plain_beside_explanations_p50_ms": beside.p50_ms,
        "plain_alone_p50_ms": alone.p50_ms,
        "explanations_beside_per_s": len(explained) / max(1e-9, sum(explained)),
        "explanation_beside_p50_ms": float(np.percentile(explained, 50) * 1e3)
        if explained
        else 0.0,
    }
    log(f"explain: {results['explain']}")


def _alone(server: Server, texts: list[str]) -> tuple[float, float]:
    """p50 ms of one text plain and explained, in turn from one blocking client (the first
    explained call loads the explanation graph; it is the warm-up)."""
    plain, explained = [], []
    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.TextInferenceStub(channel)
        stub.Embed(pb.EmbedRequest(texts=[texts[0]], model=MODEL, explain=True), timeout=60)
        for text in texts:
            for explain, into in ((False, plain), (True, explained)):
                started = time.perf_counter()
                stub.Embed(pb.EmbedRequest(texts=[text], model=MODEL, explain=explain), timeout=60)
                into.append(time.perf_counter() - started)
    return float(np.percentile(plain, 50) * 1e3), float(np.percentile(explained, 50) * 1e3)


def _explain_until(
    server: Server, texts: list[str], stop: threading.Event, seconds: list[float]
) -> None:
    """Explained Embeds of one text, back to back, until `stop`; each call's seconds."""
    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.TextInferenceStub(channel)
        i = 0
        while not stop.is_set():
            request = pb.EmbedRequest(texts=[texts[i % len(texts)]], model=MODEL, explain=True)
            started = time.perf_counter()
            stub.Embed(request, timeout=60)
            seconds.append(time.perf_counter() - started)
            i += 1
