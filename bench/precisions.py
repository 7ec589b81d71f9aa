"""Every precision the default model holds, on this machine; and the int8 recipe's speed
against its parity.

Each variant of models/minilm runs as the server runs it: the route that `--precision P`
gets here (service.runtime.precision.choose), in the server's Engine, int8 with its short
rows on the fp32 graph (split.py). All of them, and the int8 recipes (the same int8 graph
without the split, and every MatMul int8, quantized again into a temporary folder), are
timed side by side on the corpus's first 768 texts in length-sorted batches under the CPU
token budget (`bench.engine.interleaved_rates`), so ratios to fp32 come from one round.

Each is set against this CPU's GEMM rate in its own precision (1024^3 through onnxruntime),
with FLOPs per sequence for the corpus's real lengths (padding is not useful work).

Parity is the cosine of each text's embedding, computed in those batches (dynamic int8
scales span a batch), against the fp32 graph's one text at a time; the export's parity
sentences join the corpus, since the shortest inputs ("OK.") are the weakest.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from bench import engine as eng
from export.parity import SENTENCES
from export.quantize import quantize_int8
from service import model_format
from service.config import load_settings
from service.runtime.engine import Engine, EngineError
from service.runtime.machine import Machine, detect
from service.runtime.precision import (
    AUTO_ORDER,
    RULES,
    PrecisionError,
    Route,
    choose,
)

MODEL = "minilm"
ORDER = ("fp32", "bf16", "fp16", "int8")
TIMED_ROWS = 768
SHIPPED_SPLIT = "shipped (FFN down-projections fp32), short rows on fp32 (as served)"
SHIPPED_BARE = "shipped, without the short-row split"
ALL_INT8 = "all MatMuls int8, without the split"


class Graph:
    """One variant in the server's Engine (one session, all the threads), fed like
    bench.engine.OrtEncoder."""

    def __init__(self, engine: Engine, short: Engine | None = None, up_to: int = 0) -> None:
        self.engine = engine
        if short is not None and up_to:
            engine.send_short_rows(short, up_to)

    def run_padded(self, rows: Sequence[np.ndarray]) -> list[np.ndarray]:
        return self.engine.run(eng.padded_feeds(rows, self.engine.input_names))


def _engine(name: str, path: Path, route: Route, threads: int) -> Engine:
    return Engine(name, path, route, threads, lambda provider: 1)


def _matmuls(path: Path) -> int:
    graph = onnx.load(str(path), load_external_data=False).graph
    return sum(node.op_type == "MatMul" for node in graph.node)


def _embeddings(
    encoder: eng.Encoder, batches: Sequence[Sequence[int]], rows: Sequence[np.ndarray]
) -> np.ndarray:
    """Mean-pooled, normalised embeddings of `rows`, run in `batches` (lists of indices)."""
    vectors: np.ndarray | None = None
    for batch in batches:
        states = np.asarray(encoder.run_padded([rows[i] for i in batch])[0], np.float32)
        if vectors is None:
            vectors = np.zeros((len(rows), states.shape[-1]), np.float32)
        for k, i in enumerate(batch):
            mean = states[k, : len(rows[i])].mean(axis=0)
            vectors[i] = mean / np.linalg.norm(mean)
    assert vectors is not None
    return vectors


def _parity(cosines: np.ndarray, corpus_from: int) -> dict[str, float]:
    return {
        "mean_cosine": float(cosines.mean()),
        "min_cosine": float(cosines.min()),
        "min_cosine_corpus": float(cosines[corpus_from:].min()),
        "below_0_99": float((cosines < 0.99).mean()),
    }


def gemm_rates(
    threads: int, machine: Machine, log: Callable[[str], None]
) -> tuple[dict[str, float | None], dict[str, str]]:
    """GFLOP/s of a 1024^3 GEMM in each precision (None where it cannot be measured here,
    with the reason): onnxruntime's CPU provider, bf16 OpenVINO's runtime as the server's
    bf16 variant runs (service/runtime/openvino_session.py)."""
    rates: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    for precision in ORDER:
        try:
            if precision != "bf16":
                rates[precision] = eng.gemm_gflops(threads, precision)
                continue
            # Without bf16 units OpenVINO compiles fp32 under a bf16 hint: never call that bf16.
            why = RULES["bf16"].unable(machine, ("openvino",))
            if why:
                rates[precision], notes[precision] = None, why
                continue
            from service.runtime.openvino_session import OpenVINOSession

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "gemm.onnx"
                path.write_bytes(eng.gemm_graph(precision))
                session = OpenVINOSession(path, precision, threads)
                rates[precision] = eng.gemm_session_gflops(session, precision)
        except Exception as exc:  # onnxruntime and OpenVINO raise their own untyped errors
            rates[precision], notes[precision] = None, f"{type(exc).__name__}: {exc}"
    log(f"GEMM 1024^3, {threads} threads, GFLOP/s: {rates} {notes or ''}")
    return rates, notes


def _auto(folder: Path, machine: Machine) -> dict[str, Any]:
    """What `--precision auto` serves here, and why each faster precision is passed over."""
    manifest = model_format.read(folder, verify=False)
    settings = load_settings(precision="auto")
    route = choose(manifest, machine, settings)[0]
    passed_over = {}
    order = list(AUTO_ORDER)
    faster = order[: order.index(route.precision)] if route.precision in order else []
    for precision in faster:
        rule = RULES[precision]
        why = rule.unable(machine, settings.providers) or rule.slow(machine, settings.providers)
        if precision not in manifest.variants:
            why = why or manifest.skipped_variants.get(precision, "the folder holds none")
        passed_over[precision] = why or "its session fell back to another provider"
    return {
        "precision": route.precision,
        "reason": route.reason,
        "passed_over": passed_over,
        "machine": machine.describe(),
        "cpu_bf16_units": machine.bf16_units,
        "gpu": machine.gpu,
    }


def precision_section(
    results: dict[str, Any],
    models: Path,
    rows: list[np.ndarray],
    tokenize: Callable[[list[str]], list[np.ndarray]],
    threads: int,
    budget: int,
    log: Callable[[str], None],
) -> None:
    folder = models / MODEL
    manifest = model_format.read(folder)
    record = model_format.read_record(folder)
    assert isinstance(record, model_format.EncoderManifest)
    machine = detect()
    auto = _auto(folder, machine)
    log(f"--precision auto serves {auto['precision']} here: {auto['reason']}")
    gemm, gemm_notes = gemm_rates(threads, machine, log)

    timed = eng.sorted_budget_batches(rows[:TIMED_ROWS], budget)
    lengths = [len(r) for b in timed for r in b]
    hidden, layers = record.hidden_size, record.num_layers
    flops = float(np.mean([n * eng.encoder_flops_per_token(hidden, layers, n) for n in lengths]))
    parity_rows = [*tokenize(list(SENTENCES)), *rows]
    parity_batches = eng.sorted_index_batches(parity_rows, budget)

    fp32_variant = manifest.variants["fp32"]
    fp32_route = choose(manifest, machine, load_settings(precision="fp32"))[0]
    fp32 = _engine(f"{MODEL} fp32", folder / fp32_variant.file, fp32_route, threads)
    graphs: dict[str, eng.Encoder] = {}
    info: dict[str, dict[str, Any]] = {}
    not_measured: dict[str, str] = {}
    for precision in [p for p in ORDER if p in manifest.variants or p in manifest.skipped_variants]:
        if precision not in manifest.variants:
            not_measured[precision] = manifest.skipped_variants[precision]
            continue
        variant = manifest.variants[precision]
        try:
            route = choose(manifest, machine, load_settings(precision=precision))[0]
            if precision == "fp32":
                engine = fp32
            else:
                engine = _engine(f"{MODEL} {precision}", folder / variant.file, route, threads)
        except (PrecisionError, EngineError) as exc:
            not_measured[precision] = str(exc)
            log(f"precision {precision} not measured: {exc}")
            continue
        short = None
        if variant.fp32_rows_up_to:  # as service/tasks/loading.py builds it
            short_route = Route("fp32", route.providers, ())
            short = _engine(f"{MODEL} short rows", folder / fp32_variant.file, short_route, threads)
        graphs[precision] = Graph(engine, short, variant.fp32_rows_up_to)
        info[precision] = {
            "file": variant.file,
            "providers": engine.providers,
            "fp32_rows_up_to": variant.fp32_rows_up_to,
            "route": route.reason,
        }
    int8_spec = record.variants.get("int8")
    with tempfile.TemporaryDirectory() as tmp:
        recipes: dict[str, dict[str, Any]] = {}
        if "int8" in graphs and int8_spec is not None and int8_spec.quantization:
            int8_route = choose(manifest, machine, load_settings(precision="int8"))[0]
            int8_file = folder / manifest.variants["int8"].file
            all_int8 = Path(tmp) / "model.onnx"
            all_kept = quantize_int8(folder / fp32_variant.file, all_int8, keep_ffn_down_fp32=False)
            up_to = manifest.variants["int8"].fp32_rows_up_to
            kept = int8_spec.quantization.fp32_matmuls
            graphs[SHIPPED_BARE] = Graph(_engine("int8 bare", int8_file, int8_route, threads))
            graphs[ALL_INT8] = Graph(_engine("all int8", all_int8, int8_route, threads))
            recipes = {
                SHIPPED_SPLIT: {"fp32_matmuls": kept, "fp32_rows_up_to": up_to},
                SHIPPED_BARE: {"fp32_matmuls": kept, "fp32_rows_up_to": 0},
                ALL_INT8: {"fp32_matmuls": all_kept.fp32_matmuls, "fp32_rows_up_to": 0},
            }
        rates = eng.interleaved_rates(graphs, timed)
        log(f"precisions, side by side (seq/s): {rates}")
        reference = _embeddings(Graph(fp32), [[i] for i in range(len(parity_rows))], parity_rows)
        parity = {}
        for name, graph in graphs.items():
            cosines = (_embeddings(graph, parity_batches, parity_rows) * reference).sum(axis=1)
            parity[name] = _parity(cosines, len(SENTENCES))
            log(f"parity {name}: {parity[name]}")

    variants = {}
    for precision, extra in info.items():
        rate = rates[precision]
        gflops = gemm.get(precision)
        variants[precision] = {
            **extra,
            "rate": rate,
            "vs_fp32": rate / rates["fp32"],
            "gemm_gflops": gflops,
            "gemm_share": rate * flops / (gflops * 1e9) if gflops else None,
            **parity[precision],
        }
    results["precisions"] = {
        "model": MODEL,
        "budget": budget,
        "timed_rows": min(TIMED_ROWS, len(rows)),
        "parity_texts": len(parity_rows),
        "corpus_texts": len(rows),
        "flops_per_sequence": flops,
        "mean_tokens": float(np.mean(lengths)),
        "auto": auto,
        "gemm_gflops": gemm,
        "gemm_notes": gemm_notes,
        "variants": variants,
        "not_measured": not_measured,
    }
    if recipes:
        out: dict[str, Any] = {
            "budget": budget,
            "texts": len(parity_rows),
            "fp32": {"rate": rates["fp32"], "fp32_matmuls": _matmuls(folder / fp32_variant.file)},
        }
        for name, recipe in recipes.items():
            key = "int8" if name == SHIPPED_SPLIT else name
            out[name] = {**recipe, "rate": rates[key], **parity[key]}
            log(f"int8 recipe {name}: {out[name]}")
        results["int8_recipes"] = out
