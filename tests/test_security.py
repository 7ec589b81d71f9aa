"""TLS, mutual TLS, bearer tokens, and requests that are not valid protobuf at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.certificates import Pki, make_pki
from tests.server_process import ServerProcess

EMBED = pb.EmbedRequest(texts=["secure hello"])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls(pki: Pki, cert: Path | None = None, key: Path | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )


def embed_code(channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()) -> str:
    try:
        pb_grpc.TextInferenceStub(channel).Embed(EMBED, timeout=10, metadata=metadata)
    except grpc.RpcError as err:
        return str(err.code().name)
    return "OK"


@pytest.fixture(scope="module")
def mtls_server(repository: Path, pki: Pki) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        repository,
        "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
        "--tls-client-ca", str(pki.ca),
        credentials=tls(pki, pki.client_cert, pki.client_key),
    )  # fmt: skip
    proc.wait_serving()
    yield proc
    proc.stop()


def test_mutual_tls_needs_a_client_certificate_from_the_ca(
    mtls_server: ServerProcess, pki: Pki
) -> None:
    assert embed_code(mtls_server.channel) == "OK"
    with grpc.secure_channel(mtls_server.target, tls(pki)) as no_cert:
        assert embed_code(no_cert) == "UNAVAILABLE"
    stranger = tls(pki, pki.stranger_cert, pki.stranger_key)
    with grpc.secure_channel(mtls_server.target, stranger) as channel:
        assert embed_code(channel) == "UNAVAILABLE"
    with grpc.insecure_channel(mtls_server.target) as plaintext:
        assert embed_code(plaintext) == "UNAVAILABLE"
    # HTTPS on the HTTP port, with the same certificate and the same client CA.
    url = f"{mtls_server.http_url}/v1/embeddings"
    mine = (str(pki.client_cert), str(pki.client_key))
    reply = requests.post(url, json={"input": "hi"}, verify=str(pki.ca), cert=mine, timeout=30)
    assert reply.status_code == 200 and len(reply.json()["data"][0]["embedding"]) > 0
    strangers = (str(pki.stranger_cert), str(pki.stranger_key))
    for cert in (None, strangers):
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.post(url, json={"input": "hi"}, verify=str(pki.ca), cert=cert, timeout=30)


def test_tls_and_bearer_token(repository: Path, pki: Pki) -> None:
    proc = ServerProcess(
        repository,
        "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key),
        "--auth-token", "s3cret-token",
        credentials=tls(pki),
    )  # fmt: skip
    try:
        proc.wait_serving()  # health needs no token: probes stay simple
        assert embed_code(proc.channel) == "UNAUTHENTICATED"
        assert embed_code(proc.channel, (("authorization", "Bearer wrong"),)) == "UNAUTHENTICATED"
        good = (("authorization", "Bearer s3cret-token"),)
        assert embed_code(proc.channel, good) == "OK"
        health = health_pb2_grpc.HealthStub(proc.channel)
        reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with grpc.insecure_channel(proc.target) as plaintext:
            assert embed_code(plaintext, good) == "UNAVAILABLE"
        http_codes_with_the_token(proc, pki)
    finally:
        proc.stop()
    assert "s3cret-token" not in proc.log_path.read_text()


def http_codes_with_the_token(proc: ServerProcess, pki: Pki) -> None:
    """HTTPS: the same token rule as gRPC; health open; plaintext HTTP refused."""
    url = f"{proc.http_url}/v1/embeddings"
    assert proc.http_url.startswith("https://")

    def post(headers: dict[str, str]) -> requests.Response:
        return requests.post(
            url, json={"input": "hi"}, headers=headers, verify=str(pki.ca), timeout=30
        )

    missing, wrong = post({}), post({"Authorization": "Bearer wrong"})
    for reply in (missing, wrong):
        assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer"
        assert reply.json()["error"]["type"] == "authentication_error"
    assert "missing bearer token" in missing.json()["error"]["message"]
    assert post({"Authorization": "Bearer s3cret-token"}).status_code == 200
    triton_style = requests.get(
        f"{proc.http_url}/v2/models/minilm.embed", verify=str(pki.ca), timeout=30
    )
    assert triton_style.status_code == 401 and "bearer token" in triton_style.json()["error"]
    ready = requests.get(f"{proc.http_url}/v2/health/ready", verify=str(pki.ca), timeout=30)
    assert ready.status_code == 200  # probes need no secret
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(url.replace("https://", "http://"), json={"input": "hi"}, timeout=30)


def test_tls_settings_are_validated(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.server_process import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--tls-cert", str(tmp_path / "nope.crt")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "tls" in result.stderr.lower()


@pytest.mark.parametrize(
    "method, payload",
    [
        ("/attnserve.v1.TextInference/Embed", b"\x0a\x02\xff\xfe"),  # texts[0] is not UTF-8
        ("/attnserve.v1.TextInference/Summarize", b"\x0a\x03\xed\xa0\x80"),  # a lone surrogate
        ("/attnserve.v1.TextInference/Answer", b"\xff\xff\xff"),  # not protobuf at all
        ("/inference.GRPCInferenceService/ModelInfer", b"\x0a\x02\xff\xfe"),
    ],
)
def test_malformed_requests_are_invalid_argument(
    server: ServerProcess, method: str, payload: bytes
) -> None:
    call = server.channel.unary_unary(
        method, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    with pytest.raises(grpc.RpcError) as info:
        call(payload, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid" in info.value.details()


def test_a_plaintext_client_against_a_tls_server_is_told_to_use_tls(
    mtls_server: ServerProcess,
) -> None:
    import subprocess
    import sys

    from tests.server_process import ROOT

    result = subprocess.run(
        [sys.executable, "-m", "service", "models", "--target", mtls_server.target],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.startswith("UNAVAILABLE: ") and "--tls-ca" in result.stderr, result.stderr
