"""`make reliability`: measure overload, drain and memory on a real server and write
docs/reliability.md. The same scenarios are asserted in tests/test_reliability.py."""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from tests.scenarios import drain_under_load, overload
from tests.server_process import ROOT, ServerProcess, link_model, require_default_model

DOC = ROOT / "docs" / "reliability.md"
DRAIN_LINGER_S = 3.0  # longer than the load that follows SIGTERM (15% of 6 s)

STATIC_ROWS = [
    ("Bad input on every RPC of both APIs (random Unicode, zero-width, RTL, emoji, empty, "
     "whitespace, extreme options, random V2 tensors)",
     "`tests/test_fuzz.py`: hypothesis through a real channel, with a bystander client",
     "never INTERNAL/UNKNOWN; bystander all OK"),
    ("Invalid UTF-8 / lone surrogates / non-protobuf bytes from other-language clients",
     "`tests/test_security.py::test_malformed_requests_are_invalid_argument`",
     "INVALID_ARGUMENT naming the parse error"),
    ("Huge text, 5000 texts in one Embed, a 70 MiB message",
     "`tests/test_fuzz.py::test_extremes`",
     "INVALID_ARGUMENT, INVALID_ARGUMENT, RESOURCE_EXHAUSTED; no OOM"),
    ("Deadline passes while queued; client cancels",
     "`tests/test_load_behaviour.py::test_expired_and_cancelled_work_is_dropped_not_computed`",
     "rows dropped before compute, `attnserve_dropped_rows_total{reason}` counts them"),
    ("Model faults at start: missing file, corrupt ONNX, tokenizer mismatch, bad model.yaml, "
     "unknown task, a pickle posing as a model",
     "`tests/test_reliability.py::test_model_faults_are_named_and_the_others_served`",
     "each named in the log and ListModels; UNAVAILABLE for it; others served; pickle never run"),
    ("TLS, mutual TLS, bearer token",
     "`tests/test_security.py`",
     "plaintext/no-cert/foreign-cert refused; UNAUTHENTICATED without token; health open"),
    ("Metrics on a separate interface",
     "`tests/test_reliability.py::test_metrics_can_bind_to_a_separate_interface`",
     "scrapable on 127.0.0.2 only"),
]  # fmt: skip


def main() -> int:
    src = require_default_model()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "models"
        link_model(src, root / "minilm")
        server = ServerProcess(root)
        server.wait_serving()
        try:
            load = asyncio.run(overload(server, factor=3.0, seconds=10.0))
        finally:
            server.stop()
        server = ServerProcess(root, "--drain-linger-s", str(DRAIN_LINGER_S))
        server.wait_serving()
        rate = 0.7 * load.capacity.throughput
        drain = asyncio.run(drain_under_load(server, rate=rate, seconds=6.0, signal_at=0.85))
        server.stop()
    o = load.overload
    lines = [
        "# Reliability",
        "",
        "Produced by `make reliability` (`python -m tests.reliability_report`) on "
        f"{time.strftime('%Y-%m-%d')}, against the real server on loopback with the default "
        "model (Embed, one corpus text per request, default settings: queue-wait budget "
        "2000 ms). The same scenarios are asserted by `tests/test_reliability.py` in "
        "`make test`.",
        "",
        "| case | how it is tested | figure measured |",
        "|---|---|---|",
        f"| Capacity (closed loop, 16 clients) | `tests/scenarios.py::capacity` | "
        f"{load.capacity.throughput:.1f} req/s, p99 {load.capacity.p99_ms:.0f} ms |",
        f"| Overload: Poisson arrivals at 3x capacity ({o.offered_rate:.1f} req/s) for 10 s | "
        f"`tests/scenarios.py::overload` | served {o.throughput:.1f} req/s; codes "
        f"{dict(sorted(o.codes.items()))}; admitted p50 {o.p50_ms:.0f} ms, p99 "
        f"{o.p99_ms:.0f} ms, max {o.max_ms:.0f} ms; RESOURCE_EXHAUSTED answered in p99 "
        f"{o.rejected_p99_ms:.1f} ms; no INTERNAL/UNKNOWN |",
        f"| Memory under overload | RSS of the server process, sampled every 0.2 s | "
        f"{load.rss_before_mb:.0f} MB before, {load.rss_peak_mb:.0f} MB peak, "
        f"{load.rss_after_mb:.0f} MB after |",
        f"| Recovery when load drops | 40 requests, 2 clients, right after | codes "
        f"{load.recovery.codes}; p50 {load.recovery.p50_ms:.0f} ms |",
        f"| SIGTERM under load ({rate:.1f} req/s, SIGTERM at 85% of a 6 s run, "
        f"--drain-linger-s {DRAIN_LINGER_S:g}) | "
        f"`tests/scenarios.py::drain_under_load` | {drain.accepted} completed, "
        f"{drain.refused} refused with UNAVAILABLE, **{drain.lost} lost**; exit code "
        f"{drain.exit_code} {drain.exit_seconds:.1f} s after SIGTERM |",
    ]
    lines += [f"| {case} | {how} | {figure} |" for case, how, figure in STATIC_ROWS]
    lines.append("")
    DOC.write_text("\n".join(lines))
    print(DOC.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
