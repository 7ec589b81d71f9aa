"""Wiring and lifecycle: start, load and warm models, report ready, drain on SIGTERM, stop.

The gRPC and HTTP ports open first, with health NOT_SERVING, so that probes and clients see
a live process while models load; health turns SERVING once at least one model is warm.
HTTP (service/http) is served in the same event loop by the same servicers.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service.api.auth import BearerTokenInterceptor
from service.api.calls import CallRunner
from service.api.kserve import KServeServicer
from service.api.protos.attnserve.v1 import attnserve_pb2
from service.api.protos.inference import grpc_predict_v2_pb2
from service.api.registration import add_servicer
from service.api.text_inference import TextInferenceServicer
from service.config import ConfigError, Settings
from service.http.server import HttpServer, build_app
from service.metrics import GRPC, HTTP, Metrics
from service.ports import check_can_listen
from service.repository import Repository

log = logging.getLogger(__name__)

TEXT_INFERENCE = attnserve_pb2.DESCRIPTOR.services_by_name["TextInference"]
KSERVE = grpc_predict_v2_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True, slots=True)
class Endpoints:
    grpc_port: int
    metrics_port: int
    http_port: int  # -1: HTTP is off


class AttnServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics((GRPC, HTTP) if settings.serves_http else (GRPC,))
        self.repository = Repository(settings, self.metrics)
        self.metrics.count_engine_cpu(self.repository.engine_cpu_seconds)
        self.calls = CallRunner(self.repository, self.metrics)
        self.health = health.aio.HealthServicer()
        self._services = [TEXT_INFERENCE.full_name, KSERVE.full_name]
        self._server: grpc.aio.Server | None = None
        self._http: HttpServer | None = None

    async def start(self) -> Endpoints:
        """Check the repository and every address, then open the ports (NOT_SERVING).

        Raises ConfigError, before anything listens, for a repository that is not there, a
        default model it does not hold, or an address that cannot be bound.
        """
        s = self.settings
        self.repository.discover()
        check_can_listen(s.metrics_host, s.metrics_port, "--metrics-host / --metrics-port")
        check_can_listen(s.grpc_host, s.grpc_port, "--grpc-host / --grpc-port")
        if s.serves_http:
            check_can_listen(s.http_host, s.http_port, "--http-host / --http-port")
        metrics_port = self.metrics.serve(s.metrics_host, s.metrics_port)
        interceptors = [BearerTokenInterceptor(s.auth_token)] if s.auth_token else []
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                # Never bind beside another server on the same port (gRPC's default would).
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", s.max_message_bytes),
                ("grpc.max_send_message_length", s.max_message_bytes),
                # Rebalances long-lived HTTP/2 connections across replicas behind L4.
                ("grpc.max_connection_age_ms", 300_000),
                ("grpc.max_connection_age_grace_ms", int(s.grace_period_s * 1000)),
            ],
        )
        text = TextInferenceServicer(self.repository, self.calls)
        kserve = KServeServicer(self.repository, self.calls)
        add_servicer(server, TEXT_INFERENCE, text)
        add_servicer(server, KSERVE, kserve)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [*self._services, health.SERVICE_NAME, reflection.SERVICE_NAME], server
        )
        address = f"{s.grpc_host}:{s.grpc_port}"
        credentials = s.server_credentials()
        try:  # the check above leaves a moment for another process to take the port
            if credentials is None:
                grpc_port = server.add_insecure_port(address)
            else:
                grpc_port = server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise ConfigError(
                f"cannot listen on {address} (--grpc-host / --grpc-port): {exc}"
            ) from None
        await server.start()
        self._server = server
        http_port = -1
        if s.serves_http:
            app = build_app(s, self.repository, self.calls, text, kserve)
            self._http = HttpServer(s, app)
            try:
                http_port = await self._http.start()
            except ConfigError:
                await server.stop(None)
                raise
        for service in ("", *self._services):
            await self.health.set(service, NOT_SERVING)
        http = f"HTTP on {s.http_host}:{http_port}" if s.serves_http else "HTTP off"
        log.info("gRPC on %s:%d, %s, metrics on %s:%d/metrics", s.grpc_host, grpc_port, http,
                 s.metrics_host, metrics_port)  # fmt: skip
        return Endpoints(grpc_port, metrics_port, http_port)

    async def load_models(self) -> None:
        log.info("this machine: %s", self.repository.machine.describe())
        for name in list(self.repository.models):
            await asyncio.to_thread(self.repository.load, name)
        ready = [m.name for m in self.repository.models.values() if m.ready]
        if ready and not self.calls.draining:
            for service in ("", *self._services):
                await self.health.set(service, SERVING)
            log.info("SERVING %d model(s): %s", len(ready), ", ".join(ready))
        else:
            log.error("no model is ready; health stays NOT_SERVING")

    async def drain(self) -> None:
        """SIGTERM: NOT_SERVING at once, refuse new work, finish accepted work, stop.

        The ports stay open while accepted requests finish, and for `drain_linger_s` after,
        so that probes read NOT_SERVING (HTTP: /v2/health/ready 503) and callers still
        sending get a clear UNAVAILABLE (HTTP 503) rather than a reset stream or a refused
        connection.
        """
        grace = self.settings.grace_period_s
        log.info("draining: %d request(s) to finish (grace %.0fs)", self.calls.active, grace)
        started = time.monotonic()
        self.calls.draining = True
        await self.health.enter_graceful_shutdown()
        if not await self.calls.wait_idle(grace):
            log.warning("grace period over with %d request(s) unfinished", self.calls.active)
        left = grace - (time.monotonic() - started)
        await asyncio.sleep(max(0.0, min(self.settings.drain_linger_s, left)))
        unfinished = self.calls.active
        if self._server is not None:
            await self._server.stop(max(0.0, grace - (time.monotonic() - started)))
        if self._http is not None:
            await self._http.stop()
        log.info("drained: %d accepted request(s) left unfinished", unfinished)
        for scheduler in self.repository.schedulers():
            await scheduler.close()
        for batcher in self.repository.batchers():
            await batcher.close()
        log.info("stopped")


async def serve(settings: Settings) -> None:
    server = AttnServer(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    loading = asyncio.create_task(server.load_models())
    await stop.wait()
    loading.cancel()
    await server.drain()
