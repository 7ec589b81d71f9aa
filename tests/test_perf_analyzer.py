"""Triton's own load tool, perf_analyzer (tritonclient 2.50's binary), driving the text views
as its users run it: real text through --input-data, over gRPC and over HTTP, no version
flag. `make tools` installs it (scripts/install_perf_analyzer.sh)."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import perf_analyzer
from tests.server_process import ServerProcess

SENTENCES = [
    "A man is eating food.",
    "The Eiffel Tower is 330 metres tall.",
    "Plants turn light into chemical energy.",
    "Load tools send the same requests again and again.",
]


def served(server: ServerProcess, protocol: str) -> float:
    return sum(
        s.value
        for family in text_string_to_metric_families(server.scrape())
        for s in family.samples
        if s.name == "attnserve_requests_total"
        and s.labels["task"] == "embed"
        and s.labels["code"] == "OK"
        and s.labels["protocol"] == protocol
    )


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_perf_analyzer_drives_the_embed_view(
    server: ServerProcess, tmp_path: Path, protocol: str
) -> None:
    if not perf_analyzer.available():
        pytest.fail("perf_analyzer is not installed: run `make tools` (make test does)")
    data = perf_analyzer.write_input_data(tmp_path / "texts.json", {"TEXT": SENTENCES})
    url = server.target if protocol == "grpc" else f"127.0.0.1:{server.http_port}"
    before = served(server, protocol)
    result = perf_analyzer.run(
        "minilm.embed", url, protocol, data,  # type: ignore[arg-type]
        concurrency=2, batch_size=4, measurement_ms=1500, stability_percentage=50,
    )  # fmt: skip
    assert result.throughput > 0 and result.p50_us > 0
    # Its requests ([4, 1] TEXT tensors) were all answered OK, on the protocol it spoke.
    assert served(server, protocol) - before >= 3
