"""Overload, drain under load, model faults at start, and the load-test tools themselves."""

from __future__ import annotations

import asyncio
import json
import pickle
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.scenarios import drain_under_load, overload
from tests.server_process import ROOT, ServerProcess, link_model, require_default_model


@pytest.fixture()
def fresh_server(repository: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(repository, "--max-queue-wait-ms", "500")
    proc.wait_serving()
    yield proc
    proc.stop()


def test_overload_is_refused_fast_and_the_server_recovers(fresh_server: ServerProcess) -> None:
    result = asyncio.run(overload(fresh_server, factor=3.0, seconds=6.0))
    codes = result.overload.codes
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes  # no INTERNAL/UNKNOWN/timeouts
    assert codes.get("RESOURCE_EXHAUSTED", 0) > 0
    assert result.overload.rejected_p99_ms < 250  # refused at once, not after queueing
    # admitted requests wait about the queue-wait budget (0.5 s) plus their batch at most;
    # the margin is for a loaded CI machine, where the engine's rate itself wobbles
    assert result.overload.p99_ms < 3000
    assert result.rss_peak_mb - result.rss_before_mb < 300
    assert result.recovery.codes == {"OK": 40}
    assert result.recovery.p50_ms < 500


def test_sigterm_under_load_loses_nothing(repository: Path) -> None:
    # The load goes on for 1 s after SIGTERM; the linger (3 s) outlasts it, so every late
    # caller meets UNAVAILABLE and none is caught by the port closing under it.
    proc = ServerProcess(repository, "--drain-linger-s", "3")
    proc.wait_serving()
    try:
        result = asyncio.run(drain_under_load(proc, rate=15.0, seconds=4.0))
    finally:
        proc.stop()
    assert result.lost == 0, (result.codes, result.details)
    assert result.accepted > 0 and result.refused > 0
    assert result.exit_code == 0 and result.exit_seconds < 30


def _corrupt_model(src: Path, dst: Path) -> None:
    import hashlib

    link_model(src, dst)
    (dst / "model.onnx").unlink()
    garbage = b"this is not an ONNX graph" * 100
    (dst / "model.onnx").write_bytes(garbage)
    text = (dst / "model.yaml").read_text()
    digest = hashlib.sha256(garbage).hexdigest()
    import yaml

    manifest = yaml.safe_load(text)
    manifest["sha256"]["model.onnx"] = digest
    (dst / "model.yaml").write_text(yaml.safe_dump(manifest))


def _foreign_tokenizer(src: Path, dst: Path) -> None:
    """A tokenizer whose vocabulary is larger than the model's embedding table."""
    import hashlib

    import yaml
    from tokenizers import Tokenizer, models, pre_tokenizers

    link_model(src, dst)
    vocab = {f"w{i}": i for i in range(50_000)} | {"[UNK]": 50_000}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    (dst / "tokenizer.json").unlink()
    tokenizer.save(str(dst / "tokenizer.json"))
    manifest = yaml.safe_load((dst / "model.yaml").read_text())
    digest = hashlib.sha256((dst / "tokenizer.json").read_bytes()).hexdigest()
    manifest["sha256"]["tokenizer.json"] = digest
    (dst / "model.yaml").write_text(yaml.safe_dump(manifest))


class _Marker:
    """Unpickling this creates a file: proof that something executed a pickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (Path.touch, (Path(self.path),))


def test_model_faults_are_named_and_the_others_served(tmp_path: Path) -> None:
    import hashlib

    import yaml

    src = require_default_model()
    root = tmp_path / "models"
    link_model(src, root / "good")
    # No variants: the bf16 one (model.onnx through OpenVINO) would load where the CPU has
    # bf16 units, and the model would not miss its file.
    files = {"model": "gone.onnx", "tokenizer": "tokenizer.json"}
    link_model(src, root / "no-file", files=files, variants=None)
    _corrupt_model(src, root / "corrupt")
    _foreign_tokenizer(src, root / "tokenizer-mismatch")
    (root / "bad-yaml").mkdir()
    (root / "bad-yaml" / "model.yaml").write_text("tasks: [embed\nthis: is: not yaml")
    link_model(src, root / "wrong-tasks", tasks=["translate"])
    marker = tmp_path / "pickle-was-loaded"
    pickled = root / "pickled"
    link_model(src, pickled)
    (pickled / "model.pkl").write_bytes(pickle.dumps(_Marker(str(marker))))
    manifest = yaml.safe_load((pickled / "model.yaml").read_text())
    manifest["files"]["model"] = "model.pkl"
    manifest["variants"] = None  # as no-file: the bf16 variant would load model.onnx instead
    manifest["sha256"]["model.pkl"] = hashlib.sha256(
        (pickled / "model.pkl").read_bytes()
    ).hexdigest()
    (pickled / "model.yaml").write_text(yaml.safe_dump(manifest))

    proc = ServerProcess(root, "--default-model", "good")
    try:
        proc.wait_serving()
        stub = pb_grpc.TextInferenceStub(proc.channel)
        models = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=10).models}
        assert models["good"].ready
        expected = {
            "no-file": "gone.onnx is missing",
            "corrupt": "cannot load",
            "tokenizer-mismatch": "does not fit the model",
            "bad-yaml": "cannot read model.yaml",
            "wrong-tasks": "cannot serve",
            "pickled": "cannot load",
        }
        log = proc.log()
        for name, reason in expected.items():
            assert not models[name].ready
            assert reason in models[name].error, (name, models[name].error)
            assert f"model {name} is not served: " in log
            with pytest.raises(grpc.RpcError) as info:
                stub.Embed(pb.EmbedRequest(texts=["x"], model=name), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert stub.Embed(pb.EmbedRequest(texts=["still fine"]), timeout=10).model == "good"
        assert not marker.exists()
    finally:
        proc.stop()


def test_metrics_can_bind_to_a_separate_interface(repository: Path) -> None:
    proc = ServerProcess(repository, "--metrics-host", "127.0.0.2")
    try:
        proc.wait_serving()
        port = proc.metrics_port
        with urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=10) as reply:
            assert b"attnserve_model_ready" in reply.read()
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    finally:
        proc.stop()


def test_loadtest_sweep_writes_table_json_and_plot(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable, "-m", "service", "loadtest", "--target", server.target,
            "--task", "answer", "--rates", "2", "4", "--duration", "2",
            "--plot", f"{out}.png", "--out-json", f"{out}.json", "--report", f"{out}.md",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    figures = json.loads(Path(f"{out}.json").read_text())
    assert [r["label"] for r in figures["runs"]] == ["open 2.0/s", "open 4.0/s"]
    assert all(r["codes"].get("OK", 0) > 0 for r in figures["runs"])
    assert Path(f"{out}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| open 4.0/s |" in Path(f"{out}.md").read_text()


def test_locust_file_drives_the_server(server: ServerProcess, tmp_path: Path) -> None:
    locust = shutil.which("locust", path=str(Path(sys.executable).parent))
    assert locust is not None, "locust is in the loadtest extra"
    started = time.monotonic()
    result = subprocess.run(
        [
            locust, "-f", str(ROOT / "service" / "loadtest" / "locustfile.py"),
            "--host", server.target, "--headless", "--users", "4", "--spawn-rate", "4",
            "--run-time", "4s", "--csv", str(tmp_path / "locust"), "--only-summary",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    stats = (tmp_path / "locust_stats.csv").read_text().splitlines()
    embed = next(line for line in stats if ",Embed," in line).split(",")
    assert int(embed[2]) > 0 and int(embed[3]) == 0  # requests, failures
    assert time.monotonic() - started < 60
