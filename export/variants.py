"""The variants of a fused fp32 graph: each made, checked against PyTorch on the parity set,
and written only if it holds its floor. One builder and one VARIANTS entry per precision.

Floors (every row of the parity set, batched and alone): bf16 and fp16 a cosine of 0.9999
against PyTorch, the same as fp32 rounding is held to, and for span heads the same best
answer on every pair; int8 a cosine of 0.99. A variant that misses its floor, or that this
machine cannot measure, is left out, and model.yaml's `skipped_variants` says why.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

from export import fusion, parity
from export.quantize import INT8_FP32_ROWS_UP_TO, quantize_int8
from service.model_format import MODEL_FILE, Parity, Quantization, Variant, sha256_file
from service.runtime.machine import detect
from service.runtime.openvino_session import OpenVINOSession, PrecisionNotCompiled
from service.runtime.split import split_run

FLOORS = {"fp16": 0.9999, "bf16": 0.9999, "int8": 0.99}


@dataclass(frozen=True)
class ParityCheck:
    """What a variant is compared on: the parity batch, PyTorch's outputs for it, how a
    row's vector is pooled, and (span heads) whether two rows give the same answer."""

    batch: parity.Batch
    reference: np.ndarray
    pool: Callable[[np.ndarray], np.ndarray] = parity.mean_over_tokens
    same_answer: Callable[[np.ndarray, np.ndarray], bool] | None = None

    def run(self, graph: parity.Runner, floor: float) -> Parity:
        limits = parity.Limits(max_abs_diff=None, min_cosine=floor, mean_cosine=None)
        return parity.compare(
            graph, self.batch, self.reference, limits, self.pool, self.same_answer
        )


@dataclass(frozen=True)
class Made:
    """A variant built and measured, not yet judged against its floor."""

    file: str
    parity: Parity
    quantization: Quantization | None = None
    fp32_rows_up_to: int = 0
    note: str = ""


# (staging folder with the fp32 model.onnx, the check, the floor) -> Made, or why it cannot be.
Builder = Callable[[Path, ParityCheck, float], "Made | str"]


def _fp16(staging: Path, check: ParityCheck, floor: float) -> Made | str:
    # keep_io_types: the graph still takes int64 ids and returns fp32, so the server feeds
    # and reads it as it does fp32; only the weights and activations inside are fp16.
    graph = convert_float_to_float16(onnx.load(str(staging / MODEL_FILE)), keep_io_types=True)
    file = "model.fp16.onnx"
    onnx.save(graph, str(staging / file))
    result = check.run(parity.graph_runner(staging / file), floor)
    note = (
        "fp16 weights and activations, fp32 at the graph's edges; meant for CUDA and "
        "TensorRT. Its parity was measured on the CPU provider's fp16 kernels; "
        "`make gpu-check` measures it on a GPU"
    )
    return Made(file, result, note=note)


def _bf16(staging: Path, check: ParityCheck, floor: float) -> Made | str:
    machine = detect()
    if not machine.bf16_units:
        return (
            "not measurable here: this CPU has no bf16 units (avx512_bf16 or amx_bf16), and "
            "without them OpenVINO compiles fp32 under a bf16 hint; export on a CPU that has them"
        )
    if "openvino" not in machine.providers:
        return "not measurable here: the openvino package is not installed"
    try:
        session = OpenVINOSession(staging / MODEL_FILE, "bf16", os.cpu_count() or 1)
    except PrecisionNotCompiled as exc:
        return f"not measurable here: {exc}"

    def runner(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return session.run(None, feeds)

    note = (
        "the fp32 graph, compiled by OpenVINO's runtime with INFERENCE_PRECISION_HINT bf16; "
        "OpenVINO reads the fused ops (Attention, SkipLayerNormalization) and compiles them "
        "its own way"
    )
    return Made(MODEL_FILE, check.run(runner, floor), note=note)


def _int8(staging: Path, check: ParityCheck, floor: float) -> Made | str:
    file = "model.int8.onnx"
    quantization = quantize_int8(staging / MODEL_FILE, staging / file)
    up_to = INT8_FP32_ROWS_UP_TO
    int8, fp32 = (parity.graph_runner(staging / name) for name in (file, MODEL_FILE))

    def mixed(feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return split_run(feeds, up_to, fp32, int8)

    note = (
        "dynamic int8 (QAttention, DynamicQuantizeMatMul) on the CPU provider; rows of at "
        f"most {up_to} tokens run on the fp32 graph, where int8 cannot hold 0.99"
    )
    return Made(file, check.run(mixed, floor), quantization, up_to, note)


@dataclass(frozen=True)
class Entry:
    build: Builder
    runs_on: list[str]


VARIANTS: dict[str, Entry] = {
    "bf16": Entry(_bf16, ["openvino"]),
    "fp16": Entry(_fp16, ["tensorrt", "cuda"]),
    "int8": Entry(_int8, ["cpu"]),
}


def build(
    staging: Path,
    fp32: Parity,
    check: ParityCheck,
    precisions: list[str],
    floors: Mapping[str, float] = FLOORS,
) -> tuple[dict[str, Variant], dict[str, str]]:
    """The variants of staging/model.onnx (fp32, whose parity is `fp32`) among
    `precisions`, their files written beside it; and why each one left out was."""
    variants = {
        "fp32": Variant(
            file=MODEL_FILE,
            runs_on=["tensorrt", "cuda", "cpu"],
            parity=fp32,
            quantization=None,
            fused_ops=fusion.summarize_graph(staging / MODEL_FILE).fused,
            fp32_rows_up_to=0,
            note="the parity reference",
        )
    }
    skipped: dict[str, str] = {}
    for precision in precisions:
        entry, floor = VARIANTS[precision], floors[precision]
        made = entry.build(staging, check, floor)
        if isinstance(made, str):
            skipped[precision] = made
            continue
        if not made.parity.passed:
            if made.file != MODEL_FILE:
                (staging / made.file).unlink()
            skipped[precision] = f"below its floor: {describe(made.parity)}"
            continue
        variants[precision] = Variant(
            file=made.file,
            runs_on=entry.runs_on,
            parity=made.parity,
            quantization=made.quantization,
            fused_ops=fusion.summarize_graph(staging / made.file).fused,
            fp32_rows_up_to=made.fp32_rows_up_to,
            note=made.note,
        )
    return variants, skipped


def hashes(staging: Path, variants: Mapping[str, Variant]) -> dict[str, str]:
    """The sha256 of every variant's file, for model.yaml."""
    return {v.file: sha256_file(staging / v.file) for v in variants.values()}


def describe(result: Parity) -> str:
    text = (
        f"min cosine {result.min_cosine:.6f} (floor {result.min_cosine_limit:g}) on "
        f"{result.sentences} sentences, mean {result.mean_cosine:.6f}"
    )
    if result.identical_answers is not None:
        text += f", {result.identical_answers} of {result.sentences} answers identical"
    return text
