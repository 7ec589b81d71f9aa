"""/metrics over HTTP: the contract's names, parsed as Prometheus text, and promtool-clean."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path

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
        (("code", "OK"), ("model", "minilm"), ("protocol", "grpc"), ("task", "embed")),
    )
    assert samples[key] >= 1
    bad = (
        "attnserve_requests_total",
        (
            ("code", "INVALID_ARGUMENT"),
            ("model", "minilm"),
            ("protocol", "grpc"),
            ("task", "embed"),
        ),
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


def test_every_series_is_there_at_zero_from_the_first_scrape(repository: Path) -> None:
    proc = ServerProcess(repository)
    try:
        proc.wait_serving()
        families = {f.name: f for f in text_string_to_metric_families(proc.scrape())}
    finally:
        proc.stop()
    served = {"minilm": ("embed", "summarize", "answer"), "embedder": ("embed",)}
    for name in CONTRACT_METRICS:
        samples = families[name].samples
        for model, tasks in served.items():
            mine = [s for s in samples if s.labels.get("model") == model]
            assert mine, f"{name} has no series for {model} before any request"
            assert all(s.value == 0 for s in mine if not s.name.endswith("_ready")), name
            if "task" in mine[0].labels:
                assert {s.labels["task"] for s in mine} == set(tasks), name
    ready = {s.labels["model"]: s.value for s in families["attnserve_model_ready"].samples}
    assert ready == {"minilm": 1.0, "embedder": 1.0, "broken": 0.0}


def _totals(text: str, model: str) -> dict[str, float]:
    wanted = {
        "process_cpu_seconds_total": {},
        "attnserve_engine_cpu_seconds_total": {"model": model},
        "attnserve_inference_duration_seconds_sum": {"model": model},
    }
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in wanted and s.labels == wanted[s.name]:
                found[s.name] = s.value
    assert set(found) == set(wanted), found
    return found


def test_engine_cpu_time_is_counted_apart_from_the_process(server: ServerProcess) -> None:
    """The engine's CPU time covers its runs (at least their wall time on one thread) and
    stays within the process's: the bench reads the CPU outside the engine from the two."""
    stub = pb_grpc.TextInferenceStub(server.channel)
    before = _totals(server.scrape(), "minilm")
    long_text = " ".join(["the engine counts the time it spends on every token"] * 20)
    for _ in range(10):
        stub.Embed(pb.EmbedRequest(texts=[long_text] * 4), timeout=30)
    after = _totals(server.scrape(), "minilm")
    spent = {name: after[name] - before[name] for name in before}
    engine = spent["attnserve_engine_cpu_seconds_total"]
    assert engine >= 0.5 * spent["attnserve_inference_duration_seconds_sum"] > 0
    # /proc counts in clock ticks (10 ms): allow one tick per thread of rounding.
    assert engine <= spent["process_cpu_seconds_total"] + 0.05


def test_threads_a_session_starts_count_as_the_engines() -> None:
    """Threads started while a session is created (onnxruntime's pool) are found by the name
    they inherit, and their CPU time counts; the creating thread's name is given back."""
    import time

    from service.runtime.engine_cpu import EngineCpu

    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            sum(range(1000))

    cpu = EngineCpu()
    before = Path("/proc/self/comm").read_text()
    worker = cpu.starting_threads(lambda: threading.Thread(target=busy, daemon=True))
    worker.start()  # started after the name is given back: not the engine's
    pool = cpu.starting_threads(lambda: _started(threading.Thread(target=busy, daemon=True)))
    time.sleep(0.5)
    counted = cpu.seconds()  # the pool thread's, not the other busy thread's
    stop.set()
    pool.join()
    worker.join()
    assert cpu.pool_threads == 1
    assert Path("/proc/self/comm").read_text() == before
    assert 0.1 <= counted <= 0.55
    cpu.running(lambda: sum(range(2_000_000)))
    assert cpu.seconds() > 0.01  # the calling thread's share (the pool thread is gone)


def test_threads_every_session_shares_count_for_the_runs_they_serve() -> None:
    """OpenVINO computes on one pool of threads for the process (oneTBB's workers), started
    by the first session that needs them and used by every later one: their time goes to the
    engine whose runs it falls in, not to the engine that happened to start them."""
    import time

    from service.runtime.engine_cpu import EngineCpu, SharedThreads

    pool = SharedThreads(b"attn-test-pool")
    go, stop = threading.Event(), threading.Event()

    def worker() -> None:  # a pool thread: computes while a run wants it, else sleeps
        while not stop.is_set():
            if go.wait(0.01):
                sum(range(1000))

    def run_on_the_pool() -> None:  # the calling thread waits: the pool does the work
        go.set()
        time.sleep(0.3)
        go.clear()

    starter, user, other = EngineCpu(), EngineCpu(), EngineCpu()
    before = Path("/proc/self/comm").read_text()
    thread = starter.starting_threads(lambda: _started(threading.Thread(target=worker)), pool)
    user.starting_threads(lambda: None, pool)  # starts no thread: computes on the starter's
    assert pool.threads == 1  # the worker, not the thread that created the sessions
    assert Path("/proc/self/comm").read_text() == before
    started = starter.seconds()
    user.running(run_on_the_pool)
    other.running(lambda: time.sleep(0.1))  # no part in the pool: none of its time
    counted = {"starter": starter.seconds() - started, "user": user.seconds()}
    stop.set()
    thread.join()
    assert counted["starter"] < 0.05, counted
    assert 0.1 <= counted["user"] <= 0.45, counted
    assert other.seconds() < 0.05


def _started(thread: threading.Thread) -> threading.Thread:
    thread.start()
    return thread
