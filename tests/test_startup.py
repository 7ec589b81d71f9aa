"""What `attnserve serve` refuses at start, in one line, before it ever takes traffic.

A port already in use, an address that is not this machine's, an unknown default model, a
repository that is not there, a config error (which never shows a secret), and a bearer
token without TLS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.certificates import make_pki
from tests.server_process import ROOT, ServerProcess, free_port

SECRET = "topsecret-xyz"


def serve(*flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`attnserve serve` with these flags, expected to stop at start (60 s at most)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATTNSERVE_")}
    return subprocess.run(
        [sys.executable, "-m", "service", "serve", *flags],
        cwd=ROOT, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a refused start prints: exit 2, nothing on stdout, no traceback."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("attnserve: ")
    return lines[0]


def local_flags(repository: Path, grpc_port: int, metrics_port: int) -> list[str]:
    return [
        "--models", str(repository),
        "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
        "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port),
        "--http-host", "127.0.0.1", "--http-port", "0",
    ]  # fmt: skip


def test_a_second_server_on_a_taken_grpc_port_stops_and_never_takes_traffic(
    server: ServerProcess, repository: Path, tmp_path: Path
) -> None:
    # The second server's repository differs, so any call it answered would show.
    other = tmp_path / "other"
    other.mkdir()
    (other / "minilm").symlink_to(repository / "minilm")
    result = serve(*local_flags(other, server.grpc_port, free_port()))
    line = one_line(result)
    assert f"127.0.0.1:{server.grpc_port}" in line and "already in use" in line
    assert "--grpc-port" in line
    stub = pb_grpc.TextInferenceStub(server.channel)
    for _ in range(8):  # every call reaches the first server, which holds three models
        reply = stub.ListModels(pb.ListModelsRequest(), timeout=10)
        assert sorted(m.name for m in reply.models) == ["broken", "embedder", "minilm"]


def test_a_taken_metrics_port_stops_the_server(server: ServerProcess, repository: Path) -> None:
    line = one_line(serve(*local_flags(repository, free_port(), server.metrics_port)))
    assert f"127.0.0.1:{server.metrics_port}" in line and "--metrics-port" in line


def test_a_taken_http_port_stops_the_server(server: ServerProcess, repository: Path) -> None:
    flags = local_flags(repository, free_port(), free_port())
    flags[flags.index("--http-port") + 1] = str(server.http_port)
    line = one_line(serve(*flags))
    assert f"127.0.0.1:{server.http_port}" in line and "--http-host / --http-port" in line
    assert "already in use" in line


def test_an_address_not_on_this_machine_is_one_line(repository: Path) -> None:
    flags = local_flags(repository, free_port(), free_port())
    flags[flags.index("--grpc-host") + 1] = "192.0.2.1"  # TEST-NET-1: never a local address
    line = one_line(serve(*flags))
    assert "192.0.2.1" in line and "not an address of this machine" in line


def test_an_unknown_default_model_stops_the_server(repository: Path) -> None:
    flags = local_flags(repository, free_port(), free_port())
    line = one_line(serve(*flags, "--default-model", "nope"))
    assert "--default-model" in line and "'nope'" in line
    assert "broken, embedder, minilm" in line


@pytest.mark.parametrize("models", ["/nonexistent", "empty"])
def test_a_repository_that_is_missing_or_empty_stops_the_server(
    models: str, tmp_path: Path
) -> None:
    path = Path(models)
    if models == "empty":
        path = tmp_path / models
        path.mkdir()
    line = one_line(serve(*local_flags(path, free_port(), free_port())))
    assert str(path) in line
    assert ("not a directory" in line) if models == "/nonexistent" else ("make models" in line)


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--tls-cert", "server.crt"], "--tls-cert"),
        (["--log-level", "LOUD"], "--log-level"),
        (["--grpc-port", "seventy"], "--grpc-port"),
        (["--max-batch-tokens", "0"], "--max-batch-tokens"),
    ],
)
def test_a_config_error_never_shows_the_token(flags: list[str], says: str) -> None:
    for how in ("env", "flag"):
        env = {"ATTNSERVE_AUTH_TOKEN": SECRET} if how == "env" else {}
        token_flag = ["--auth-token", SECRET] if how == "flag" else []
        line = one_line(serve(*flags, *token_flag, env=env))
        assert SECRET not in line and says in line
        assert "--settings" not in line and "got 'LOUD' (got" not in line


def test_cross_field_errors_name_the_real_flags(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    line = one_line(serve("--tls-cert", str(pki.server_cert), env={"ATTNSERVE_AUTH_TOKEN": SECRET}))
    assert line == "attnserve: --tls-cert needs --tls-key (ATTNSERVE_TLS_KEY)"
    line = one_line(serve("--tls-key", str(pki.server_key)))
    assert line == "attnserve: --tls-key needs --tls-cert (ATTNSERVE_TLS_CERT)"
    line = one_line(serve("--auth-token", SECRET, "--tls-client-ca", str(pki.ca)))
    assert SECRET not in line and "--tls-client-ca needs --tls-cert" in line


def test_an_empty_token_is_refused() -> None:
    line = one_line(serve(env={"ATTNSERVE_AUTH_TOKEN": "  "}))
    assert "--auth-token" in line and "must not be empty" in line


def test_a_token_without_tls_is_refused_unless_allowed(repository: Path) -> None:
    flags = local_flags(repository, free_port(), free_port())
    line = one_line(serve(*flags, env={"ATTNSERVE_AUTH_TOKEN": SECRET}))
    assert SECRET not in line
    assert "needs TLS" in line and "--allow-insecure-token" in line


def test_an_allowed_plaintext_token_works_from_the_client_and_never_shows(
    repository: Path,
) -> None:
    proc = ServerProcess(repository, "--auth-token", SECRET, "--allow-insecure-token")
    try:
        proc.wait_serving()

        def embed(*extra: str) -> subprocess.CompletedProcess[str]:
            clean = {k: v for k, v in os.environ.items() if not k.startswith("ATTNSERVE_")}
            return subprocess.run(
                [sys.executable, "-m", "service", "embed", "hello", "--target", proc.target,
                 *extra],
                cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60,
            )  # fmt: skip

        assert embed().returncode == 1  # no token: UNAUTHENTICATED from the server
        refused = embed("--token", SECRET)  # the client's side of the same rule
        assert refused.returncode == 2 and "--allow-insecure-token" in refused.stderr
        allowed = embed("--token", SECRET, "--allow-insecure-token")
        assert allowed.returncode == 0, allowed.stderr
        assert "384 dimensions" in allowed.stdout
        stub = pb_grpc.TextInferenceStub(proc.channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.Embed(pb.EmbedRequest(texts=["x"]), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert SECRET not in proc.log()
    finally:
        proc.stop()
    assert SECRET not in proc.log_path.read_text()  # nor in what draining wrote
