"""The int8 recipe: speed against parity, for the shipped recipe and for all MatMuls in int8.

The shipped int8 model keeps the six FFN down-projections in fp32 (export/quantize.py); this
quantizes the fp32 graph again with every MatMul in int8, into a temporary folder, and runs
each graph on the corpus as the server would: length-sorted batches under the CPU token
budget. Parity is the cosine of each text's embedding, computed in those batches (dynamic
activation scales span a batch), against the fp32 graph's one text at a time; the export's
parity sentences join the corpus, since the shortest inputs ("OK.") are the weakest.
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


def _matmuls(path: Path) -> int:
    graph = onnx.load(str(path), load_external_data=False).graph
    return sum(node.op_type == "MatMul" for node in graph.node)


def _embeddings(
    encoder: eng.OrtEncoder, batches: Sequence[Sequence[int]], rows: Sequence[np.ndarray]
) -> np.ndarray:
    """Mean-pooled, normalised embeddings of `rows`, run in `batches` (lists of indices)."""
    vectors = np.zeros((len(rows), encoder.session.get_outputs()[0].shape[-1]), np.float32)
    for batch in batches:
        states = encoder.run_padded([rows[i] for i in batch])[0]
        for k, i in enumerate(batch):
            mean = states[k, : len(rows[i])].mean(axis=0)
            vectors[i] = mean / np.linalg.norm(mean)
    return vectors


def int8_section(
    results: dict[str, Any],
    models: Path,
    rows: list[np.ndarray],
    tokenize: Callable[[list[str]], list[np.ndarray]],
    threads: int,
    budget: int,
    log: Callable[[str], None],
) -> None:
    fp32_path = models / "minilm" / "model.onnx"
    fp32 = eng.OrtEncoder(fp32_path, threads)
    parity_rows = [*tokenize(list(SENTENCES)), *rows]
    reference = _embeddings(fp32, [[i] for i in range(len(parity_rows))], parity_rows)
    parity_batches = eng.sorted_index_batches(parity_rows, budget)
    timed = eng.sorted_budget_batches(rows[:768], budget)
    out: dict[str, Any] = {
        "budget": budget,
        "texts": len(parity_rows),
        "fp32": {"rate": eng.schedule_rate(fp32, timed), "fp32_matmuls": _matmuls(fp32_path)},
    }
    with tempfile.TemporaryDirectory() as tmp:
        all_int8 = Path(tmp) / "model.onnx"
        all_kept = quantize_int8(fp32_path, all_int8, keep_ffn_down_fp32=False).fp32_matmuls
        shipped = models / "minilm-int8"
        record = model_format.read_record(shipped)
        assert isinstance(record, model_format.EncoderManifest) and record.quantization
        shipped_kept = record.quantization.fp32_matmuls
        recipes = {
            "shipped (FFN down-projections fp32)": (
                shipped / "model.onnx",
                shipped_kept,
            ),
            "all MatMuls int8": (all_int8, all_kept),
        }
        for name, (path, kept) in recipes.items():
            encoder = eng.OrtEncoder(path, threads)
            vectors = _embeddings(encoder, parity_batches, parity_rows)
            cosines = (vectors * reference).sum(axis=1)
            out[name] = {
                "rate": eng.schedule_rate(encoder, timed),
                "fp32_matmuls": kept,
                "mean_cosine": float(cosines.mean()),
                "min_cosine": float(cosines.min()),
                "below_0_99": float((cosines < 0.99).mean()),
            }
            log(f"int8 recipe {name}: {out[name]}")
    results["int8_recipes"] = out
