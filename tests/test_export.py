"""The exporter (export/): the built default models, a tiny model end to end, and bad inputs."""

import hashlib
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from harness.minilm import minilm_source

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports transformers

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"

# The keys the server reads; spelled out here (not imported) so that a rename shows up as a
# failure rather than silently changing the contract.
MANIFEST_KEYS = [
    "format_version",
    "name",
    "export_task",
    "tasks",
    "architecture",
    "model_type",
    "precision",
    "files",
    "sha256",
    "max_sequence_length",
    "hidden_size",
    "num_layers",
    "num_heads",
    "pooling",
    "normalize",
    "inputs",
    "outputs",
    "opset",
    "fused_ops",
    "unfused_ops",
    "fully_fused",
    "parity",
    "quantization",
    "variants",
    "skipped_variants",
    "explain",
    "source",
    "versions",
    "created",
]
PARITY_KEYS = {
    "reference",
    "sentences",
    "max_abs_diff",
    "min_cosine",
    "mean_cosine",
    "max_abs_diff_limit",
    "min_cosine_limit",
    "mean_cosine_limit",
    "identical_answers",
    "passed",
}
# Different lengths from the export's dummy input (2 × 16), and a batch size of 3.
SENTENCES = [
    "A cat.",
    "The weather in Lisbon was sunny and warm all week long.",
    "Exporting to ONNX with dynamic axes lets one graph serve any batch size and any "
    "sequence length up to the model's limit, which this sentence checks.",
]


def run_export(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "export", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def built_model(name: str) -> tuple[Path, dict[str, Any]]:
    directory = MODELS / name
    if not (directory / "model.yaml").is_file():
        pytest.skip(f"models/{name} is not built (run `make models`)")
    return directory, yaml.safe_load((directory / "model.yaml").read_text())


def op_counts(path: Path) -> Counter[tuple[str, str]]:
    import onnx

    graph = onnx.load(str(path)).graph
    return Counter((node.domain, node.op_type) for node in graph.node)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tokenize(tokenizer_path: Path, input_names: list[str]) -> dict[str, np.ndarray]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.no_padding()
    encodings = tokenizer.encode_batch(SENTENCES)
    width = max(len(encoding.ids) for encoding in encodings)
    feeds = {name: np.zeros((len(encodings), width), dtype=np.int64) for name in input_names}
    for row, encoding in enumerate(encodings):
        feeds["input_ids"][row, : len(encoding.ids)] = encoding.ids
        feeds["attention_mask"][row, : len(encoding.ids)] = 1
    return feeds


def mean_pooled(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float64)
    return (hidden * weights).sum(axis=1) / weights.sum(axis=1)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# --- the default models, built by `make models` ---


@pytest.mark.slow
def test_minilm_is_fully_fused() -> None:
    directory, manifest = built_model("minilm")
    counts = op_counts(directory / "model.onnx")
    assert counts[("com.microsoft", "Attention")] == 6
    assert counts[("", "Softmax")] == 0
    assert manifest["fused_ops"]["Attention"] == 6
    assert manifest["unfused_ops"]["Softmax"] == 0
    assert manifest["fully_fused"] is True


@pytest.mark.slow
def test_minilm_manifest() -> None:
    directory, manifest = built_model("minilm")
    assert list(manifest) == MANIFEST_KEYS
    assert set(manifest["parity"]) == PARITY_KEYS
    assert manifest["precision"] == "fp32"
    assert manifest["tasks"] == ["embed", "summarize", "answer"]
    assert (manifest["hidden_size"], manifest["num_layers"], manifest["num_heads"]) == (384, 6, 12)
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["outputs"] == ["last_hidden_state"]
    assert (manifest["pooling"], manifest["normalize"]) == ("mean", True)
    assert manifest["max_sequence_length"] == 256
    parity = manifest["parity"]
    assert parity["passed"] is True
    assert parity["sentences"] >= 16
    assert parity["max_abs_diff"] <= 1e-4
    assert parity["min_cosine"] >= 0.9999
    for file_name, digest in manifest["sha256"].items():
        assert sha256(directory / file_name) == digest, file_name


@pytest.mark.slow
def test_minilm_dynamic_axes_match_transformers() -> None:
    import onnxruntime as ort
    import torch
    from transformers import AutoModel

    directory, manifest = built_model("minilm")
    feeds = tokenize(directory / "tokenizer.json", manifest["inputs"])
    assert feeds["input_ids"].shape[0] == 3
    assert feeds["input_ids"].shape[1] not in (16,)  # not the export's dummy length

    session = ort.InferenceSession(
        str(directory / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    (hidden,) = session.run(None, feeds)
    assert hidden.shape == (*feeds["input_ids"].shape, 384)

    model = AutoModel.from_pretrained(str(minilm_source()), local_files_only=True).eval()
    with torch.inference_mode():
        expected = model(**{name: torch.from_numpy(array) for name, array in feeds.items()})
    reference = expected.last_hidden_state.numpy()

    mask = feeds["attention_mask"]
    similarity = cosines(mean_pooled(hidden, mask), mean_pooled(reference, mask))
    assert similarity.min() >= 0.9999, similarity


@pytest.mark.slow
def test_minilm_variants_hold_their_floors() -> None:
    directory, manifest = built_model("minilm")
    variants, skipped = manifest["variants"], manifest["skipped_variants"]
    assert {"fp32", "fp16", "int8"} <= set(variants)
    assert set(variants) | set(skipped) == {"fp32", "bf16", "fp16", "int8"}
    assert variants["fp32"]["file"] == "model.onnx"
    assert variants["fp32"]["parity"] == manifest["parity"]
    for precision, floor in (("fp16", 0.9999), ("bf16", 0.9999), ("int8", 0.99)):
        if precision not in variants:
            assert skipped[precision].startswith("not measurable here"), skipped
            continue
        parity = variants[precision]["parity"]
        assert parity["passed"] is True and parity["min_cosine"] >= floor, precision
        assert parity["min_cosine_limit"] == floor
        file = variants[precision]["file"]
        assert sha256(directory / file) == manifest["sha256"][file]
        # Attention stays one fused op in every variant (QAttention once quantized).
        assert (
            variants[precision]["fused_ops"].get(
                "QAttention" if precision == "int8" else "Attention"
            )
            == 6
        ), precision
    counts = op_counts(directory / variants["fp16"]["file"])
    assert counts[("com.microsoft", "Attention")] == 6 and counts[("", "Softmax")] == 0
    assert variants["int8"]["fp32_rows_up_to"] > 0


@pytest.mark.slow
def test_minilm_int8() -> None:
    directory, manifest = built_model("minilm-int8")
    assert manifest["precision"] == "int8"
    assert list(manifest) == MANIFEST_KEYS
    int8 = manifest["variants"]["int8"]
    assert manifest["parity"] == int8["parity"] and manifest["quantization"] == int8["quantization"]
    assert int8["parity"]["passed"] is True
    assert int8["parity"]["min_cosine"] >= 0.99  # every sentence, batched and alone
    counts = op_counts(directory / int8["file"])
    assert counts[("com.microsoft", "QAttention")] == 6
    assert counts[("", "Softmax")] == 0
    assert op_counts(directory / "model.onnx")[("com.microsoft", "Attention")] == 6


# --- a tiny random BERT, end to end through the CLI ---


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    source = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,  # the minilm tokenizer's vocabulary
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(source)
    shutil.copyfile(minilm_source() / "tokenizer.json", source / "tokenizer.json")
    return source


def test_tiny_bert_exports(tiny_bert: Path, tmp_path: Path) -> None:
    out = tmp_path / "models" / "tiny"
    result = run_export(tiny_bert, "--task", "feature-extraction", "--out", out)
    assert result.returncode == 0, result.stderr
    progress = [line for line in result.stderr.splitlines() if line.startswith("[")]
    assert [line.split("]")[0] for line in progress] == [f"[{i}/7" for i in range(1, 8)]

    manifest = yaml.safe_load((out / "model.yaml").read_text())
    graphs = {v["file"] for v in manifest["variants"].values()}
    assert manifest["explain"]["passed"]  # attention probabilities within 1e-5
    assert sorted(path.name for path in out.iterdir()) == sorted(
        {"config.json", "model.yaml", "tokenizer.json", "explain.onnx", *graphs}
    )
    assert "model.fp16.onnx" in graphs
    assert list(manifest) == MANIFEST_KEYS
    assert manifest["name"] == "tiny"
    assert manifest["num_layers"] == 2
    assert manifest["fused_ops"]["Attention"] == 2
    assert manifest["parity"]["passed"] is True
    assert manifest["quantization"] is None
    assert manifest["max_sequence_length"] == 128  # no sentence-transformers files: positions
    assert op_counts(out / "model.onnx")[("com.microsoft", "Attention")] == 2
    assert (out / "tokenizer.json").read_bytes() == (tiny_bert / "tokenizer.json").read_bytes()

    # A second export, int8 this time, replaces the folder and leaves no staging folder behind.
    result = run_export(
        tiny_bert, "--task", "feature-extraction", "--out", out, "--int8", "--name", "t8"
    )
    assert result.returncode == 0, result.stderr
    manifest = yaml.safe_load((out / "model.yaml").read_text())
    assert (manifest["name"], manifest["precision"]) == ("t8", "int8")
    assert [path.name for path in out.parent.iterdir()] == ["tiny"]


# --- bad inputs: one line, no traceback, a nonzero exit ---


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_source(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    result = run_export(missing, "--task", "feature-extraction", "--out", tmp_path / "out")
    assert_one_line_error(result, str(missing), "not found")
    assert not (tmp_path / "out").exists()


def test_task_not_supported_yet(tiny_bert: Path, tmp_path: Path) -> None:
    result = run_export(
        tiny_bert, "--task", "question-answering", "--int8", "--out", tmp_path / "out"
    )
    assert result.returncode == 2
    assert_one_line_error(result, "--int8", "question-answering", "not supported")


def test_folder_without_config(tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.mkdir()
    result = run_export(source, "--task", "feature-extraction", "--out", tmp_path / "out")
    assert_one_line_error(result, "config.json", str(source))


def test_unsupported_architecture(tiny_bert: Path, tmp_path: Path) -> None:
    source = tmp_path / "gpt2"
    source.mkdir()
    (source / "config.json").write_text('{"model_type": "gpt2", "architectures": ["GPT2Model"]}')
    shutil.copyfile(tiny_bert / "tokenizer.json", source / "tokenizer.json")
    result = run_export(source, "--task", "feature-extraction", "--out", tmp_path / "out")
    assert_one_line_error(result, "GPT2Model", "not supported")
    assert not (tmp_path / "out").exists()


def test_a_variant_below_its_floor_is_left_out(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from export import variants
    from export.errors import ExportError
    from export.feature_extraction import export
    from export.source import open_source

    # A floor no int8 recipe reaches: the variant is made, measured, judged and dropped.
    monkeypatch.setitem(variants.FLOORS, "int8", 0.99999999)
    out = tmp_path / "strict"
    export(open_source(tiny_bert), out, name="strict", opset=14, int8=False,
           allow_unfused=False)  # fmt: skip
    manifest = yaml.safe_load((out / "model.yaml").read_text())
    assert "int8" not in manifest["variants"] and not (out / "model.int8.onnx").exists()
    reason = manifest["skipped_variants"]["int8"]
    assert reason.startswith("below its floor: min cosine") and "(floor 1)" in reason
    assert "fp16" in manifest["variants"]  # the others are kept

    # Asked for with --int8, the same miss fails the export and leaves no folder.
    with pytest.raises(ExportError, match="int8 variant not written: below its floor"):
        export(open_source(tiny_bert), tmp_path / "asked", name="asked", opset=14,
               int8=True, allow_unfused=False)  # fmt: skip
    assert not (tmp_path / "asked").exists()
