"""`attnserve loadtest`: closed or open loop against any target, or a sweep of rates."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from service.client import USAGE_ERROR, UsageError
from service.loadtest.report import Saturation, Summary, plot, saturation, summarize, table
from service.loadtest.runner import closed_loop, open_loop, sending_window
from service.loadtest.senders import Sender, open_grpc, open_http
from service.loadtest.workload import TASKS, Workload

SWEEP_FRACTIONS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0)
POOL = 512  # distinct requests a timed run cycles through
GRPC_TARGET, HTTP_TARGET = "localhost:50051", "localhost:8000"  # the server's default ports


def _positive(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> float | int:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its error messages
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=TASKS, default="embed")
    parser.add_argument(
        "--protocol",
        choices=("grpc", "http"),
        default="grpc",
        help="grpc: attnserve.v1; http: the same tasks over the HTTP port (/v1/embeddings "
        "as the OpenAI SDKs call it, /v1/answer, /v1/summarize); --target is then the HTTP "
        f"port's host:port (default {HTTP_TARGET})",
    )
    parser.add_argument("--mode", choices=("open", "closed"), default="open")
    parser.add_argument(
        "--concurrency", type=_positive(int), default=16, help="closed loop: clients"
    )
    parser.add_argument("--rate", type=_positive(float), default=20.0, help="open loop: req/s")
    parser.add_argument(
        "--duration",
        type=_positive(float),
        default=10.0,
        help="seconds per run: an open-loop rate sends for this long; a closed run (the "
        "--sweep capacity probe too) sends for this long, then waits for the requests in "
        "flight. In closed mode --requests, if given, wins",
    )
    parser.add_argument(
        "--requests",
        type=_positive(int),
        metavar="N",
        help="closed loop (and the --sweep capacity probe): send exactly N requests and "
        "ignore --duration (default: send for --duration seconds)",
    )
    parser.add_argument(
        "--sweep", action="store_true", help="measure capacity, then sweep open-loop rates"
    )
    parser.add_argument(
        "--rates",
        type=_positive(float),
        nargs="+",
        metavar="R",
        help="sweep these open-loop rates (requests/s) instead of --sweep's",
    )
    parser.add_argument(
        "--deadline",
        type=_positive(float),
        default=10.0,
        help="per-request timeout in seconds (default: %(default)s)",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        help="write latency vs offered load as PNG (needs --sweep or at least 2 --rates)",
    )
    parser.add_argument("--out-json", dest="json_out", type=Path, help="write figures as JSON")
    parser.add_argument("--report", type=Path, help="write a Markdown table")


def _misuse(args: Any) -> str | None:
    """Flags that would be ignored, found before any load is sent; None: all is well."""
    sweeping = bool(args.sweep or args.rates)
    if args.plot and not (args.sweep or len(set(args.rates or ())) >= 2):
        return (
            "--plot needs a sweep (--sweep or --rates R1 R2 ...) to draw latency against "
            "offered load; nothing was run and the plot was not written"
        )
    closed_run = (args.sweep and not args.rates) or (not sweeping and args.mode == "closed")
    if args.requests is not None and not closed_run:
        return (
            "--requests counts the requests of a closed-loop run (--mode closed, or the "
            "--sweep capacity probe); this run has none"
        )
    return None


class _Bar:
    """A progress bar on a terminal (tqdm), nothing otherwise."""

    def __init__(self, total: int | None, label: str) -> None:
        self._bar: Any = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit="req", leave=False)

    def __call__(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


async def _run(args: Any) -> list[Summary]:
    workload = Workload(args.task, args.model)
    opened_with = open_http if args.protocol == "http" else open_grpc
    connection, sender = opened_with(args, args.task)
    try:
        return await _runs(args, workload, sender)
    finally:
        await connection.close()


async def _runs(args: Any, workload: Workload, sender: Sender) -> list[Summary]:
    async def closed(concurrency: int) -> Summary:
        # --requests N: exactly N requests; otherwise --duration seconds of sending.
        count, duration = (args.requests, None) if args.requests else (POOL, args.duration)
        bar = _Bar(args.requests, f"closed x{concurrency}")
        outcomes, seconds = await closed_loop(
            sender.send, sender.prepare(workload.requests(count)), concurrency,
            args.deadline, bar, duration=duration,
        )  # fmt: skip
        bar.close()
        return summarize(f"closed x{concurrency}", outcomes, seconds)

    async def opened(rate: float) -> Summary:
        count = max(1, int(rate * args.duration))
        bar = _Bar(count, f"open {rate:.1f}/s")
        outcomes, seconds = await open_loop(
            sender.send, sender.prepare(workload.requests(count)), rate, args.duration,
            args.deadline, progress=bar,
        )  # fmt: skip
        bar.close()
        window = sending_window(outcomes, args.duration)
        return summarize(f"open {rate:.1f}/s", outcomes, seconds, window=window, target_rate=rate)

    if not (args.sweep or args.rates):
        if args.mode == "closed":
            return [await closed(args.concurrency)]
        return [await opened(args.rate)]
    rates = args.rates
    points: list[Summary] = []
    if not rates:
        capacity = await closed(args.concurrency)
        points.append(capacity)
        print(table(points).splitlines()[-1], file=sys.stderr)
        if capacity.throughput <= 0:
            codes = ", ".join(f"{k} {v}" for k, v in sorted(capacity.codes.items()))
            raise SystemExit(f"attnserve loadtest: capacity probe got no answer ({codes})")
        # Rounded rates can collide for a slow server; 0.1/s is the least worth sending.
        rates = sorted({max(0.1, round(capacity.throughput * f, 1)) for f in SWEEP_FRACTIONS})
    for rate in rates:
        points.append(await opened(rate))
        print(table(points[-1:]).splitlines()[-1], file=sys.stderr)
    return points


def run(args: Any) -> int:
    if args.protocol == "http" and args.target == GRPC_TARGET:  # the default: HTTP's port
        args.target = HTTP_TARGET
    problem = _misuse(args)
    if problem:
        print(f"attnserve loadtest: {problem}", file=sys.stderr)
        return USAGE_ERROR
    try:
        points = asyncio.run(_run(args))
    except UsageError as exc:  # a token without TLS, an unreadable PEM file
        print(f"attnserve loadtest: {exc}", file=sys.stderr)
        return USAGE_ERROR
    text = table(points)
    print(text)
    swept = [p for p in points if p.target_rate is not None]
    knee: Saturation | None = saturation(swept) if len(swept) > 1 else None
    if knee is not None:
        print(f"\nsaturation: {knee.sentence()} ({args.task})")
    if args.json_out:
        body: dict[str, Any] = {
            "task": args.task,
            "target": args.target,
            "protocol": args.protocol,
            "runs": [p.as_dict() for p in points],
        }
        if knee is not None:
            body["saturation"] = {
                "reached": knee.reached,
                "kept_up_rate": knee.kept_up.offered_rate if knee.kept_up else None,
                "overloaded_rate": knee.overloaded.offered_rate if knee.overloaded else None,
                "reason": knee.reason,
                "summary": knee.sentence(),
            }
            if knee.rate is not None:
                body["saturation_rate"] = knee.rate
        args.json_out.write_text(json.dumps(body, indent=2))
    if args.report:
        header = f"# Load test: {args.task} against {args.target} over {args.protocol}\n\n"
        footer = f"\n\nSaturation: {knee.sentence()}.\n" if knee else "\n"
        args.report.write_text(header + text + footer)
    if args.plot:
        if len(swept) < 2:  # _misuse rules this out unless the sweep's rates collapsed
            print(
                "attnserve loadtest: fewer than 2 rates were run; no plot written", file=sys.stderr
            )
            return 1
        plot(swept, args.plot, f"attnserve {args.task}: latency against offered load")
    bad = sum(p.codes.get(c, 0) for p in points for c in ("INTERNAL", "UNKNOWN"))
    return 1 if bad else 0
