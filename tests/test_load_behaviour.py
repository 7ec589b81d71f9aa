"""Queueing behaviour through the real server: the queue bound, deadlines, cancellation,
shared batches, graceful shutdown, and a server with no ready model."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.server_process import ServerProcess, link_model, require_default_model

# 64 rows of 256 tokens: one batch of 16k tokens keeps this 2-core machine busy ~1 s.
LONG_TEXTS = ["lorem ipsum dolor sit amet " * 60] * 64
BUSY_FLAGS = (
    "--max-batch-tokens", "16384", "--max-batch-size", "64",
    "--max-queued-tokens", "20000", "--max-texts", "128",
    "--sessions", "1",  # one batch at a time: what queues behind it is then certain
)  # fmt: skip


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples with these labels (every model's series exists from the start)."""
    return sum(
        float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


@pytest.fixture()
def busy_server(repository: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(repository, *BUSY_FLAGS)
    proc.wait_serving()
    yield proc
    proc.stop()


def occupy(stub: pb_grpc.TextInferenceStub, pool: ThreadPoolExecutor) -> object:
    future = pool.submit(stub.Embed, pb.EmbedRequest(texts=LONG_TEXTS), timeout=60)
    time.sleep(0.3)  # the big batch is now running
    return future


def test_queue_bound_gives_resource_exhausted_at_once(busy_server: ServerProcess) -> None:
    stub = pb_grpc.TextInferenceStub(busy_server.channel)
    # Larger than the whole queue (84 x 256 tokens > 20000): no retry could succeed.
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        stub.Embed(pb.EmbedRequest(texts=LONG_TEXTS + LONG_TEXTS[:20]), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "whole queue holds (20000 tokens" in info.value.details()
    assert time.monotonic() - started < 5
    with ThreadPoolExecutor(2) as pool:
        running = occupy(stub, pool)
        # 15360 tokens wait behind the running batch (a full 16384 would be prepared ahead
        # as the next batch and leave the queue).
        queued = pool.submit(stub.Embed, pb.EmbedRequest(texts=LONG_TEXTS[:60]), timeout=60)
        time.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as info:  # fits the bound, not what is left of it
            stub.Embed(pb.EmbedRequest(texts=LONG_TEXTS[:20]), timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue is full" in info.value.details()
        assert time.monotonic() - started < 5  # refused, not queued then failed
        assert len(running.result().embeddings) == 64  # type: ignore[attr-defined]
        assert len(queued.result().embeddings) == 60
    text = busy_server.scrape()
    assert sample(text, "attnserve_requests_total", task="embed", code="RESOURCE_EXHAUSTED") == 1
    assert sample(text, "attnserve_requests_total", task="embed", code="INVALID_ARGUMENT") == 1


def test_expired_and_cancelled_work_is_dropped_not_computed(busy_server: ServerProcess) -> None:
    stub = pb_grpc.TextInferenceStub(busy_server.channel)
    with ThreadPoolExecutor(4) as pool:
        big = occupy(stub, pool)
        with pytest.raises(grpc.RpcError) as info:
            stub.Embed(pb.EmbedRequest(texts=["late", "later"]), timeout=0.2)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        doomed = stub.Embed.future(pb.EmbedRequest(texts=["never", "mind", "me"]), timeout=30)
        time.sleep(0.1)
        doomed.cancel()
        big.result()  # type: ignore[attr-defined]
    time.sleep(0.2)
    text = busy_server.scrape()
    assert sample(text, "attnserve_dropped_rows_total", reason="deadline") == 2
    assert sample(text, "attnserve_dropped_rows_total", reason="cancelled") == 3
    # only the big request's 64 rows reached the engine
    assert sample(text, "attnserve_batch_size_sum", model="minilm") == 64


def test_http_gets_429_with_retry_after_and_504_for_its_timeout(
    busy_server: ServerProcess,
) -> None:
    stub = pb_grpc.TextInferenceStub(busy_server.channel)
    url = f"{busy_server.http_url}/v1/embeddings"
    with ThreadPoolExecutor(3) as pool:
        running = occupy(stub, pool)
        queued = pool.submit(stub.Embed, pb.EmbedRequest(texts=LONG_TEXTS[:60]), timeout=60)
        time.sleep(0.2)
        full = requests.post(url, json={"input": LONG_TEXTS[:20]}, timeout=30)
        assert full.status_code == 429 and full.headers["retry-after"] == "1"
        assert full.json()["error"]["type"] == "rate_limit_error"
        assert "queue is full" in full.json()["error"]["message"]
        # The timeout header is the request's deadline: queued past it, dropped, 504.
        late = requests.post(
            url, json={"input": ["late", "later"]}, headers={"X-Request-Timeout": "0.2"}, timeout=30
        )
        assert late.status_code == 504, late.text
        assert "deadline" in late.json()["error"]["message"]
        running.result()  # type: ignore[attr-defined]
        queued.result()
    text = busy_server.scrape()
    for code in ("RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED"):
        assert sample(text, "attnserve_requests_total", code=code, protocol="http") == 1, code
    assert sample(text, "attnserve_dropped_rows_total", reason="deadline") == 2


def test_concurrent_requests_share_batches(busy_server: ServerProcess) -> None:
    stub = pb_grpc.TextInferenceStub(busy_server.channel)
    with ThreadPoolExecutor(16) as pool:
        big = occupy(stub, pool)
        small = [
            pool.submit(stub.Embed, pb.EmbedRequest(texts=[f"sentence {i}"]), timeout=30)
            for i in range(12)
        ]
        for f in [big, *small]:
            f.result()  # type: ignore[attr-defined]
    text = busy_server.scrape()
    batches = sample(text, "attnserve_batch_size_count", model="minilm")
    rows = sample(text, "attnserve_batch_size_sum", model="minilm")
    assert rows == 64 + 12
    assert batches <= 3  # the 12 small requests queued behind the big batch ran together


def test_sigterm_drains_accepted_work_and_refuses_new(repository: Path) -> None:
    proc = ServerProcess(repository, *BUSY_FLAGS)
    proc.wait_serving()
    stub = pb_grpc.TextInferenceStub(proc.channel)
    health = health_pb2_grpc.HealthStub(proc.channel)
    url = f"{proc.http_url}/v1/embeddings"
    with ThreadPoolExecutor(2) as pool:
        accepted = occupy(stub, pool)
        accepted_http = pool.submit(requests.post, url, json={"input": LONG_TEXTS[:8]}, timeout=60)
        time.sleep(0.1)
        proc.process.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as info:
            stub.Embed(pb.EmbedRequest(texts=["new work"]), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        refused = requests.post(url, json={"input": "new work"}, timeout=5)
        assert refused.status_code == 503 and "shutting down" in refused.text
        ready = requests.get(f"{proc.http_url}/v2/health/ready", timeout=5)
        assert ready.status_code == 503
        reply = accepted.result()  # type: ignore[attr-defined]
        assert len(reply.embeddings) == 64  # accepted work finished: nothing lost
        assert len(accepted_http.result().json()["data"]) == 8
    assert proc.process.wait(60) == 0
    assert proc.stop() == 0


def test_no_ready_model_means_unavailable(tmp_path: Path) -> None:
    src = require_default_model()
    root = tmp_path / "models"
    link_model(src, root / "minilm", sha256={"model.onnx": "0" * 64, "tokenizer.json": "0"})
    proc = ServerProcess(root)
    try:
        stub = pb_grpc.TextInferenceStub(proc.channel)
        deadline = time.monotonic() + 60
        while "not served" not in proc.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "does not match the sha256" in proc.log()
        with pytest.raises(grpc.RpcError) as info:
            stub.Embed(pb.EmbedRequest(texts=["x"]), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        reply = requests.post(f"{proc.http_url}/v1/embeddings", json={"input": "x"}, timeout=5)
        assert reply.status_code == 503
        ready = requests.get(f"{proc.http_url}/v2/health/ready", timeout=5)
        live = requests.get(f"{proc.http_url}/v2/health/live", timeout=5)
        assert (ready.status_code, live.status_code) == (503, 200)
        health = health_pb2_grpc.HealthStub(proc.channel)
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        proc.stop()
