"""CTranslate2 4.8.5 beside attnserve on the bench's random t5-small-shaped model.

CTranslate2's converter needs transformers 4.x (on 5.x it fails for BART and leaves T5's
eos_token null), so it runs in a side venv, build/ct2-venv (CTranslate2, transformers
4.57.6, the CPU torch 2.13.0), made on first use from the package registry. The source
folder is converted there twice, to fp32 and to int8, the converted config is checked (its
eos_token set), and `ctranslate2.Translator.translate_batch` generates exactly the bench's
new tokens per request (greedy, min = max decoding length), one request at a time and the
16 as one batch, on the same threads. bench/ct2_run.py is the side venv's half.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "build" / "ct2-venv"
PINS = ("ctranslate2==4.8.5", "transformers==4.57.6", "torch==2.13.0")


def _python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True)
    return python


def convert(source: Path, out: Path, quantization: str | None) -> Path:
    """`ct2-transformers-converter` on a copy of `source` whose tokenizer_config names the
    class transformers 4 knows (5.x writes its own TokenizersBackend)."""
    python = _python()
    staged = out.with_name(out.name + "-src")
    shutil.copytree(source, staged, dirs_exist_ok=True)
    config_path = staged / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config))
    command = [str(VENV / "bin" / "ct2-transformers-converter"), "--model", str(staged),
               "--output_dir", str(out), "--force",
               *(["--quantization", quantization] if quantization else [])]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, cwd=python.parent)
    converted = json.loads((out / "config.json").read_text())
    if not converted.get("eos_token"):
        raise RuntimeError(f"CTranslate2's converter left eos_token unset in {out}")
    return out


def measure(
    source: Path, work: Path, texts: list[str], new_tokens: int, threads: int
) -> dict[str, dict[str, float]]:
    """{"fp32": {...}, "int8": {...}}: tokens/s one at a time and as one batch."""
    models = {
        "fp32": convert(source, work / "ct2-fp32", None),
        "int8": convert(source, work / "ct2-int8", "int8"),
    }
    request = {"models": {k: str(v) for k, v in models.items()}, "texts": texts,
               "tokenizer": str(source / "tokenizer.json"), "new_tokens": new_tokens,
               "threads": threads}  # fmt: skip
    done = subprocess.run(
        [str(_python()), str(ROOT / "bench" / "ct2_run.py")],
        input=json.dumps(request), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
