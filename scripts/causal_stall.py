"""What one long prompt costs the sequences already decoding, call by call of the loop.

    python scripts/causal_stall.py MODEL_FOLDER [--running 8] [--prompt 1000] [--threads 2]

MODEL_FOLDER is a text-generation export. The causal batch is driven directly (no server):
`--running` sequences decode steadily, then a prompt of `--prompt` tokens joins; each loop
call prints its time, the prompt tokens it prefilled, the cache bytes it moved and the
cache capacity. Every call also gives each running sequence a token, so each call's time is
the gap between two of their tokens.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from service import model_format
from service.causal.batch import PREFILL_TOKENS, CausalBatch
from service.causal.graphs import CausalGraphs
from service.runtime.precision import Route
from service.seq2seq.batch import Job
from service.seq2seq.search import Greedy, SearchSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--running", type=int, default=8)
    parser.add_argument("--prompt", type=int, default=1000)
    parser.add_argument("--prefill-tokens", type=int, default=PREFILL_TOKENS)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    spec = model_format.read(args.folder).causal
    if spec is None:
        raise SystemExit(f"{args.folder} is not a text-generation export")
    graphs = CausalGraphs("stall", args.folder, spec, Route("fp32", ("cpu",), ()), args.threads)
    never = (spec.vocab_size + 1,)  # no EOS: every sequence runs its whole length
    settings = SearchSettings(0, never, 400, 1, 1.0, False, 0, 0, None, None)
    rng = np.random.default_rng(0)

    def job(length: int) -> Job:
        prompt = [int(t) for t in rng.integers(10, min(1000, spec.vocab_size), length)]
        search = Greedy(settings, prompt)
        return Job(np.array(prompt, np.int64), search, None, 0.0, None)  # type: ignore[arg-type]

    batch = CausalBatch(graphs, args.prefill_tokens)
    batch.step([job(40) for _ in range(args.running)], [])
    for _ in range(20):
        batch.step([], [])
    started = time.perf_counter()
    batch.step([], [])
    print(f"steady call: {1e3 * (time.perf_counter() - started):.0f} ms")
    long = job(args.prompt)
    joining = [long]
    while True:
        started = time.perf_counter()
        report = batch.step(joining, [])
        joining = []
        print(
            f"call {1e3 * (time.perf_counter() - started):.0f} ms: prefilled {report.prefilled}, "
            f"moved {sum(report.copied.values()) / 1e6:.0f} MB, capacity {report.capacity}"
        )
        if any(j is long for j, _ in report.tokens):
            break
    for _ in range(3):
        started = time.perf_counter()
        batch.step([], [])
        print(f"call after it: {1e3 * (time.perf_counter() - started):.0f} ms")


if __name__ == "__main__":
    main()
