"""Profile the real server under closed-loop Embed load: a py-spy flame graph of its process
and its CPU time per request.

    .venv/bin/python -m scripts.profile_server --concurrency 64 --out docs/profiles/embed-c64.svg

The server runs with its defaults on models/ (as the bench's servers do); the load is the
bench's own closed loop, one corpus text per request, from this process on the same cores.
py-spy (`pip install py-spy`) samples every thread of the server at 200 Hz for `--seconds`,
counting only threads that are not idle. With `--raw` it writes py-spy's collapsed stacks
instead of an SVG, and prints the share of samples in onnxruntime's `run` and the largest
others.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.server_load import Server, run_load

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "service" / "loadtest" / "corpus.txt"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--raw", action="store_true", help="collapsed stacks, not an SVG")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    texts = [t for t in CORPUS.read_text(encoding="utf-8").splitlines() if t.strip()]
    with Server(ROOT / "models", []) as server:
        run_load(server, "minilm", texts[:200], args.concurrency)  # warm up
        command = [spy, "record", "--pid", str(server.process.pid), "--rate", "200",
                   "--duration", str(args.seconds), "--nonblocking", "-o", str(args.out),
                   "--format", "raw" if args.raw else "flamegraph"]  # fmt: skip
        recording = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        time.sleep(0.5)
        cpu, started, requests = server.cpu_seconds(), time.time(), 0
        while time.time() - started < args.seconds:
            requests += run_load(server, "minilm", texts[:256], args.concurrency).requests
        cpu, wall = server.cpu_seconds() - cpu, time.time() - started
        recording.wait()
    print(
        f"concurrency {args.concurrency}: {requests / wall:.1f} requests/s; server CPU "
        f"{cpu * 1000 / requests:.2f} ms per request ({cpu / wall:.2f} cores)"
    )
    if args.raw:
        summarize(args.out)
    return 0


def summarize(raw: Path) -> None:
    total, engine, others = 0, 0, Counter[str]()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        if "Session.run" in stack or "OpenVINOSession.run" in stack:
            engine += int(count)
        else:
            frames = [f.split(" (")[0] for f in stack.split(";")[-3:]]
            others[";".join(frames)] += int(count)
    print(f"{total} samples, {engine / total:.1%} in the engine's run")
    for stack, count in others.most_common(12):
        print(f"{count / total:6.1%}  {stack}")


if __name__ == "__main__":
    raise SystemExit(main())
