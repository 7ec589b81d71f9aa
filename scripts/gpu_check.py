"""`make gpu-check`: on a CUDA machine, show that the GPU path runs and how fast; write
docs/gpu.md. Within 8 minutes: each step checks the clock and the rest is skipped (and said
so) when time runs short.

1. the machine: the GPU (nvidia-smi), onnxruntime's build and providers;
2. each GPU provider (CUDA, and TensorRT where listed) in fp32 and fp16 really runs the
   default model: its session's providers, the load time (TensorRT: the engine build, then
   the load from its cache);
3. fp16 against fp32 on the GPU, every text of the corpus: min and mean cosine;
4. the engine alone, through IO binding, over token budgets: sequences/s and padding, to
   choose the GPU token budget;
5. the server as `--precision auto` chooses, at concurrency 64 and 1, at the default
   budget and the best one of step 4.

Run `python -m scripts.gpu_check` (the Makefile target installs onnxruntime-gpu and exports
the models first). Without a CUDA provider it writes docs/gpu.md saying so, and exits 1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.engine import padded_feeds, sorted_index_batches
from bench.server_load import Server, run_load
from service import model_format
from service.config import DEFAULT_BATCH_TOKENS, load_settings
from service.runtime.engine import Engine, EngineError
from service.runtime.machine import detect
from service.runtime.precision import Route, choose

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
CORPUS = ROOT / "service" / "loadtest" / "corpus.txt"
OUT = ROOT / "docs" / "gpu.md"
LIMIT_S = 480.0
BUDGETS = (2048, 4096, 8192, 16384, 32768, 65536)


class Clock:
    def __init__(self, limit: float) -> None:
        self.started, self.limit = time.monotonic(), limit

    def left(self) -> float:
        return self.limit - (time.monotonic() - self.started)


def log(message: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {message}", flush=True)


def gpu_name() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "none (nvidia-smi not found)"
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else "none"


def tokenized(folder: Path, limit: int) -> list[np.ndarray]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(limit)
    texts = [t for t in CORPUS.read_text(encoding="utf-8").splitlines() if t.strip()]
    return [np.asarray(e.ids, dtype=np.int64) for e in tokenizer.encode_batch(texts)]


def embeddings(engine: Engine, rows: Sequence[np.ndarray], budget: int) -> np.ndarray:
    vectors = np.zeros((len(rows), 384), dtype=np.float64)
    for batch in sorted_index_batches(rows, budget):
        hidden = engine.run(padded_feeds([rows[i] for i in batch], engine.input_names))[0]
        for k, i in enumerate(batch):
            mean = hidden[k, : len(rows[i])].astype(np.float64).mean(axis=0)
            vectors[i] = mean / np.linalg.norm(mean)
    return vectors


def schedule_rate(engine: Engine, rows: Sequence[np.ndarray], budget: int) -> dict[str, float]:
    plan = sorted_index_batches(rows, budget)
    prepared = [padded_feeds([rows[i] for i in b], engine.input_names) for b in plan]
    for batch in prepared[:2]:
        engine.run(batch)
    started = time.perf_counter()
    for batch in prepared:
        engine.run(batch)
    seconds = time.perf_counter() - started
    real = sum(len(r) for r in rows)
    padded = sum(len(b) * max(len(rows[i]) for i in b) for b in plan)
    return {"rate": len(rows) / seconds, "padding": 1 - real / padded, "batches": len(plan)}


def route_for(manifest: Any, precision: str, providers: str, cache: Path) -> Route:
    settings = load_settings(precision=precision, providers=providers, trt_cache_dir=cache)
    return choose(manifest, detect(), settings)[0]


def load(folder: Path, manifest: Any, route: Route) -> tuple[Engine, float]:
    running = manifest.running(route.precision)
    started = time.perf_counter()
    threads = os.cpu_count() or 1
    engine = Engine("minilm", folder / running.model_file, route, threads, lambda p: 1)
    return engine, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="the report (default docs/gpu.md)")
    out = parser.parse_args().out
    clock = Clock(LIMIT_S)
    folder = MODELS / "minilm"
    machine = detect()
    facts = {
        "gpu": gpu_name(),
        "onnxruntime": f"{ort.__version__} ({', '.join(ort.get_available_providers())})",
        "machine": machine.describe(),
    }
    log(f"{facts}")
    sections: list[str] = []
    if not machine.gpu:
        write(out, facts, [NOT_RUN])
        return 1
    manifest = model_format.read(folder)
    rows = tokenized(folder, manifest.max_sequence_length)
    cache = Path(tempfile.mkdtemp(prefix="attnserve-trt-"))
    gpu_providers = [p for p in ("tensorrt", "cuda") if p in machine.providers]

    # 2. each provider and precision really runs
    table = [
        "| provider | precision | session runs on | load s | again (cached) s |",
        "|---|---|---|---:|---:|",
    ]
    engines: dict[tuple[str, str], Engine] = {}
    for provider in gpu_providers:
        for precision in ("fp32", "fp16"):
            if clock.left() < 120:
                table.append(f"| {provider} | {precision} | skipped: out of time | | |")
                continue
            try:
                route = route_for(manifest, precision, f"{provider},cpu", cache)
                engine, first = load(folder, manifest, route)
                cached = provider == "tensorrt"
                again = load(folder, manifest, route)[1] if cached else float("nan")
            except EngineError as exc:
                table.append(f"| {provider} | {precision} | failed: {exc} | | |")
                continue
            engines[provider, precision] = engine
            runs = ", ".join(engine.providers)
            table.append(f"| {provider} | {precision} | {runs} | {first:.1f} | {again:.1f} |")
            log(table[-1])
    sections.append("## Providers that really run\n\n" + "\n".join(table))

    # 3. fp16 against fp32 on the GPU
    provider = "cuda" if ("cuda", "fp16") in engines else gpu_providers[0]
    if (provider, "fp16") in engines and (provider, "fp32") in engines and clock.left() > 90:
        fp32 = embeddings(engines[provider, "fp32"], rows, 8192)
        fp16 = embeddings(engines[provider, "fp16"], rows, 8192)
        cosines = (fp32 * fp16).sum(axis=1)
        sections.append(
            f"## fp16 against fp32 on {provider}, {len(rows)} texts of the corpus\n\n"
            f"min cosine {cosines.min():.6f}, mean {cosines.mean():.6f}, "
            f"{(cosines < 0.9999).mean():.1%} of texts below 0.9999 (the floor)"
        )
        log(sections[-1])

    # 4. the engine over token budgets
    sweep = [
        "| provider | precision | budget | sequences/s | padding | batches |",
        "|---|---|---:|---:|---:|---:|",
    ]
    best: dict[str, tuple[int, float]] = {}
    for (provider, precision), engine in engines.items():
        for budget in BUDGETS:
            if clock.left() < 75:
                break
            r = schedule_rate(engine, rows, budget)
            sweep.append(
                f"| {provider} | {precision} | {budget} | {r['rate']:.0f} | {r['padding']:.0%} "
                f"| {r['batches']:.0f} |"
            )
            log(sweep[-1])
            if r["rate"] > best.get(precision, (0, 0.0))[1]:
                best[precision] = (budget, r["rate"])
    title = "## The engine alone, length-sorted batches under a token budget (IO binding)"
    sections.append(title + "\n\n" + "\n".join(sweep))
    engines.clear()

    # 5. the server as auto chooses
    texts = [t for t in CORPUS.read_text(encoding="utf-8").splitlines() if t.strip()][:768]
    auto = choose(manifest, machine, load_settings())[0]
    serve = [
        "| server | precision | concurrency | req/s | p50 ms | p99 ms | mean batch |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    budgets: list[tuple[str, list[str]]] = [("default budget", [])]
    if auto.precision in best:
        budget = best[auto.precision][0]
        budgets.append((f"budget {budget}", ["--max-batch-tokens", str(budget)]))
    for label, flags in budgets:
        if clock.left() < 45:
            serve.append(f"| {label} | | | skipped: out of time | | | |")
            continue
        with Server(MODELS, ["--trt-cache-dir", str(cache), *flags]) as server:
            for concurrency in (64, 1):
                sample = texts[: 768 if concurrency > 1 else 200]
                result = run_load(server, "minilm", sample, concurrency)
                serve.append(
                    f"| {label} | {auto.precision} | {concurrency} | {result.throughput:.0f} "
                    f"| {result.p50_ms:.2f} | {result.p99_ms:.2f} | {result.mean_batch_size:.1f} |"
                )
                log(serve[-1])
    title = f"## The server, `--precision auto`: {auto.precision} on {', '.join(auto.providers)}"
    sections.append(f"{title}\n\n{auto.reason}\n\n" + "\n".join(serve))
    shutil.rmtree(cache, ignore_errors=True)
    gpu_default = DEFAULT_BATCH_TOKENS["cuda"]
    found = best.get(auto.precision)
    sections.append(
        f"The GPU token budget today: {gpu_default} (service/config.py DEFAULT_BATCH_TOKENS)."
        + (f" Best in the sweep above for {auto.precision}: {found[0]}." if found else "")
    )
    write(out, facts, sections, clock)
    return 0


PREAMBLE = """\
What runs on a GPU: the fp16 variant (`model.fp16.onnx`, fp16 inside, int64 ids in and fp32
out, held at export to cosine 0.9999 of PyTorch on the parity set) on TensorRT where its
provider loads, else CUDA; each batch through IO binding (inputs copied to the device once,
outputs copied back once); TensorRT with one shape profile from 1x1 to the longest batch and
its engines and timings cached under `--trt-cache-dir`. `--precision auto` picks it
whenever onnxruntime lists CUDA or TensorRT and a session really runs there
(service/runtime/precision.py); `make test` checks that choice, the provider options and the
fp16 variant's parity on the CPU, not on a GPU."""


NOT_RUN = """\
**Not run on a GPU yet.** This machine has no CUDA or TensorRT provider, so none of the GPU
checks ran. No GPU machine with onnxruntime-gpu has been at hand to this project so far;
until `make gpu-check` runs on one, nothing on this page is a GPU figure."""


def write(
    out: Path, facts: dict[str, str], sections: list[str], clock: Clock | None = None
) -> None:
    took = f" in {LIMIT_S - clock.left():.0f} s" if clock else ""
    head = [
        "# The GPU path, measured",
        "",
        PREAMBLE,
        "",
        f"Written by `make gpu-check` ({time.strftime('%Y-%m-%d')}){took}.",
        "",
        f"- GPU: {facts['gpu']}",
        f"- onnxruntime: {facts['onnxruntime']}",
        f"- this machine: {facts['machine']}",
        "",
    ]
    out.write_text("\n".join(head) + "\n" + "\n\n".join(sections) + "\n", encoding="utf-8")
    log(f"wrote {out}")


if __name__ == "__main__":
    raise SystemExit(main())
