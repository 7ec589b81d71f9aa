"""Does bf16 through onnxruntime's OpenVINO provider pay on this CPU? (groundwork for issue 12)

onnxruntime-openvino replaces onnxruntime, so the two sides run in two venvs, interleaved:

    python -m venv /tmp/probe-ov && /tmp/probe-ov/bin/pip install onnxruntime-openvino==1.24.1 \\
        openvino==2025.4.1 tokenizers numpy
    for r in 1 2 3; do
        .venv/bin/python -m scripts.precision_probe cpu --round $r
        /tmp/probe-ov/bin/python -m scripts.precision_probe openvino --round $r
    done
    .venv/bin/python -m scripts.precision_probe report

(from the repository root: the batches are bench's own length-sorted budget cut).

Each run embeds the corpus's first 512 texts in length-sorted batches under a 512-token
budget, 2 threads, one warm-up pass and three timed passes (the OpenVINO configurations
interleaved pass by pass), and writes its figures and embeddings to build/precision-probe/.
`openvino` also records what OpenVINO says the CPU can do and which precision a compiled
model really runs in: onnxruntime-openvino accepts any precision hint without a word, so a
run that succeeds proves nothing (docs/precision.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from bench.engine import sorted_index_batches

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "minilm"
CORPUS = ROOT / "service" / "loadtest" / "corpus.txt"
OUT = ROOT / "build" / "precision-probe"
TEXTS, BUDGET, MAX_LENGTH, THREADS, PASSES = 512, 512, 256, 2, 3
# The OpenVINO configurations: the INFERENCE_PRECISION_HINT each passes (None: its default).
HINTS = {"openvino-default": None, "openvino-bf16": "bf16", "openvino-f32": "f32"}
Batch = tuple[np.ndarray, dict[str, np.ndarray]]


def batches() -> list[Batch]:
    texts = [line for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    tokenizer = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_LENGTH)
    encodings = tokenizer.encode_batch(texts[:TEXTS])
    out = []
    for group in sorted_index_batches([np.array(e.ids) for e in encodings], BUDGET):
        length = max(len(encodings[i].ids) for i in group)
        names = ("input_ids", "attention_mask", "token_type_ids")
        feeds = {n: np.zeros((len(group), length), np.int64) for n in names}
        for row, i in enumerate(group):
            e = encodings[i]
            feeds["input_ids"][row, : len(e.ids)] = e.ids
            feeds["attention_mask"][row, : len(e.ids)] = e.attention_mask
            feeds["token_type_ids"][row, : len(e.ids)] = e.type_ids
        out.append((np.array(group), feeds))
    return out


def embed(session: ort.InferenceSession, work: list[Batch]) -> np.ndarray:
    vectors = np.zeros((TEXTS, 384), np.float32)
    for rows, feeds in work:
        hidden = session.run(["last_hidden_state"], feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        vectors[rows] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    return vectors


def session(hint: str | None, openvino: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    path = str(MODEL / "model.onnx")
    if not openvino:
        return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    provider: dict[str, str] = {"device_type": "CPU", "num_of_threads": str(THREADS)}
    if hint:  # a JSON string, not a path; its `precision` option takes only FP32 on CPU
        provider["load_config"] = json.dumps({"CPU": {"INFERENCE_PRECISION_HINT": hint}})
    providers = [("OpenVINOExecutionProvider", provider), "CPUExecutionProvider"]
    made = ort.InferenceSession(path, options, providers=providers)
    if made.get_providers()[0] != "OpenVINOExecutionProvider":  # onnxruntime falls back silently
        raise SystemExit(f"the OpenVINO provider did not load: {made.get_providers()}")
    return made


def openvino_says() -> dict[str, Any]:
    """What OpenVINO itself reports: the CPU's capabilities and the precision each hint
    really compiles to. Run in a process of its own: the openvino package and
    onnxruntime-openvino's bundled OpenVINO cannot be loaded in one process."""
    import openvino

    core = openvino.Core()
    model = core.read_model(str(MODEL / "model.onnx"))
    compiled = {}
    for name, hint in HINTS.items():
        config: dict[str, Any] = {"INFERENCE_NUM_THREADS": THREADS}
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        runs = core.compile_model(model, "CPU", config)
        compiled[name] = str(runs.get_property("INFERENCE_PRECISION_HINT"))
    return {
        "device": core.get_property("CPU", "FULL_DEVICE_NAME"),
        "capabilities": list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")),
        "compiled_precision": compiled,
        "openvino": openvino.__version__,
    }


def measure(side: str, round_: int) -> None:
    work = batches()
    names = ["cpu"] if side == "cpu" else list(HINTS)
    sessions = {n: session(HINTS.get(n), side == "openvino") for n in names}
    seconds: dict[str, list[float]] = {n: [] for n in names}
    vectors = {n: embed(s, work) for n, s in sessions.items()}  # the warm-up pass
    for _ in range(PASSES):
        for name, s in sessions.items():  # interleaved, so drift falls on all alike
            started = time.perf_counter()
            vectors[name] = embed(s, work)
            seconds[name].append(time.perf_counter() - started)
    OUT.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    if side == "openvino":
        asked = [sys.executable, "-m", "scripts.precision_probe", "capabilities"]
        done = subprocess.run(asked, cwd=ROOT, capture_output=True, check=True)
        extra = json.loads(done.stdout)
    for name in names:
        figures = {
            "rate": PASSES * TEXTS / sum(seconds[name]),
            "providers": sessions[name].get_providers(),
            "onnxruntime": ort.__version__,
            **extra,
        }
        (OUT / f"{name}-r{round_}.json").write_text(json.dumps(figures, indent=1))
        np.save(OUT / f"{name}-r{round_}.npy", vectors[name])
        print(f"{name} round {round_}: {figures['rate']:.1f} sequences/s")


def report() -> None:
    rounds = sorted(int(p.stem.split("-r")[-1]) for p in OUT.glob("cpu-r*.json"))
    for name in ["cpu", *HINTS]:
        rates, ratios, cosines = [], [], []
        for r in rounds:
            figures = json.loads((OUT / f"{name}-r{r}.json").read_text())
            base = json.loads((OUT / f"cpu-r{r}.json").read_text())["rate"]
            rates.append(figures["rate"])
            ratios.append(figures["rate"] / base)
            reference = np.load(OUT / f"cpu-r{r}.npy")
            cosines.append((np.load(OUT / f"{name}-r{r}.npy") * reference).sum(1))
        cos = np.concatenate(cosines)
        print(
            f"| {name} | {', '.join(f'{x:.1f}' for x in rates)} | {statistics.median(rates):.1f} "
            f"| {statistics.median(ratios):.2f}x | {cos.min():.6f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["cpu", "openvino", "capabilities", "report"])
    parser.add_argument("--round", type=int, default=1)
    args = parser.parse_args()
    if args.side == "report":
        report()
    elif args.side == "capabilities":
        print(json.dumps(openvino_says()))
    else:
        measure(args.side, args.round)


if __name__ == "__main__":
    main()
