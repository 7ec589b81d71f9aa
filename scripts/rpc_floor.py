"""The floor under a lone request: p50 of a trivial RPC against Embed of one 4-token text, on
the real server over loopback (blocking stub, 300 calls each after 20 to warm up).

    .venv/bin/python -m scripts.rpc_floor

Set it against the bare engine's p50 for the same text (docs/request-path.md).
"""

import time
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.server_load import Server
from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    with Server(ROOT / "models", []) as server, grpc.insecure_channel(server.target) as channel:
        health, text = health_pb2_grpc.HealthStub(channel), pb_grpc.TextInferenceStub(channel)
        calls = {
            "Health.Check": lambda: health.Check(health_pb2.HealthCheckRequest()),
            "ListModels": lambda: text.ListModels(pb.ListModelsRequest()),
            "Embed 'OK.'": lambda: text.Embed(pb.EmbedRequest(texts=["OK."])),
        }
        for name, call in calls.items():
            for _ in range(20):
                call()
            latencies = []
            for _ in range(300):
                started = time.perf_counter()
                call()
                latencies.append(time.perf_counter() - started)
            print(f"{name:14s} p50 {np.percentile(latencies, 50) * 1000:.2f} ms", flush=True)


if __name__ == "__main__":
    main()
