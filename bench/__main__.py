"""`make bench`: engine, server and baseline figures, written to docs/benchmarks.{md,json}.

Every ratio compares runs made in this one process on this machine, with the same inputs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench import engine as eng
from bench.baseline import sentence_transformers_rate
from bench.goals import BATCHING_OFF, DEFAULT, INT8, SERVERS
from bench.server_load import Server, run_load
from bench.tasks import tasks_section
from service import model_format

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
CORPUS = ROOT / "service" / "loadtest" / "corpus.txt"
THREADS = 2


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def tokenize(texts: list[str]) -> list[np.ndarray]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MODELS / "minilm" / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    return [np.asarray(e.ids, dtype=np.int64) for e in tok.encode_batch(texts)]


def engine_section(results: dict[str, Any]) -> None:
    import torch
    from transformers import AutoModel

    torch.set_num_threads(THREADS)
    src = model_format.read_record(MODELS / "minilm").source.path
    torch_model = AutoModel.from_pretrained(src).eval()
    manifest = model_format.read(MODELS / "minilm", verify=False)
    fp32 = eng.OrtEncoder(MODELS / "minilm" / manifest.variants["fp32"].file, THREADS)
    # The int8 graph alone: at 128 tokens no row is short enough for the fp32 split.
    int8 = eng.OrtEncoder(MODELS / "minilm" / manifest.variants["int8"].file, THREADS)
    gflops = eng.gemm_gflops(THREADS)
    results["gemm_gflops"] = gflops
    results["torch_gemm_gflops"] = torch_gemm_gflops()
    log(
        f"fp32 GEMM 1024^3, {THREADS} threads: onnxruntime {gflops:.1f} GFLOP/s, "
        f"PyTorch {results['torch_gemm_gflops']:.1f} GFLOP/s"
    )
    flops_per_seq = eng.encoder_flops_per_token(384, 6, 128) * 128
    rows = []
    for batch in (1, 8, 32):
        data = eng.fixed_batch(batch, 128)
        ids = torch.from_numpy(np.stack(data))

        def run_torch(ids: Any = ids) -> None:
            with torch.inference_mode():
                torch_model(input_ids=ids, attention_mask=torch.ones_like(ids))

        row: dict[str, float] = {"batch": batch, "length": 128}
        row["pytorch"] = eng.rate(run_torch, batch)
        row["ort_fp32"] = eng.rate(partial(fp32.run_padded, data), batch)
        row["ort_int8"] = eng.rate(partial(int8.run_padded, data), batch)
        row["fp32_gemm_share"] = row["ort_fp32"] * flops_per_seq / (gflops * 1e9)
        log(f"engine batch {batch}x128: {row}")
        rows.append(row)
    results["engine"] = rows


def torch_gemm_gflops() -> float:
    """PyTorch's fp32 GEMM rate on the same shape: the kernels sentence-transformers runs."""
    import torch

    a = torch.randn(1024, 1024)
    per_second = eng.rate(lambda: torch.mm(a, a), 1)
    return per_second * 2 * 1024**3 / 1e9


def bare_schedules(results: dict[str, Any], rows: list[np.ndarray]) -> None:
    """The engine alone on the server's inputs (the first 768 texts, as the server runs)."""
    rows = rows[:768]
    fp32 = eng.OrtEncoder(MODELS / "minilm" / "model.onnx", THREADS)
    out: dict[str, Any] = {}
    one = [[r] for r in rows]
    out["one_at_a_time"] = {"rate": eng.schedule_rate(fp32, one), "padding": 0.0}
    arrival = eng.arrival_batches(rows, 32)
    out["arrival_32"] = {
        "rate": eng.schedule_rate(fp32, arrival),
        "padding": eng.padding_ratio(arrival),
    }
    sweep = {}
    for budget in (256, 512, 1024, 2048, 4096):
        batches = eng.sorted_budget_batches(rows, budget)
        sweep[budget] = {
            "rate": eng.schedule_rate(fp32, batches),
            "padding": eng.padding_ratio(batches),
        }
        log(f"bare engine, length-sorted, budget {budget}: {sweep[budget]}")
    out["sorted_budget_sweep"] = sweep
    best = max(sweep, key=lambda b: sweep[b]["rate"])
    out["sorted_best"] = {"budget": best, **sweep[best]}
    out["single_p50_ms"] = eng.single_p50_ms(fp32, rows)
    log(f"bare engine: {out}")
    results["bare"] = out


def sentence_transformers_section(results: dict[str, Any], texts: list[str]) -> None:
    rate = sentence_transformers_rate(MODELS, texts, THREADS)
    results["sentence_transformers"] = {"rate": rate, "batch_size": 32}
    log(f"sentence-transformers encode(batch_size=32): {rate:.1f}/s")


# The goals' configurations at concurrency 64 (and the default's at 1) are measured in
# interleaved rounds by bench/goals.py; this pass measures the rest of the table.
def server_section(results: dict[str, Any], texts: list[str], quick: bool) -> None:
    configs: list[tuple[str, list[str], str, tuple[int, ...]]] = [
        (label, *SERVERS[label], levels)
        for label, levels in ((DEFAULT, (8,)), (BATCHING_OFF, (8,)), (INT8, (1,)))
    ]
    if not quick:
        # The token budget is swept on the bare engine (section 2), where this VM's drift
        # matters least; the server's default is the best budget there.
        # sessions x threads: the default is one 1-thread session per core plus a
        # 2-thread one for a batch alone; against the two plain layouts.
        for label, flags in (
            ("1 session x 2 threads", ["--sessions", "1"]),
            ("2 sessions x 1 thread", ["--sessions", "2", "--intra-op-threads", "1"]),
        ):
            configs.append((label, flags, "minilm", (1, 64)))
    runs = []
    for label, flags, model, levels in configs:
        with Server(MODELS, flags) as server:
            for c in levels:
                n = min(len(texts), 300 if c == 1 else 768)
                result = run_load(server, model, texts[:n], c)
                log(f"server {label}, concurrency {c}: {asdict(result)}")
                runs.append({"config": label, "flags": flags, "model": model, **asdict(result)})
    results["server"] = runs


def cpu_name() -> str:
    """The CPU's model name and the vector units that matter here: relative speeds flip
    between the machines this runs on, so every figure names them."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    units = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name}; {', '.join(units) or 'no AVX2'}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the sweeps")
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of the goals' measurements"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    parser.add_argument(
        "--only",
        choices=["causal", "seq2seq", "http"],
        help="run this section alone, into the results already in --out (each names the CPU "
        "it ran on, and the report says so where it is not the rest's)",
    )
    args = parser.parse_args()
    if args.only:
        return _one_section(args.only, Path(args.out))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    texts = [t for t in CORPUS.read_text().splitlines() if t.strip()]
    rows = tokenize(texts)
    started = time.time()
    results: dict[str, Any] = {
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        "corpus": {
            "texts": len(texts),
            "mean_tokens": float(np.mean([len(r) for r in rows])),
            "p10_tokens": float(np.percentile([len(r) for r in rows], 10)),
            "p90_tokens": float(np.percentile([len(r) for r in rows], 90)),
        },
    }
    engine_section(results)
    bare_schedules(results, rows)
    from bench.precisions import precision_section
    from service.config import DEFAULT_BATCH_TOKENS

    precision_section(results, MODELS, rows, tokenize, THREADS, DEFAULT_BATCH_TOKENS["cpu"], log)
    sentence_transformers_section(results, texts)
    server_section(results, texts, args.quick)
    tasks_section(results, MODELS, texts, THREADS, log)
    from bench.http import http_section

    http_section(results, MODELS, texts, log)
    from bench.goals import goal_rounds

    goal_rounds(results, MODELS, rows, texts, THREADS, args.rounds, log)
    from bench.explain import explain_section

    explain_section(results, MODELS, texts, log)
    from bench.seq2seq import seq2seq_section

    seq2seq_section(results, THREADS, log)
    from bench.causal import causal_section

    causal_section(results, THREADS, log)
    results["seconds"] = time.time() - started
    from bench.report import write_report

    write_report(results, Path(args.out))
    log(f"done in {results['seconds']:.0f}s: {args.out}.md, {args.out}.json")
    out_json = Path(args.out).with_suffix(".json")
    out_json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def _one_section(section: str, out: Path) -> int:
    """Re-run one section beside the rest of the last full run's results; a section run on
    another CPU says so in the report (ratios are within a section, never across them)."""
    out_json = out.with_suffix(".json")
    results = json.loads(out_json.read_text())
    # Each of these sections names the CPU it ran on (the report says so where it differs).
    if section == "http":
        from bench.http import http_section

        texts = [t for t in CORPUS.read_text().splitlines() if t.strip()]
        http_section(results, MODELS, texts, log)
    elif section == "seq2seq":
        from bench.seq2seq import seq2seq_section

        seq2seq_section(results, THREADS, log)
    else:
        from bench.causal import causal_section

        causal_section(results, THREADS, log)
    from bench.report import write_report

    write_report(results, out)
    out_json.write_text(json.dumps(results, indent=2, default=str))
    log(f"{section} section written into {out}.md, {out_json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
