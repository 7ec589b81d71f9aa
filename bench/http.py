"""Section 7: the same Embed requests over gRPC and over HTTP, against one server.

Each row sends the corpus's texts one per request from a closed loop of N clients, with the
clients `attnserve loadtest` uses (service/loadtest/senders.py): attnserve.v1 Embed over
gRPC, the OpenAI embeddings route with base64 vectors (what the OpenAI SDKs ask for) and
with float JSON, and KServe V2 REST with binary tensors (tritonclient.http's default).
Rows take turns, round after round, so the VM's drift falls on all of them alike. The
server's CPU time outside its engines, per request, is what each wire costs around the
same engine work.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from bench.server_load import Server
from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.loadtest.runner import closed_loop
from service.loadtest.senders import HttpSender, Sender, open_grpc, open_http

CONCURRENCY = (1, 16)
ROUNDS = 2
PER_RUN = {1: 150, 16: 600}  # requests per measurement


class _KServeRest(HttpSender):
    """`<model>.embed` over V2 REST: TEXT [1, 1] as binary, EMBEDDING back as binary."""

    def __init__(self, session: Any, base_url: str) -> None:
        super().__init__(session, base_url, "embed", {})
        self._url = f"{base_url}/v2/models/minilm.embed/infer"

    def _body(self, request: Any) -> tuple[bytes, dict[str, str]]:
        text = request.texts[0].encode()
        raw = struct.pack("<I", len(text)) + text
        header = json.dumps({
            "inputs": [{"name": "TEXT", "shape": [1, 1], "datatype": "BYTES",
                        "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": "EMBEDDING", "parameters": {"binary_data": True}}],
        }).encode()  # fmt: skip
        return header + raw, {"inference-header-content-length": str(len(header))}


def _rows(server: Server) -> dict[str, Callable[[], tuple[Any, Sender]]]:
    grpc_args = SimpleNamespace(
        target=server.target, tls_ca=None, tls_cert=None, tls_key=None, token=None,
        allow_insecure_token=False,
    )  # fmt: skip
    http_args = SimpleNamespace(**{**vars(grpc_args), "target": f"127.0.0.1:{server.http_port}"})

    def kserve_rest() -> tuple[Any, Sender]:
        session, _ = open_http(http_args, "embed")
        return session, _KServeRest(session, f"http://{http_args.target}")

    return {
        "gRPC, attnserve.v1 Embed": lambda: open_grpc(grpc_args, "embed"),
        "HTTP, /v1/embeddings (base64)": lambda: open_http(http_args, "embed"),
        "HTTP, /v1/embeddings (float JSON)": lambda: open_http(http_args, "embed", "float"),
        "HTTP, KServe V2 REST (binary tensors)": kserve_rest,
    }


async def _measure(
    opener: Callable[[], tuple[Any, Sender]], texts: list[str], concurrency: int
) -> tuple[list[float], int, float]:
    connection, sender = opener()
    try:
        requests = sender.prepare([pb.EmbedRequest(texts=[t]) for t in texts])
        await sender.send(requests[0], 30)  # connection and route warm
        outcomes, seconds = await closed_loop(sender.send, requests, concurrency, 60)
    finally:
        await connection.close()
    latencies = [o.latency for o in outcomes if o.code == "OK"]
    if not latencies:  # say why, rather than fail on an empty percentile
        codes = Counter(o.code for o in outcomes)
        raise RuntimeError(f"http bench: no request of {len(outcomes)} succeeded: {dict(codes)}")
    return latencies, len(outcomes) - len(latencies), seconds


def http_section(results: dict[str, Any], models: Path, texts: list[str], log: Any) -> None:
    started = time.time()
    runs: dict[str, dict[int, list[dict[str, float]]]] = {}
    with Server(models, []) as server:
        rows = _rows(server)
        for round_ in range(ROUNDS):
            for concurrency in CONCURRENCY:
                n = PER_RUN[concurrency]
                chosen = texts[(round_ * n) % len(texts) :][:n] or texts[:n]
                for name, opener in rows.items():
                    before = server.batch_stats()
                    latencies, errors, seconds = asyncio.run(_measure(opener, chosen, concurrency))
                    after = server.batch_stats()
                    served = len(chosen) + 1
                    cpu = (after["cpu"] - before["cpu"]) * 1000 / served
                    engine = (after["engine_cpu"] - before["engine_cpu"]) * 1000 / served
                    run = {
                        "throughput": len(latencies) / seconds,
                        "p50_ms": float(np.percentile(latencies, 50) * 1000),
                        "p99_ms": float(np.percentile(latencies, 99) * 1000),
                        "errors": errors,
                        "cpu_ms_per_request": cpu,
                        "outside_engine_cpu_ms_per_request": cpu - engine,
                    }
                    runs.setdefault(name, {}).setdefault(concurrency, []).append(run)
                    log(
                        f"http round {round_ + 1} x{concurrency} {name}: "
                        f"{run['throughput']:.1f}/s p50 {run['p50_ms']:.1f} ms"
                    )
    # Each figure: the median over the rounds.
    summary = {
        name: {
            str(c): {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
            for c, rs in by_c.items()
        }
        for name, by_c in runs.items()
    }
    from bench.__main__ import cpu_name

    results["http"] = {
        "machine": cpu_name(),
        "rounds": ROUNDS,
        "per_run": PER_RUN,
        "rows": summary,
        "seconds": time.time() - started,
    }
