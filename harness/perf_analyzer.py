"""Triton's load tool `perf_analyzer`, run against our server as its users would run it.

The binary comes from the PyPI wheel tritonclient (not installed into .venv: it pins numpy<2);
`scripts/install_perf_analyzer.sh` puts it at build/perf-analyzer/bin/perf_analyzer with the
CUDA runtime it links against (libcudart.so.12, no GPU needed) in build/perf-analyzer/lib, and
Debian's libb64-0d on the system. `available()` says whether all of that is there.

    data = write_input_data(tmp / "text.json", {"TEXT": ["hello world"]})
    result = run("minilm.embed", "127.0.0.1:50051", "grpc", data, concurrency=2)
    result.throughput, result.p50_us, result.p99_us
"""

from __future__ import annotations

import csv
import ctypes
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
PREFIX = ROOT / "build" / "perf-analyzer"
BINARY = PREFIX / "bin" / "perf_analyzer"
LIB_DIR = PREFIX / "lib"
INSTALL_SCRIPT = ROOT / "scripts" / "install_perf_analyzer.sh"

# Column names of perf_analyzer 2.50's `-f` CSV (checked on a real run against our server).
THROUGHPUT_COLUMN = "Inferences/Second"
P50_COLUMN = "p50 latency"
P99_COLUMN = "p99 latency"
AVG_COLUMN = "Avg latency"  # only with --verbose-csv, which `command` passes
CONCURRENCY_COLUMN = "Concurrency"

Protocol = Literal["grpc", "http"]


class PerfAnalyzerError(RuntimeError):
    """perf_analyzer failed (or its CSV could not be read); `output` is all it printed."""

    def __init__(self, message: str, command: Sequence[str], returncode: int | None, output: str):
        self.command = list(command)
        self.returncode = returncode
        self.output = output
        super().__init__(
            f"{message}\ncommand: {' '.join(self.command)}\nexit status: {returncode}\n"
            f"--- perf_analyzer output ---\n{output}"
        )


@dataclass(frozen=True)
class PerfResult:
    """One measurement (one concurrency level) from perf_analyzer's latency report CSV."""

    throughput: float  # inferences per second (batch elements, not requests)
    p50_us: float  # client-side latency percentiles, microseconds
    p99_us: float
    avg_us: float | None  # None when the CSV has no "Avg latency" column
    concurrency: int
    row: Mapping[str, str] = field(repr=False)  # the whole CSV row, by column name
    output: str = field(repr=False)  # perf_analyzer's stdout and stderr


def environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment perf_analyzer needs: LIB_DIR first on LD_LIBRARY_PATH."""
    env = dict(os.environ if base is None else base)
    old = env.get("LD_LIBRARY_PATH")
    env["LD_LIBRARY_PATH"] = f"{LIB_DIR}:{old}" if old else str(LIB_DIR)
    return env


def available() -> bool:
    """Whether the binary, its libcudart.so.12 and the system's libb64.so.0d are all there."""
    if not (BINARY.is_file() and os.access(BINARY, os.X_OK)):
        return False
    if not (LIB_DIR / "libcudart.so.12").is_file():
        return False
    try:
        ctypes.CDLL("libb64.so.0d")
    except OSError:
        return False
    return True


def write_input_data(path: Path, inputs: dict[str, list[str]]) -> Path:
    """Write an `--input-data` JSON file for BYTES inputs, one string per request.

    `inputs` maps each input name to its strings; all lists have the same length, and
    request i carries string i of every input. For a model that declares the input with
    dims [1] and max_batch_size > 0 (the shape excludes the batch dimension), each step is
    `{"NAME": {"content": ["text"], "shape": [1]}}`; with `-b N` perf_analyzer puts N
    consecutive steps in one request, of shape [N, 1]. (The plain `{"NAME": ["text"]}` form
    works too for dims [1]; an input declared with no dims rejects both, the first with
    'The supplied shape of [1] ... is incompatible with the model's input shape of []'.)
    """
    if not inputs:
        raise ValueError("no inputs")
    lengths = {name: len(values) for name, values in inputs.items()}
    counts = set(lengths.values())
    if len(counts) != 1 or 0 in counts:
        raise ValueError(f"every input needs the same, non-zero number of strings: {lengths}")
    (count,) = counts
    steps = [
        {name: {"content": [values[i]], "shape": [1]} for name, values in inputs.items()}
        for i in range(count)
    ]
    return _write_json(path, {"data": steps})


def write_tensor_data(
    path: Path, steps: Sequence[Mapping[str, Sequence[int] | Sequence[float]]]
) -> Path:
    """Write an `--input-data` JSON file for numeric 1-D inputs (e.g. INT64 token ids).

    Each step is one request's row: input name -> its values; the shape written is
    [len(values)], so inputs with a dynamic dimension need no `--shape`.
    """
    if not steps:
        raise ValueError("no steps")
    data = [
        {name: {"content": list(values), "shape": [len(values)]} for name, values in step.items()}
        for step in steps
    ]
    return _write_json(path, {"data": data})


def write_token_data(
    path: Path, tokenizer_json: Path, sentences: Sequence[str], *, pad: bool = True
) -> Path:
    """Tokenize `sentences` with a Hugging Face tokenizer.json into `write_tensor_data` steps
    of `input_ids`, `attention_mask` and `token_type_ids` (INT64 for a bare BERT graph).

    With `pad` every row is padded to the longest one (attention_mask 0): perf_analyzer builds
    a `-b N` request from N consecutive steps and refuses to batch rows of different lengths.
    """
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_padding()
    encodings = tokenizer.encode_batch(list(sentences))
    width = max(len(e.ids) for e in encodings) if encodings else 0
    steps: list[dict[str, list[int]]] = []
    for e in encodings:
        fill = width - len(e.ids) if pad else 0
        steps.append(
            {
                "input_ids": [*e.ids, *[0] * fill],
                "attention_mask": [*e.attention_mask, *[0] * fill],
                "token_type_ids": [*e.type_ids, *[0] * fill],
            }
        )
    return write_tensor_data(path, steps)


def _write_json(path: Path, document: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def command(
    model: str,
    url: str,
    protocol: Protocol,
    input_data: Path,
    report: Path,
    *,
    concurrency: int = 1,
    batch_size: int = 1,
    measurement_ms: int = 3000,
    extra: Sequence[str] = (),
    model_version: str | None = None,
    stability_percentage: float | None = None,
) -> list[str]:
    """The perf_analyzer command line that `run` uses."""
    if protocol not in ("grpc", "http"):
        raise ValueError(f"protocol must be grpc or http, not {protocol!r}")
    return [
        str(BINARY),
        "-m", model,
        "-u", url,
        "-i", protocol,
        "--input-data", str(input_data),
        "-b", str(batch_size),
        "--concurrency-range", str(concurrency),
        "--measurement-interval", str(measurement_ms),
        "-f", str(report),
        "--verbose-csv",
        *(("-x", model_version) if model_version is not None else ()),
        *(("-s", f"{stability_percentage:g}") if stability_percentage is not None else ()),
        *extra,
    ]  # fmt: skip


def run(
    model: str,
    url: str,
    protocol: Protocol,
    input_data: Path,
    *,
    concurrency: int = 1,
    batch_size: int = 1,
    measurement_ms: int = 3000,
    extra: Sequence[str] = (),
    model_version: str | None = None,
    stability_percentage: float | None = None,
    timeout_s: float | None = None,
) -> PerfResult:
    """Run perf_analyzer once at one concurrency level and parse its latency report.

    `url` is HOST:PORT. perf_analyzer measures windows of `measurement_ms` until three in a
    row agree within its stability threshold (at most 10 windows by default; see `-s` and
    `--max-trials` in `extra`), else exits 2 with "Failed to obtain stable measurement"; on a
    2-core machine shared by client and server, `stability_percentage` (perf_analyzer's `-s`,
    default 10) of 30-50 lets it settle. The default timeout allows for all the windows.
    `model_version` None sends no `-x`, as a user would run it: perf_analyzer then picks the
    version whose ModelStatistics queue count grew during the measurement, and fails with
    "failed to find the requested model version" when none did.
    Raises PerfAnalyzerError, carrying perf_analyzer's whole output, when it fails.
    """
    if not available():
        raise FileNotFoundError(f"perf_analyzer is not installed at {BINARY}: run {INSTALL_SCRIPT}")
    if timeout_s is None:
        timeout_s = 60.0 + 12 * measurement_ms / 1000.0
    with tempfile.TemporaryDirectory(prefix="perf-analyzer-") as tmp:
        report = Path(tmp) / "report.csv"
        cmd = command(
            model, url, protocol, input_data, report,
            concurrency=concurrency, batch_size=batch_size,
            measurement_ms=measurement_ms, extra=extra, model_version=model_version,
            stability_percentage=stability_percentage,
        )  # fmt: skip
        try:
            done = subprocess.run(
                cmd,
                env=environment(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            out = e.output
            text = out.decode(errors="replace") if isinstance(out, bytes) else (out or "")
            raise PerfAnalyzerError(
                f"perf_analyzer timed out after {timeout_s}s", cmd, None, text
            ) from e
        output = done.stdout
        if done.returncode != 0:
            raise PerfAnalyzerError("perf_analyzer failed", cmd, done.returncode, output)
        if not report.is_file():
            raise PerfAnalyzerError("perf_analyzer wrote no CSV report", cmd, 0, output)
        return parse_report(report.read_text(), output, cmd)


def parse_report(text: str, output: str = "", cmd: Sequence[str] = ()) -> PerfResult:
    """The first row of a `-f` CSV report (one per concurrency level)."""
    rows = list(csv.DictReader(text.splitlines()))
    if not rows:
        raise PerfAnalyzerError(f"empty CSV report:\n{text}", cmd, 0, output)
    row = {k.strip(): v.strip() for k, v in rows[0].items() if k is not None}
    try:
        return PerfResult(
            throughput=float(row[THROUGHPUT_COLUMN]),
            p50_us=float(row[P50_COLUMN]),
            p99_us=float(row[P99_COLUMN]),
            avg_us=float(row[AVG_COLUMN]) if row.get(AVG_COLUMN) else None,
            concurrency=int(float(row[CONCURRENCY_COLUMN])),
            row=row,
            output=output,
        )
    except (KeyError, ValueError) as e:
        raise PerfAnalyzerError(f"unexpected CSV report ({e!r}):\n{text}", cmd, 0, output) from e
