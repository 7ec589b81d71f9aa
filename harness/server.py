"""Start the real `attnserve serve` as a subprocess on free loopback ports.

One launcher for the tests and `make bench`: the same flags, the same wait for SERVING
through gRPC health, the same SIGTERM at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

import grpc
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def link_model(src: Path, dst: Path, **manifest_changes: object) -> Path:
    """A model folder whose files are links to a built model, with model.yaml edited."""
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name != "model.yaml":
            (dst / item.name).symlink_to(item)
    manifest = yaml.safe_load((src / "model.yaml").read_text())
    manifest.update(manifest_changes)
    (dst / "model.yaml").write_text(yaml.safe_dump(manifest))
    return dst


class ServerProcess:
    """`attnserve serve --models MODELS FLAGS...` on 127.0.0.1, its output in a log file.

    Usable as a context manager (waits for SERVING, stops on exit) or by hand
    (`wait_serving()`, `stop()`).
    """

    def __init__(
        self,
        models: Path,
        *flags: str,
        credentials: grpc.ChannelCredentials | None = None,
        log_path: Path | None = None,
        intra_op_threads: int | None = 2,
    ) -> None:
        """`intra_op_threads` None leaves the server's own default (one per core)."""
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.http_port = free_port()
        self.target = f"127.0.0.1:{self.grpc_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        # https:// when the flags serve TLS (HTTP shares gRPC's certificate).
        scheme = "https" if "--tls-cert" in flags else "http"
        self.http_url = f"{scheme}://127.0.0.1:{self.http_port}"
        self.log_path = log_path or models.parent / f"server-{self.grpc_port}.log"
        self._log = self.log_path.open("w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATTNSERVE_")}
        threads = () if intra_op_threads is None else ("--intra-op-threads", str(intra_op_threads))
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "service", "serve",
                "--models", str(models),
                "--grpc-host", "127.0.0.1", "--grpc-port", str(self.grpc_port),
                "--metrics-host", "127.0.0.1", "--metrics-port", str(self.metrics_port),
                "--http-host", "127.0.0.1", "--http-port", str(self.http_port),
                *threads,
                *flags,
            ],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.channel = (
            grpc.insecure_channel(self.target)
            if credentials is None
            else grpc.secure_channel(self.target, credentials)
        )

    def wait_serving(self, timeout: float = 120.0) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log()}")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not SERVING after {timeout}s:\n{self.log()}")

    def scrape(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as reply:
            return str(reply.read().decode())

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        self.channel.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self) -> Self:
        self.wait_serving(timeout=180.0)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
