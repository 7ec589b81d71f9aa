"""Run in build/ct2-venv by bench/ctranslate2_peer.py: a JSON request on stdin, a JSON line of
tokens/s and time to first token per compute type on stdout. Imports only what that venv has.

Time to first token comes from translate_batch's per-step callback (greedy only): the very
mechanism Translator.generate_tokens streams with, but it also streams a batch, one call per
request and step, so the batch of 16 gets a figure per request too."""

import json
import statistics
import sys
import time
from typing import Any

import ctranslate2
from tokenizers import Tokenizer


def main() -> None:
    request = json.loads(sys.stdin.read())
    tokenizer = Tokenizer.from_file(request["tokenizer"])
    sources = [tokenizer.encode(text).tokens for text in request["texts"]]
    n = request["new_tokens"]
    options = {"beam_size": 1, "max_decoding_length": n, "min_decoding_length": n}

    def run(translator: Any, batch: list[list[str]]) -> tuple[float, list[float]]:
        """Seconds for the batch and each request's seconds to its first token."""
        first: dict[int, float] = {}
        started = time.perf_counter()

        def on_step(step: Any) -> bool:
            first.setdefault(step.batch_id, time.perf_counter() - started)
            return False  # keep decoding

        out = translator.translate_batch(
            batch, max_batch_size=len(batch), callback=on_step, **options
        )
        seconds = time.perf_counter() - started
        lengths = [len(o.hypotheses[0]) for o in out]
        if lengths != [n] * len(batch) or len(first) != len(batch):
            raise SystemExit(f"CTranslate2 made {lengths} tokens, not {n} each (streamed {first})")
        return seconds, list(first.values())

    alone_only = request.get("one_at_a_time_only", False)

    def alone(engine: Any) -> float:
        """Seconds for every request, one at a time."""
        return sum(run(engine, [one])[0] for one in sources)

    figures = {}
    for kind, path in request["models"].items():
        translator = ctranslate2.Translator(
            path, device="cpu", inter_threads=1, intra_threads=request["threads"],
            compute_type="int8" if kind == "int8" else "float32",
        )  # fmt: skip
        for source in sources[:2]:  # warm-up, as bench/seq2seq.py's
            run(translator, [source])
        if alone_only:  # a paired round (bench/paired.py): one at a time, nothing else
            figures[kind] = {"one_at_a_time_tokens_per_s": n * len(sources) / alone(translator)}
            continue
        run(translator, sources)
        apart, alone_ttft = 0.0, []
        for source in sources:
            seconds, ttft = run(translator, [source])
            apart += seconds
            alone_ttft += ttft
        together, batch_ttft = run(translator, sources)
        tokens = n * len(sources)
        figures[kind] = {
            "one_at_a_time_tokens_per_s": tokens / apart,
            "batch_tokens_per_s": tokens / together,
            "one_at_a_time_ttft_ms": 1e3 * statistics.median(alone_ttft),
            "batch_ttft_ms": 1e3 * statistics.median(batch_ttft),
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
