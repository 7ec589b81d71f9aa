"""Locust load for attnserve over gRPC, for people who prefer locust.

    locust -f service/loadtest/locustfile.py --host localhost:50051 \
        --headless --users 32 --spawn-rate 8 --run-time 1m

Each user sends Embed, Answer and Summarize requests (weights 6:2:1) built from the same
corpus as `attnserve loadtest`; gRPC status codes other than OK count as failures.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User, between, task

from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from service.loadtest.senders import METHODS
from service.loadtest.workload import Workload

# grpc's own threads must cooperate with locust's gevent loop.
grpc_gevent.init_gevent()


class AttnserveUser(User):
    abstract = False
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        self._channel = grpc.insecure_channel(self.host or "localhost:50051")
        self._stub = pb_grpc.TextInferenceStub(self._channel)
        self._requests = {
            name: Workload(name, seed=id(self) % 10_000).requests(64) for name in METHODS
        }
        self._turn = 0

    def on_stop(self) -> None:
        self._channel.close()

    def _send(self, name: str) -> None:
        request: Any = self._requests[name][self._turn % 64]
        self._turn += 1
        method = getattr(self._stub, METHODS[name])
        started = time.perf_counter()
        error: Exception | None = None
        size = 0
        try:
            size = method(request, timeout=30).ByteSize()
        except grpc.RpcError as err:
            error = err
        self.environment.events.request.fire(
            request_type="grpc",
            name=METHODS[name],
            response_time=(time.perf_counter() - started) * 1000,
            response_length=size,
            exception=error,
            context={},
        )

    @task(6)
    def embed(self) -> None:
        self._send("embed")

    @task(2)
    def answer(self) -> None:
        self._send("answer")

    @task(1)
    def summarize(self) -> None:
        self._send("summarize")
