"""/metrics over HTTP: the contract's names, parsed as Prometheus text, and promtool-clean."""

from __future__ import annotations

import shutil
import subprocess

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.server_process import ServerProcess

CONTRACT_METRICS = {
    "attnserve_requests": "counter",
    "attnserve_request_duration_seconds": "histogram",
    "attnserve_queue_duration_seconds": "histogram",
    "attnserve_inference_duration_seconds": "histogram",
    "attnserve_batch_size": "histogram",
    "attnserve_batch_tokens": "histogram",
    "attnserve_queue_depth": "gauge",
    "attnserve_inflight_requests": "gauge",
    "attnserve_input_tokens": "counter",
    "attnserve_model_ready": "gauge",
}


@pytest.fixture(scope="module")
def scraped(server: ServerProcess) -> str:
    stub = pb_grpc.TextInferenceStub(server.channel)
    stub.Embed(pb.EmbedRequest(texts=["metrics please", "two rows"]), timeout=10)
    stub.Summarize(pb.SummarizeRequest(text="One. Two sentences here."), timeout=10)
    with pytest.raises(grpc.RpcError):
        stub.Embed(pb.EmbedRequest(texts=[]), timeout=10)
    return server.scrape()


def test_contract_metrics_exist_with_labels(scraped: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(scraped)}
    for name, kind in CONTRACT_METRICS.items():
        assert name in families, name
        assert families[name].type == kind, name
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }
    key = (
        "attnserve_requests_total",
        (("code", "OK"), ("model", "minilm"), ("task", "embed")),
    )
    assert samples[key] >= 1
    bad = (
        "attnserve_requests_total",
        (("code", "INVALID_ARGUMENT"), ("model", "minilm"), ("task", "embed")),
    )
    assert samples[bad] >= 1
    assert samples[("attnserve_model_ready", (("model", "minilm"),))] == 1
    assert samples[("attnserve_model_ready", (("model", "broken"),))] == 0
    tokens = samples[("attnserve_input_tokens_total", (("model", "minilm"), ("task", "embed")))]
    assert tokens >= 8  # two short texts with [CLS] and [SEP]


def test_promtool_accepts_the_output(scraped: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install Debian's prometheus (make tools does)")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=scraped, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
