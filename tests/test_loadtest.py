"""`attnserve loadtest`: the figures (report.py) on synthetic points, and the real command
against a real server (timed closed runs, --requests, open-loop rates, --plot refusal)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from service.loadtest.report import Summary, saturation, summarize
from service.loadtest.runner import Outcome, sending_window
from tests.server_process import ROOT, ServerProcess


def point(
    offered: float,
    ok_rate: float | None = None,
    p99_ms: float = 20.0,
    codes: dict[str, int] | None = None,
) -> Summary:
    """An open-loop run at `offered`/s; by default every request answered OK in time."""
    requests = int(offered * 10)
    return Summary(
        label=f"open {offered:.1f}/s",
        offered_rate=offered,
        throughput=offered if ok_rate is None else ok_rate,
        requests=requests,
        p50_ms=p99_ms / 3,
        p90_ms=p99_ms / 2,
        p99_ms=p99_ms,
        max_ms=p99_ms * 1.2,
        codes=codes or {"OK": requests},
        rejected_p99_ms=0.0,
        target_rate=offered,
        window_s=10.0,
        wall_s=10.0,
    )


def loadtest(server: ServerProcess, *flags: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "service", "loadtest", "--target", server.target, *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result, time.monotonic() - started


# --- saturation() -------------------------------------------------------------------------


def test_saturation_is_not_reached_when_every_rate_is_kept_up() -> None:
    # The reported case: --rates 5 10, p99 16 ms, once called "saturation: about 9.0/s".
    knee = saturation([point(4.6, p99_ms=14.0), point(9.0, p99_ms=16.0)])
    assert knee is not None and not knee.reached
    assert knee.rate is None and knee.overloaded is None
    assert knee.sentence() == "not reached: kept up with every offered rate up to 9.0/s"


def test_saturation_lies_between_the_last_rate_kept_up_and_the_first_not() -> None:
    points = [point(80, ok_rate=70), point(20), point(40), point(60, ok_rate=52)]  # unsorted
    knee = saturation(points)
    assert knee is not None and knee.reached
    assert knee.kept_up is not None and knee.kept_up.offered_rate == 40
    assert knee.overloaded is not None and knee.overloaded.offered_rate == 60
    assert knee.rate == 40  # saturation_rate and the plot's line: the last rate kept up
    assert knee.sentence().startswith("between 40.0 and 60.0 requests/s (at 60.0/s only 52.0")


def test_shed_load_or_missed_deadlines_mean_not_kept_up() -> None:
    shed = point(60, codes={"OK": 590, "RESOURCE_EXHAUSTED": 10})  # 1.7% refused
    knee = saturation([point(20), point(40), shed])
    assert knee is not None and knee.overloaded is shed and knee.rate == 40
    assert "RESOURCE_EXHAUSTED 10 of 600" in knee.reason
    late = point(60, codes={"OK": 599, "DEADLINE_EXCEEDED": 1})  # 0.17%: within tolerance
    knee = saturation([point(20), late])
    assert knee is not None and not knee.reached


def test_latency_blowup_means_not_kept_up_even_when_all_answered() -> None:
    points = [point(15, p99_ms=60), point(33, p99_ms=107), point(50, p99_ms=184),
              point(60, p99_ms=310)]  # fmt: skip
    knee = saturation(points)
    assert knee is not None and knee.rate == 50
    assert knee.overloaded is points[3] and "over 5x the lowest rate's p99" in knee.reason
    # A fast model's jitter is no knee: 3 ms -> 40 ms stays under 5x the 10 ms floor.
    knee = saturation([point(5, p99_ms=3), point(10, p99_ms=40)])
    assert knee is not None and not knee.reached


def test_saturation_below_the_lowest_rate_names_no_rate() -> None:
    knee = saturation([point(100, ok_rate=60), point(200, ok_rate=61)])
    assert knee is not None and knee.reached and knee.rate is None
    assert knee.sentence().startswith("below 100.0/s, the lowest rate offered")


# --- summarize(): offered/s and ok/s ------------------------------------------------------


def test_ok_rate_never_exceeds_offered_rate_in_an_open_run() -> None:
    # The reported case: 90 arrivals in a 10 s window, the last at 8.6 s. Counting ok/s over
    # the time to the last answer (8.65 s) gave 10.4 ok/s against 9.0 offered.
    outcomes = [Outcome(sent=i * 8.6 / 89, latency=0.05, code="OK") for i in range(90)]
    window = sending_window(outcomes, 10.0)
    assert window == 10.0
    figures = summarize("open 10.0/s", outcomes, 8.65, window=window, target_rate=10.0)
    assert figures.offered_rate == 9.0  # sent / window
    assert figures.throughput <= figures.offered_rate
    assert figures.wall_s >= figures.window_s == 10.0
    # A client that fell behind stretches the window past the nominal duration.
    late = [*outcomes, Outcome(sent=10.4, latency=0.05, code="OK")]
    assert sending_window(late, 10.0) == 10.4
    # Failures count as offered, not as ok.
    mixed = [*outcomes[:60], *(Outcome(o.sent, 0.001, "RESOURCE_EXHAUSTED") for o in outcomes[60:])]
    figures = summarize("open 10.0/s", mixed, 10.05, window=10.0, target_rate=10.0)
    assert figures.offered_rate == 9.0 and figures.throughput < 6.0
    assert figures.codes == {"OK": 60, "RESOURCE_EXHAUSTED": 30}


def test_closed_run_offers_what_it_completes() -> None:
    outcomes = [Outcome(sent=i * 0.01, latency=0.02, code="OK") for i in range(100)]
    figures = summarize("closed x2", outcomes, 2.0)
    assert figures.offered_rate == figures.throughput == 50.0
    assert figures.window_s == figures.wall_s == 2.0 and figures.target_rate is None


# --- the real command ---------------------------------------------------------------------


def test_closed_mode_runs_for_the_duration(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "closed.json"
    result, seconds = loadtest(
        server, "--mode", "closed", "--concurrency", "2", "--duration", "2", "--out-json", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert seconds >= 2.0
    figures = json.loads(out.read_text())
    [run] = figures["runs"]
    assert run["label"] == "closed x2" and run["target_rate"] is None
    assert 2.0 <= run["wall_s"] < 2.0 + 10.0  # the tail is at most one --deadline
    assert run["window_s"] == run["wall_s"]
    assert run["requests"] > 2 and run["codes"] == {"OK": run["requests"]}  # kept sending
    assert 0 < run["throughput"] <= run["offered_rate"]
    assert run["offered_rate"] == run["requests"] / run["wall_s"]
    assert "saturation" not in figures and "saturation_rate" not in figures
    assert "| closed x2 |" in result.stdout and "saturation" not in result.stdout


def test_http_protocol_sends_the_same_tasks_over_the_http_port(
    server: ServerProcess, tmp_path: Path
) -> None:
    for task in ("embed", "answer"):
        out = tmp_path / f"http-{task}.json"
        flags = ("--protocol", "http", "--task", task, "--mode", "closed", "--requests", "12")
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "service", "loadtest",
             "--target", f"127.0.0.1:{server.http_port}", *flags, "--out-json", str(out)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 60
        figures = json.loads(out.read_text())
        [run] = figures["runs"]
        assert figures["protocol"] == "http" and run["codes"] == {"OK": 12}, run
    # Answered over HTTP, and counted as such by the server.
    answered = [
        s.value
        for family in text_string_to_metric_families(server.scrape())
        for s in family.samples
        if s.name == "attnserve_requests_total"
        and s.labels == {"model": "minilm", "task": "answer", "code": "OK", "protocol": "http"}
    ]
    assert answered and answered[0] >= 12


def test_closed_mode_requests_wins_over_duration(server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "count.json"
    flags = ("--mode", "closed", "--concurrency", "2", "--requests", "7", "--duration", "60")
    result, seconds = loadtest(server, *flags, "--out-json", str(out))
    assert result.returncode == 0, result.stderr
    assert seconds < 30  # did not run for --duration
    [run] = json.loads(out.read_text())["runs"]
    assert run["requests"] == 7 and run["codes"] == {"OK": 7}


def test_open_rates_report_offered_and_saturation_honestly(
    server: ServerProcess, tmp_path: Path
) -> None:
    out = tmp_path / "rates"
    result, seconds = loadtest(
        server, "--rates", "3", "6", "--duration", "1.5",
        "--out-json", f"{out}.json", "--report", f"{out}.md",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert seconds >= 3.0
    figures = json.loads(Path(f"{out}.json").read_text())
    runs = figures["runs"]
    assert [(r["label"], r["target_rate"]) for r in runs] == [("open 3.0/s", 3), ("open 6.0/s", 6)]
    for r in runs:
        assert r["window_s"] >= 1.5 and r["wall_s"] >= r["window_s"]
        assert r["offered_rate"] == r["requests"] / r["window_s"]  # the achieved Poisson rate
        assert r["throughput"] <= r["offered_rate"]
    knee = figures["saturation"]
    assert f"saturation: {knee['summary']} (embed)" in result.stdout
    assert f"Saturation: {knee['summary']}." in Path(f"{out}.md").read_text()
    if knee["reached"]:  # a light load on an idle server should not get here
        assert figures.get("saturation_rate") == knee["kept_up_rate"]
    else:
        top = max(r["offered_rate"] for r in runs)
        assert knee["summary"] == f"not reached: kept up with every offered rate up to {top:.1f}/s"
        assert "saturation_rate" not in figures and knee["overloaded_rate"] is None


def test_plot_of_a_single_run_is_refused_before_any_load(
    server: ServerProcess, tmp_path: Path
) -> None:
    png = tmp_path / "single.png"
    for flags in (("--mode", "closed"), ("--rate", "5"), ("--rates", "5")):
        result, seconds = loadtest(server, *flags, "--duration", "30", "--plot", str(png))
        assert result.returncode == 2, (flags, result.stderr)
        assert seconds < 30  # refused up front, nothing was run
        [line] = result.stderr.splitlines()
        assert "--plot" in line and "--sweep or --rates R1 R2" in line and "not written" in line
        assert result.stdout == "" and not png.exists()


def test_requests_without_a_closed_run_is_refused(server: ServerProcess) -> None:
    result, _ = loadtest(server, "--rate", "5", "--requests", "10")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert "--requests" in line and result.stdout == ""
