"""CTranslate2 4.8.5 beside attnserve on the bench's random t5-small- and bart-base-shaped
models.

CTranslate2's converter needs transformers 4.x (on 5.x it fails for BART and leaves T5's
eos_token null), so it runs in a side venv, build/ct2-venv (CTranslate2, transformers
4.57.6, the CPU torch 2.13.0), made on first use from the package registry. The source
folder is staged for transformers 4 (see `_stage`), converted there twice, to fp32 and to
int8, the converted config and vocabulary are checked against the source's, and
`ctranslate2.Translator.translate_batch` generates exactly the bench's new tokens per
request (greedy, min = max decoding length; every hypothesis' length is checked), one
request at a time and the 16 as one batch, on the same threads, streaming each step to a
callback for the time to first token. bench/ct2_run.py is the side venv's half.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "build" / "ct2-venv"
PINS = ("ctranslate2==4.8.5", "transformers==4.57.6", "torch==2.13.0")


def _python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
    return python


def _stage(source: Path, staged: Path) -> dict[str, Any]:
    """A copy of `source` that transformers 4.57.6 and CTranslate2's loaders read as they
    would a hub checkpoint; the weights are linked, not copied (bart-base's are 0.5 GB).
    Returns the source's config.json.

    - tokenizer_config.json names the class transformers 4 knows (5.x writes its own
      TokenizersBackend).
    - BART: config.json gets `normalize_before: false` (BART is post-norm; hub configs carry
      the key, transformers 5 no longer writes it and CTranslate2's BART loader reads it),
      and tokenizer.json's vocabulary is padded with unused tokens up to vocab_size:
      CTranslate2 takes the vocabulary from the tokenizer and requires one token per
      embedding row (its T5 loader pads with <extra_id_N> itself; its BART loader does not).
      The padding comes after every real id, so ids and token strings agree with attnserve's.
    """
    staged.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        target = staged / path.name
        if not target.exists():
            target.symlink_to(path.resolve())
    config: dict[str, Any] = json.loads((source / "config.json").read_text())

    def rewrite(name: str, change: Any) -> None:
        data = json.loads((source / name).read_text())
        change(data)
        (staged / name).unlink()
        (staged / name).write_text(json.dumps(data))

    rewrite("tokenizer_config.json", lambda c: c.update(tokenizer_class="PreTrainedTokenizerFast"))
    if config["model_type"] == "bart":
        rewrite("config.json", lambda c: c.setdefault("normalize_before", False))

        def pad(tokenizer: dict[str, Any]) -> None:
            vocab = tokenizer["model"]["vocab"]  # WordLevel: token -> id
            for i in range(len(vocab), config["vocab_size"]):
                vocab[f"<unused_{i}>"] = i

        rewrite("tokenizer.json", pad)
    return config


def _check(source: Path, converted: Path, config: dict[str, Any]) -> None:
    """The converted model's special tokens and vocabulary, against the source's: a wrong
    decoder start or eos would make CTranslate2 generate something else than attnserve."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    generation = json.loads((source / "generation_config.json").read_text())
    eos = generation["eos_token_id"]
    expected = {
        "decoder_start_token": tokenizer.id_to_token(generation["decoder_start_token_id"]),
        "eos_token": tokenizer.id_to_token(eos if isinstance(eos, int) else eos[0]),
    }
    got = json.loads((converted / "config.json").read_text())
    wrong = {k: got.get(k) for k, v in expected.items() if got.get(k) != v}
    vocabulary = json.loads((converted / "shared_vocabulary.json").read_text())
    real = [tokenizer.id_to_token(i) for i in range(tokenizer.get_vocab_size())]
    if len(vocabulary) != config["vocab_size"] or vocabulary[: len(real)] != real:
        wrong["vocabulary"] = f"{len(vocabulary)} tokens, not the source's {config['vocab_size']}"
    if wrong:
        raise RuntimeError(f"CTranslate2's converted {converted}: {wrong}, expected {expected}")


def convert(source: Path, staged: Path, out: Path, quantization: str | None) -> Path:
    """`ct2-transformers-converter` on the staged copy of `source`, its output checked."""
    python = _python()
    config = _stage(source, staged)
    command = [str(VENV / "bin" / "ct2-transformers-converter"), "--model", str(staged),
               "--output_dir", str(out), "--force",
               *(["--quantization", quantization] if quantization else [])]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=python.parent)
    if done.returncode:
        raise RuntimeError(f"ct2-transformers-converter failed on {source}:\n{done.stderr}")
    _check(source, out, config)
    return out


def measure(
    source: Path, work: Path, texts: list[str], new_tokens: int, threads: int
) -> dict[str, dict[str, Any]]:
    """{"fp32": {...}, "int8": {...}}: tokens/s and time to first token, one request at a
    time and as one batch (bench/ct2_run.py)."""
    staged = work / "ct2-src"
    models = {
        "fp32": convert(source, staged, work / "ct2-fp32", None),
        "int8": convert(source, staged, work / "ct2-int8", "int8"),
    }
    request = {"models": {k: str(v) for k, v in models.items()}, "texts": texts,
               "tokenizer": str(source / "tokenizer.json"), "new_tokens": new_tokens,
               "threads": threads}  # fmt: skip
    return run_side("ct2_run.py", request)


def one_at_a_time(
    source: Path, work: Path, texts: list[str], new_tokens: int, threads: int
) -> float:
    """CTranslate2 fp32's tokens/s, the texts one at a time, on the model `measure` converted
    into `work` (a paired round of bench/paired.py)."""
    request = {"models": {"fp32": str(work / "ct2-fp32")}, "texts": texts,
               "tokenizer": str(source / "tokenizer.json"), "new_tokens": new_tokens,
               "threads": threads, "one_at_a_time_only": True}  # fmt: skip
    return float(run_side("ct2_run.py", request)["fp32"]["one_at_a_time_tokens_per_s"])


def run_side(script: str, request: dict[str, Any]) -> Any:
    """bench/`script` in the side venv: `request` as JSON on stdin, its last line of stdout
    as JSON back."""
    done = subprocess.run(
        [str(_python()), str(ROOT / "bench" / script)],
        input=json.dumps(request), capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"bench/{script} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])
