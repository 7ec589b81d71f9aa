"""service.model_format: write → read gives back what was written, for each model kind, and a
bad model.yaml is one ManifestError naming what is wrong. No torch, no model files needed."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service import model_format as mf
from tests.server_process import ROOT

PARITY = mf.Parity(
    reference="pytorch",
    sentences=16,
    max_abs_diff=3.7550926208496094e-06,
    min_cosine=0.9999999999989923,
    mean_cosine=0.9999999999996528,
    max_abs_diff_limit=0.0001,
    min_cosine_limit=0.9999,
    mean_cosine_limit=None,
    identical_answers=None,
    passed=True,
)
VERSIONS = {"torch": "2.13.0+cpu", "transformers": "5.23.0", "attnserve": "0.1.0"}
SOURCE = mf.Source(path="/src/model", config_sha256="ab" * 32)


def place_files(folder: Path, names: list[str]) -> dict[str, str]:
    """Write a small file for each name; their sha256, as model.yaml records them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(f"contents of {name}".encode())
    return {name: mf.sha256_file(folder / name) for name in names}


QUANTIZATION = mf.Quantization(
    method="dynamic", weight_type="QInt8", per_channel=True, fp32_matmuls=6
)


def variant(file: str, quantization: mf.Quantization | None = None) -> mf.Variant:
    return mf.Variant(
        file=file,
        runs_on=["cpu"],
        parity=PARITY,
        quantization=quantization,
        fused_ops={"Attention": 6},
        fp32_rows_up_to=0,
        note="",
    )


def encoder_record(folder: Path, **changes: Any) -> mf.EncoderManifest:
    files = {"model": mf.MODEL_FILE, "tokenizer": mf.TOKENIZER_FILE}
    record = mf.EncoderManifest(
        name="minilm",
        export_task=mf.FEATURE_EXTRACTION,
        tasks=list(mf.ENCODER_TASKS),
        architecture="BertModel",
        model_type="bert",
        precision="int8",
        files=files,
        sha256=place_files(folder, list(files.values())),
        max_sequence_length=256,
        hidden_size=384,
        num_layers=6,
        num_heads=12,
        pooling="mean",
        normalize=True,
        inputs=["input_ids", "attention_mask", "token_type_ids"],
        outputs=[mf.LAST_HIDDEN_STATE],
        opset=14,
        fused_ops={"Attention": 6, "EmbedLayerNormalization": 1},
        unfused_ops={"Softmax": 0},
        fully_fused=True,
        parity=PARITY,
        quantization=QUANTIZATION,
        variants={"int8": variant(mf.MODEL_FILE, QUANTIZATION)},
        skipped_variants={"bf16": "not measurable here"},
        explain=mf.ExplainGraph(
            file=mf.EXPLAIN_FILE,
            layers=6,
            heads=12,
            outputs=mf.attention_names(6),
            layout="batch, query, heads, key",
            max_abs_diff=2.1e-06,
            max_abs_diff_limit=1e-05,
            passed=True,
        ),
        source=SOURCE,
        versions=VERSIONS,
        created="2026-12-01T11:14:45Z",
    )
    return dataclasses.replace(record, **changes)


def span_record(folder: Path) -> mf.SpanManifest:
    base = encoder_record(
        folder, precision="fp32", quantization=None, variants={"fp32": variant(mf.MODEL_FILE)}
    )
    fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
    fields |= {"export_task": mf.SPAN_QA, "tasks": ["answer"], "pooling": "none"}
    fields |= {"normalize": False, "outputs": mf.SPAN_OUTPUTS, "max_sequence_length": 96}
    return mf.SpanManifest(
        **fields,
        question_answering=mf.SpanSettings(doc_stride=48, max_answer_length=15, cls_token_id=0),
        fusion_notes=["embedding layer norm not fused"],
    )


def seq2seq_parity(**limits: float | None) -> mf.Seq2SeqParity:
    return mf.Seq2SeqParity(
        reference="pytorch",
        sentences=8,
        steps=16,
        encoder_max_abs_diff=1.2e-06,
        decoder_max_abs_diff=2.3e-05,
        max_abs_diff_limit=limits.get("max_abs_diff_limit"),
        encoder_min_cosine=0.9999,
        decoder_min_cosine=0.9995,
        min_cosine_limit=limits.get("min_cosine_limit"),
        greedy_identical=8,
        passed=True,
    )


INT8_FILES = {"encoder": "encoder_model.int8.onnx", "decoder": "decoder_model.int8.onnx"}


def seq2seq_record(folder: Path) -> mf.Seq2SeqManifest:
    files = {
        "encoder": mf.ENCODER_FILE,
        "decoder": mf.DECODER_FILE,
        "tokenizer": mf.TOKENIZER_FILE,
    }
    quantization = mf.Quantization("dynamic, reduce_range", "int8", True, 0)
    return mf.Seq2SeqManifest(
        name="tiny-bart",
        export_task=mf.SUMMARIZATION,
        tasks=["summarize"],
        architecture="BartForConditionalGeneration",
        model_type="bart",
        precision="fp32",
        files=files,
        sha256=place_files(folder, [*files.values(), *INT8_FILES.values()]),
        max_sequence_length=128,
        max_decoder_length=128,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        d_kv=8,
        vocab_size=69,
        inputs=mf.ENCODER_INPUTS,
        decoder_inputs=mf.decoder_inputs(2),
        decoder_outputs=mf.decoder_outputs(2),
        encoder_outputs=mf.encoder_outputs(2),
        generation=mf.Generation(
            decoder_start_token_id=2,
            eos_token_ids=[2],
            pad_token_id=1,
            max_new_tokens=20,
            num_beams=4,
            length_penalty=1.0,
            early_stopping="never",
            no_repeat_ngram_size=3,
            min_length=0,
            forced_bos_token_id=0,
            forced_eos_token_id=None,
        ),
        opset=14,
        fused_ops={"encoder": {"MultiHeadAttention": 2}, "decoder": {"MultiHeadAttention": 4}},
        unfused_ops={"encoder": {"Softmax": 0}, "decoder": {"Softmax": 0}},
        fully_fused=True,
        parity=seq2seq_parity(max_abs_diff_limit=1e-4),
        variants={
            "fp32": mf.Seq2SeqVariant(
                files={"encoder": mf.ENCODER_FILE, "decoder": mf.DECODER_FILE},
                runs_on=["cuda", "cpu"],
                parity=seq2seq_parity(max_abs_diff_limit=1e-4),
                quantization=None,
            ),
            "int8": mf.Seq2SeqVariant(
                files=INT8_FILES,
                runs_on=["cpu"],
                parity=seq2seq_parity(min_cosine_limit=0.99),
                quantization=quantization,
            ),
        },
        skipped_variants={},
        explain=None,
        source=SOURCE,
        versions=VERSIONS,
        created="2026-12-01T11:14:45Z",
    )


def raw_manifest(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((folder / mf.MANIFEST_FILE).read_text())
    return loaded


def rewrite(folder: Path, raw: dict[str, Any]) -> None:
    (folder / mf.MANIFEST_FILE).write_text(yaml.safe_dump(raw))


def read_error(folder: Path) -> str:
    with pytest.raises(mf.ManifestError) as caught:
        mf.read(folder)
    return str(caught.value)


# --- write → read → equal ---


def test_encoder_round_trip(tmp_path: Path) -> None:
    record = encoder_record(tmp_path / "minilm")
    mf.write(tmp_path / "minilm", record)
    assert mf.read_record(tmp_path / "minilm") == record
    assert mf.read(tmp_path / "minilm") == mf.Manifest(
        name="minilm",
        export_task="feature-extraction",
        tasks=["embed", "summarize", "answer"],
        architecture="BertModel",
        precision="int8",
        model_file="model.onnx",
        tokenizer_file="tokenizer.json",
        sha256=record.sha256,
        max_sequence_length=256,
        hidden_size=384,
        pooling="mean",
        inputs=["input_ids", "attention_mask", "token_type_ids"],
        span=None,
        seq2seq=None,
        causal=None,
        variants={"int8": mf.VariantSpec("int8", "model.onnx", 0)},
        skipped_variants={"bf16": "not measurable here"},
        explain=mf.ExplainSpec("explain.onnx", 6, 12),
    )


def test_span_qa_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "qa"
    record = span_record(folder)
    mf.write(folder, record)
    assert mf.read_record(folder) == record
    manifest = mf.read(folder)
    assert manifest.name == "qa"  # the folder's, not the record's
    assert (manifest.export_task, manifest.tasks, manifest.pooling) == (
        "question-answering",
        ["answer"],
        "none",
    )
    assert manifest.span == mf.SpanSettings(doc_stride=48, max_answer_length=15, cls_token_id=0)
    assert manifest.seq2seq is None


def test_seq2seq_round_trip(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-bart"
    record = seq2seq_record(folder)
    mf.write(folder, record)
    assert mf.read_record(folder) == record
    manifest = mf.read(folder)
    assert manifest.model_file == "encoder_model.onnx"  # what KServe serves bare
    assert manifest.served_files == ["encoder_model.onnx", "tokenizer.json", "decoder_model.onnx"]
    assert manifest.span is None
    assert manifest.seq2seq == mf.Seq2SeqSpec(
        encoder_file="encoder_model.onnx",
        decoder_file="decoder_model.onnx",
        num_layers=2,
        num_heads=4,
        d_kv=8,
        vocab_size=69,
        max_decoder_length=128,
        decoder_start_token_id=2,
        eos_token_ids=(2,),
        pad_token_id=1,
        defaults=record.generation,
    )
    # The int8 variant swaps both graphs, and both are what the server then loads and hashes.
    int8 = manifest.running("int8")
    assert int8.seq2seq is not None and int8.model_file == INT8_FILES["encoder"]
    assert int8.seq2seq.decoder_file == INT8_FILES["decoder"]
    assert int8.served_files == [INT8_FILES["encoder"], "tokenizer.json", INT8_FILES["decoder"]]
    mf.check_files(folder, int8)


def test_layout_is_field_order_with_short_collections_inline(tmp_path: Path) -> None:
    record = encoder_record(tmp_path)
    mf.write(tmp_path, record)
    text = (tmp_path / mf.MANIFEST_FILE).read_text()
    assert list(raw_manifest(tmp_path)) == [f.name for f in dataclasses.fields(record)]
    lines = text.splitlines()
    assert lines[0] == "format_version: 1"
    assert "tasks: [embed, summarize, answer]" in lines
    assert "files: {model: model.onnx, tokenizer: tokenizer.json}" in lines
    assert "created: '2026-12-01T11:14:45Z'" in lines


def test_cache_names_are_graph_order() -> None:
    assert mf.cache_names(mf.PAST, 2) == [
        "past.0.key",
        "past.0.value",
        "past.1.key",
        "past.1.value",
    ]
    assert mf.decoder_inputs(1) == [
        "input_ids",
        "position_ids",
        "encoder_attention_mask",
        "past.0.key",
        "past.0.value",
        "cross.0.key",
        "cross.0.value",
    ]
    assert mf.decoder_outputs(1) == ["logits", "present.0.key", "present.0.value"]
    assert mf.encoder_outputs(1) == ["last_hidden_state", "cross.0.key", "cross.0.value"]


# --- bad input: one ManifestError with the message serving reports ---


def test_missing_key(tmp_path: Path) -> None:
    mf.write(tmp_path, encoder_record(tmp_path))
    raw = raw_manifest(tmp_path)
    del raw["hidden_size"]
    rewrite(tmp_path, raw)
    assert read_error(tmp_path) == "model.yaml is missing or has a bad value for 'hidden_size'"
    with pytest.raises(mf.ManifestError, match="bad value for 'hidden_size'"):
        mf.read_record(tmp_path)


def test_missing_nested_key_is_named_by_its_path(tmp_path: Path) -> None:
    mf.write(tmp_path, seq2seq_record(tmp_path))
    raw = raw_manifest(tmp_path)
    del raw["parity"]["steps"]
    rewrite(tmp_path, raw)
    mf.read(tmp_path)  # serving does not read parity
    with pytest.raises(mf.ManifestError, match=r"bad value for 'parity\.steps'"):
        mf.read_record(tmp_path)


def test_wrong_type_in_the_record(tmp_path: Path) -> None:
    mf.write(tmp_path, encoder_record(tmp_path))
    raw = raw_manifest(tmp_path)
    raw["fully_fused"] = 1  # a bool, not a number
    rewrite(tmp_path, raw)
    with pytest.raises(mf.ManifestError, match="bad value for 'fully_fused'"):
        mf.read_record(tmp_path)


def test_bad_task(tmp_path: Path) -> None:
    mf.write(tmp_path, encoder_record(tmp_path, tasks=["translate"]))
    assert read_error(tmp_path) == (
        "model.yaml lists tasks this server cannot serve: {'translate'}"
    )


def test_task_of_another_kind(tmp_path: Path) -> None:
    folder = tmp_path / "qa"
    record = span_record(folder)
    mf.write(folder, dataclasses.replace(record, tasks=["answer", "embed"]))
    assert read_error(folder) == "model.yaml lists tasks this server cannot serve: {'embed'}"


def test_export_task_not_served(tmp_path: Path) -> None:
    mf.write(tmp_path, encoder_record(tmp_path, export_task="translation"))
    expected = (
        "model.yaml: export_task 'translation' is not served "
        "(only feature-extraction, question-answering, summarization, text-generation)"
    )
    assert read_error(tmp_path) == expected
    with pytest.raises(mf.ManifestError) as caught:
        mf.read_record(tmp_path)
    assert str(caught.value) == expected


def test_hash_mismatch(tmp_path: Path) -> None:
    mf.write(tmp_path, encoder_record(tmp_path))
    (tmp_path / "model.onnx").write_bytes(b"another graph")
    assert read_error(tmp_path) == "model.onnx does not match the sha256 in model.yaml"
    manifest = mf.read(tmp_path, verify=False)  # the manifest itself is fine
    with pytest.raises(mf.ManifestError, match=r"model\.onnx does not match"):
        mf.check_files(tmp_path, manifest)


def test_decoder_file_is_checked_too(tmp_path: Path) -> None:
    mf.write(tmp_path, seq2seq_record(tmp_path))
    (tmp_path / mf.DECODER_FILE).unlink()
    assert read_error(tmp_path) == "file decoder_model.onnx is missing"


def test_file_without_a_hash(tmp_path: Path) -> None:
    record = encoder_record(tmp_path)
    only_graph = {"model.onnx": record.sha256["model.onnx"]}
    mf.write(tmp_path, dataclasses.replace(record, sha256=only_graph))
    assert read_error(tmp_path) == "model.yaml records no sha256 for tokenizer.json"


def test_file_outside_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    record = encoder_record(folder)
    files = {"model": "../model.onnx", "tokenizer": mf.TOKENIZER_FILE}
    mf.write(folder, dataclasses.replace(record, files=files))
    (tmp_path / "model.onnx").write_bytes(b"outside")
    assert read_error(folder) == "file ../model.onnx is missing"


def test_bad_span_settings(tmp_path: Path) -> None:
    record = span_record(tmp_path)
    settings = mf.SpanSettings(doc_stride=0, max_answer_length=15, cls_token_id=0)
    mf.write(tmp_path, dataclasses.replace(record, question_answering=settings))
    assert read_error(tmp_path) == ("model.yaml: doc_stride and max_answer_length must be positive")


def test_bad_seq2seq_section(tmp_path: Path) -> None:
    mf.write(tmp_path, dataclasses.replace(seq2seq_record(tmp_path), d_kv=0))
    assert read_error(tmp_path) == (
        "model.yaml is missing or has a bad value for num_layers, num_heads, d_kv or "
        "vocab_size (must be positive)"
    )


def test_bad_max_sequence_length(tmp_path: Path) -> None:
    mf.write(tmp_path, encoder_record(tmp_path, max_sequence_length=0))
    assert read_error(tmp_path) == "model.yaml: bad max_sequence_length"


def test_not_yaml_not_a_mapping_or_absent(tmp_path: Path) -> None:
    assert read_error(tmp_path).startswith("cannot read model.yaml: ")
    (tmp_path / mf.MANIFEST_FILE).write_text("tasks: [embed\nthis: is: not yaml")
    assert read_error(tmp_path).startswith("cannot read model.yaml: ")
    (tmp_path / mf.MANIFEST_FILE).write_text("- a list\n")
    assert read_error(tmp_path) == "model.yaml is not a mapping"


def test_the_format_imports_no_torch_numpy_or_transformers() -> None:
    code = (
        "import sys, service.model_format\n"
        "bad = sorted(n for n in sys.modules\n"
        "             if n.split('.')[0] in {'torch', 'transformers', 'numpy', 'onnxruntime'})\n"
        "sys.exit(f'imported {bad}' if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
