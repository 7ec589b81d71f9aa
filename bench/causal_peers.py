"""Peers for decoder-only (causal LM) generation on the bench's random SmolLM2-135M- and GPT-2
small-shaped models (bench/causal_models.py): CTranslate2 4.8.5 and transformers' generate().

CTranslate2 converts in the side venv build/ct2-venv, as for seq2seq (bench/ctranslate2_peer.py):
the source folder is staged for transformers 4.57.6, converted to fp32 and to int8 (cached under
`work`), the converted config and vocabulary are checked against the source's, and so are its
logits: the fp32 model's, over the longest prompt, against PyTorch's from this venv (the staging
could otherwise change the model silently; see `_stage`). `ctranslate2.Generator.generate_batch`
then makes exactly the bench's new tokens per prompt (bench/ct2_generate_run.py, the side
venv's half), one prompt at a time and the 16 as one batch.

generate() runs here, in PyTorch on the same threads: greedy, min = max new tokens, one prompt
at a time and the 16 as one left-padded batch with its attention mask.

Both return, per system (CTranslate2: per compute type), generated tokens per second one at a
time and as a batch, and the median time to first token (TTFT) one at a time and in the batch.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from bench import ctranslate2_peer
from bench.seq2seq import generate_rates

ROOT = Path(__file__).resolve().parent.parent
# fp32 CTranslate2 against fp32 PyTorch: summation order only (a wrong RoPE base or a
# misplaced weight is off by tenths); the logits' std is about 0.5.
LOGITS_TOLERANCE = 1e-3


def _stage(source: Path, staged: Path) -> dict[str, Any]:
    """bench/ctranslate2_peer.py's staging (weights linked, tokenizer_config.json naming
    PreTrainedTokenizerFast), plus, for configs written by transformers 5, their RoPE
    parameters in transformers 4's keys: 5 writes `rope_parameters: {rope_theta, rope_type}`,
    which 4.57.6 keeps as an unknown attribute and then uses its default rope_theta, 10000 (not
    SmolLM2's 100000); CTranslate2's Llama loader reads that default without a word.
    Returns the source's config.json."""
    config = ctranslate2_peer._stage(source, staged)
    rope = config.get("rope_parameters")
    if rope:
        staged_config = dict(config, rope_theta=rope["rope_theta"])
        if rope.get("rope_type", "default") != "default":
            staged_config["rope_scaling"] = rope
        (staged / "config.json").unlink()
        (staged / "config.json").write_text(json.dumps(staged_config))
    return config


def _check(source: Path, converted: Path, config: dict[str, Any]) -> None:
    """The converted model's special tokens and vocabulary, against the source's: a wrong eos
    would make CTranslate2 stop elsewhere, a shifted vocabulary decode other tokens."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    named = json.loads((source / "tokenizer_config.json").read_text())
    expected = {k: named.get(k) for k in ("bos_token", "eos_token", "unk_token")}
    got = json.loads((converted / "config.json").read_text())
    wrong = {k: got.get(k) for k, v in expected.items() if got.get(k) != v}
    vocabulary = json.loads((converted / "vocabulary.json").read_text())
    real = [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
    if len(vocabulary) != config["vocab_size"] or vocabulary[: len(real)] != real:
        wrong["vocabulary"] = f"{len(vocabulary)} tokens, not the source's {config['vocab_size']}"
    if wrong:
        raise RuntimeError(f"CTranslate2's converted {converted}: {wrong}, expected {expected}")


def _convert(source: Path, staged: Path, out: Path, quantization: str | None) -> Path:
    """`ct2-transformers-converter` on the staged copy of `source`, once per `out`; its
    output checked every time."""
    python = ctranslate2_peer._python()
    config = _stage(source, staged)
    if not (out / "model.bin").exists():
        command = [str(ctranslate2_peer.VENV / "bin" / "ct2-transformers-converter"),
                   "--model", str(staged), "--output_dir", str(out), "--force",
                   *(["--quantization", quantization] if quantization else [])]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, cwd=python.parent)
        if done.returncode:
            raise RuntimeError(f"ct2-transformers-converter failed on {source}:\n{done.stderr}")
    _check(source, out, config)
    return out


def _reference_logits(source: Path, text: str) -> tuple[list[str], Any]:
    """The prompt's tokens and PyTorch's fp32 logits for them, [tokens, vocab]."""
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    encoding = Tokenizer.from_file(str(source / "tokenizer.json")).encode(text)
    model = AutoModelForCausalLM.from_pretrained(str(source)).eval()
    with torch.inference_mode():
        logits = model(torch.tensor([encoding.ids])).logits[0]
    return encoding.tokens, logits.numpy()


def ctranslate2_generate(
    source: Path, work: Path, prompts: list[str], new_tokens: int, threads: int
) -> dict[str, dict[str, float]]:
    """{"fp32": {...}, "int8": {...}}: tokens/s and TTFT, one prompt at a time and as one
    batch, plus "logits_max_abs_diff" against PyTorch over the longest prompt (fp32's is
    checked; int8's is informative)."""
    import numpy as np

    staged = work / "ct2-src"
    models = {
        "fp32": _convert(source, staged, work / "ct2-fp32", None),
        "int8": _convert(source, staged, work / "ct2-int8", "int8"),
    }
    tokens, reference = _reference_logits(source, max(prompts, key=len))
    logits_path = work / "ct2-logits.npz"
    check = {"tokens": tokens, "out": str(logits_path)}
    request = {"models": {k: str(v) for k, v in models.items()}, "prompts": prompts,
               "tokenizer": str(source / "tokenizer.json"), "new_tokens": new_tokens,
               "threads": threads, "check": check}  # fmt: skip
    figures: dict[str, dict[str, float]] = ctranslate2_peer.run_side("ct2_generate_run.py", request)
    with np.load(logits_path) as logits:
        for kind in figures:
            figures[kind]["logits_max_abs_diff"] = float(np.abs(logits[kind] - reference).max())
    if figures["fp32"]["logits_max_abs_diff"] > LOGITS_TOLERANCE:
        raise RuntimeError(f"CTranslate2's fp32 logits differ from PyTorch's: {figures}")
    return figures


def ctranslate2_one_at_a_time(
    source: Path, work: Path, prompts: list[str], new_tokens: int, threads: int
) -> float:
    """CTranslate2 fp32's tokens/s, the prompts one at a time, on the model
    `ctranslate2_generate` converted into `work` (a paired round of bench/paired.py)."""
    request = {"models": {"fp32": str(work / "ct2-fp32")}, "prompts": prompts,
               "tokenizer": str(source / "tokenizer.json"), "new_tokens": new_tokens,
               "threads": threads, "one_at_a_time_only": True}  # fmt: skip
    figures = ctranslate2_peer.run_side("ct2_generate_run.py", request)
    return float(figures["fp32"]["one_at_a_time_tokens_per_s"])


def generate_baseline(
    source: Path, prompts: list[str], new_tokens: int, threads: int
) -> dict[str, float]:
    """transformers' generate() in PyTorch, greedy, exactly `new_tokens` per prompt: one
    prompt at a time, and all as one left-padded batch (bench.seq2seq.generate_rates)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(str(source)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source), padding_side="left")
    # The output holds the (left-padded) prompts first.
    return generate_rates(
        model, tokenizer, prompts, new_tokens, lambda inputs: inputs["input_ids"].shape[1]
    )
