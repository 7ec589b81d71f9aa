"""`attnserve loadtest`: closed or open loop against any target, or a sweep of rates."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import grpc

from service.client import CHANNEL_OPTIONS, channel_credentials
from service.loadtest.report import Summary, plot, saturation, summarize, table
from service.loadtest.runner import closed_loop, open_loop
from service.loadtest.workload import TASKS, Workload

SWEEP_FRACTIONS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.25, 1.5, 2.0, 3.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=TASKS, default="embed")
    parser.add_argument("--mode", choices=("open", "closed"), default="open")
    parser.add_argument("--concurrency", type=int, default=16, help="closed loop: clients")
    parser.add_argument("--rate", type=float, default=20.0, help="open loop: requests/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--requests", type=int, default=0, help="closed loop: total (0: auto)")
    parser.add_argument("--sweep", action="store_true", help="sweep rates to find saturation")
    parser.add_argument("--rates", type=float, nargs="*", help="sweep these rates instead")
    parser.add_argument("--deadline", type=float, default=10.0, help="per-request timeout (s)")
    parser.add_argument("--plot", type=Path, help="write latency vs offered load as PNG")
    parser.add_argument("--out-json", dest="json_out", type=Path, help="write figures as JSON")
    parser.add_argument("--report", type=Path, help="write a Markdown table")


class _Bar:
    """A progress bar on a terminal (tqdm), nothing otherwise."""

    def __init__(self, total: int, label: str) -> None:
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
    credentials = channel_credentials(args)
    workload = Workload(args.task, args.model)
    metadata: tuple[tuple[str, str], ...] = ()
    if credentials is None:
        channel = grpc.aio.insecure_channel(args.target, options=CHANNEL_OPTIONS)
    else:
        channel = grpc.aio.secure_channel(args.target, credentials, options=CHANNEL_OPTIONS)
    async with channel:

        async def closed(concurrency: int, count: int) -> Summary:
            bar = _Bar(count, f"closed x{concurrency}")
            outcomes, seconds = await closed_loop(
                channel, args.task, workload.requests(count), concurrency,
                args.deadline, metadata, bar,
            )  # fmt: skip
            bar.close()
            return summarize(f"closed x{concurrency}", outcomes, seconds, count / seconds)

        async def opened(rate: float) -> Summary:
            count = max(1, int(rate * args.duration))
            bar = _Bar(count, f"open {rate:.1f}/s")
            outcomes, seconds = await open_loop(
                channel, args.task, workload.requests(count), rate, args.duration,
                args.deadline, metadata, progress=bar,
            )  # fmt: skip
            bar.close()
            return summarize(f"open {rate:.1f}/s", outcomes, seconds, len(outcomes) / args.duration)

        if not (args.sweep or args.rates):
            if args.mode == "closed":
                count = args.requests or max(args.concurrency * 8, 64)
                return [await closed(args.concurrency, count)]
            return [await opened(args.rate)]
        rates = args.rates
        points: list[Summary] = []
        if not rates:
            capacity = await closed(args.concurrency, max(args.concurrency * 8, 64))
            points.append(capacity)
            rates = [round(capacity.throughput * f, 1) for f in SWEEP_FRACTIONS]
        for rate in rates:
            points.append(await opened(rate))
            print(table(points[-1:]).splitlines()[-1], file=sys.stderr)
        return points


def run(args: Any) -> int:
    points = asyncio.run(_run(args))
    text = table(points)
    print(text)
    swept = [p for p in points if p.label.startswith("open")]
    knee = saturation(swept) if len(swept) > 1 else None
    if knee is not None:
        print(f"\nsaturation: about {knee.offered_rate:.1f} requests/s ({args.task})")
    if args.json_out:
        body = {"task": args.task, "target": args.target, "runs": [p.as_dict() for p in points]}
        if knee is not None:
            body["saturation_rate"] = knee.offered_rate
        args.json_out.write_text(json.dumps(body, indent=2))
    if args.report:
        header = f"# Load test: {args.task} against {args.target}\n\n"
        footer = f"\n\nSaturation: about {knee.offered_rate:.1f} requests/s.\n" if knee else "\n"
        args.report.write_text(header + text + footer)
    if args.plot and len(swept) > 1:
        plot(swept, args.plot, f"attnserve {args.task}: latency against offered load")
    bad = sum(p.codes.get(c, 0) for p in points for c in ("INTERNAL", "UNKNOWN"))
    return 1 if bad else 0
