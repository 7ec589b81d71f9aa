"""HTTP beside gRPC: uvicorn serving the routes in the server's own event loop.

Not a proxy: the routes call the gRPC servicers in the same process, so both wires share
schedulers, limits, auth, TLS, metrics and the drain. The socket is bound before uvicorn
starts (so that port 0 reports the port it got and a taken port stops the start with one
line); uvicorn's signal handlers stay off, since the server's own SIGTERM handling drains
both wires.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator

import uvicorn

from service.api.calls import CallRunner
from service.api.kserve import KServeServicer
from service.api.text_inference import TextInferenceServicer
from service.config import ConfigError, Settings
from service.http.app import App
from service.http.embeddings import OpenAIEmbeddings
from service.http.kserve_rest import KServeRest
from service.http.tasks import TaskRoutes
from service.ports import listening_socket
from service.repository import Repository

FLAGS = "--http-host / --http-port"


class _InLoopServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # SIGTERM belongs to AttnServer.drain, which stops this server last


def build_app(
    settings: Settings,
    repository: Repository,
    calls: CallRunner,
    text: TextInferenceServicer,
    kserve: KServeServicer,
) -> App:
    endpoints = [
        *OpenAIEmbeddings(repository, calls).endpoints(),
        *TaskRoutes(text).endpoints(),
        *KServeRest(kserve).endpoints(),
    ]
    return App(endpoints, settings.auth_token, settings.max_message_bytes)


class HttpServer:
    def __init__(self, settings: Settings, app: App) -> None:
        self._settings = settings
        self._app = app
        self._server: _InLoopServer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Bind, start serving; the bound port. ConfigError if it cannot listen."""
        s = self._settings
        sock = listening_socket(s.http_host, s.http_port, FLAGS)
        config = uvicorn.Config(
            self._app.asgi,
            lifespan="off",
            http="httptools",
            log_config=None,  # the server's logging, not uvicorn's
            access_log=False,
            server_header=False,
            ssl_certfile=s.tls_cert,
            ssl_keyfile=s.tls_key,
            ssl_ca_certs=s.tls_client_ca,
            ssl_cert_reqs=ssl.CERT_REQUIRED if s.tls_client_ca else ssl.CERT_NONE,
            timeout_graceful_shutdown=max(1, round(s.grace_period_s)),
        )
        try:
            config.load()
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise ConfigError(f"HTTP cannot use --tls-cert / --tls-key: {exc}") from None
        self._server = _InLoopServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:  # startup is one await; it cannot fail with a socket
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        """Close the port; requests still being answered finish (uvicorn's graceful stop)."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await self._task
