"""The summarization export: T5 or BART → encoder and decoder-step graphs → parity → folder.

The folder holds encoder_model.onnx, decoder_model.onnx, tokenizer.json, config.json and a
model.yaml with what the server's generation loop needs (cache shapes, special token ids,
generation defaults) besides the usual record (fused ops, parity, hashes, versions).

Beside the fp32 graphs, an int8 variant of both (dynamic quantization, as the encoders'
int8) is written when it holds the int8 floor against PyTorch: a cosine of 0.99 on every
encoder state and on every step's logits; how many greedy sequences stay identical to
generate() is recorded. It runs when `--precision int8` asks, or when the folder was
exported with `--int8` (its `precision` then says int8).
"""

import shutil
from pathlib import Path

from export import fusion, seq2seq, seq2seq_explain, seq2seq_parity
from export.errors import ExportError
from export.manifest import created_now, library_versions, source_record
from export.output import staged_directory
from export.progress import Progress
from export.quantize import quantize_int8
from export.source import CONFIG_FILE, SourceFolder, max_sequence_length
from export.variants import FLOORS
from service import model_format
from service.model_format import (
    DECODER_FILE,
    ENCODER_FILE,
    ENCODER_INPUTS,
    KIND_TASKS,
    SUMMARIZATION,
    TOKENIZER_FILE,
    Seq2SeqManifest,
    Seq2SeqVariant,
    sha256_file,
)

EXPORT_TASK = SUMMARIZATION
SERVING_TASKS = list(KIND_TASKS[EXPORT_TASK])
GENERATION_CONFIG_FILE = "generation_config.json"
INT8_FILES = {"encoder": "encoder_model.int8.onnx", "decoder": "decoder_model.int8.onnx"}


def export(source: SourceFolder, out: Path, *, name: str, int8: bool = False) -> None:
    """`attnserve export --task summarization`: the opset is seq2seq.OPSET, whatever --opset
    says (the encoders' opset 14 has neither Attention nor TensorScatter)."""
    seq2seq.check_supported(source)
    progress = Progress(total_steps=6)
    progress.step(f"loading {source.path}")
    model = seq2seq.load(source)

    with staged_directory(out) as staging:
        opset = seq2seq.OPSET
        progress.step(
            f"exporting encoder and decoder-step graphs (dynamo exporter, opset {opset}: every "
            "attention one ONNX Attention op, the cache written in place by TensorScatter)"
        )
        graphs = {"encoder": staging / ENCODER_FILE, "decoder": staging / DECODER_FILE}
        seq2seq.export_onnx(model, graphs["encoder"], graphs["decoder"])
        summaries = {role: fusion.summarize_graph(path) for role, path in graphs.items()}

        progress.step("checking parity with PyTorch (encoder states, decoder logits, greedy ids)")
        max_length = max_sequence_length(source, model.position_limit)
        parity = seq2seq_parity.check(
            model,
            staging / ENCODER_FILE,
            staging / DECODER_FILE,
            source.tokenizer_path,
            max_length,
        )
        if not parity.passed:
            raise ExportError(
                f"parity check failed: encoder max abs diff {parity.encoder_max_abs_diff:.3g}, "
                f"decoder logits {parity.decoder_max_abs_diff:.3g} (limit "
                f"{parity.max_abs_diff_limit:g}), greedy ids identical for "
                f"{parity.greedy_identical} of {parity.sentences} sentences"
            )

        progress.step("int8 variant: quantizing both graphs, checking it against PyTorch")
        int8_variant = _int8(model, staging, source.tokenizer_path, max_length)
        if int8 and isinstance(int8_variant, str):
            raise ExportError(f"--int8: the int8 variant cannot be served: {int8_variant}")
        variants = {
            "fp32": Seq2SeqVariant(
                files={"encoder": ENCODER_FILE, "decoder": DECODER_FILE},
                runs_on=["tensorrt", "cuda", "cpu"],
                parity=parity,
                quantization=None,
            )
        }
        skipped: dict[str, str] = {}
        if isinstance(int8_variant, str):
            skipped["int8"] = int8_variant
        else:
            variants["int8"] = int8_variant

        progress.step("exporting the explanation graph (cross-attention probabilities as outputs)")
        ids, mask = seq2seq_parity.tokenize(
            source.tokenizer_path, model.generation.pad_token_id, max_length
        )
        explain_hashes: dict[str, str] = {}
        explanation = seq2seq_explain.stage(model, staging, ids, mask, explain_hashes)

        progress.step(f"writing {out}")
        shutil.copyfile(source.tokenizer_path, staging / TOKENIZER_FILE)
        shutil.copyfile(source.config_path, staging / CONFIG_FILE)
        if (source.path / GENERATION_CONFIG_FILE).is_file():
            shutil.copyfile(source.path / GENERATION_CONFIG_FILE, staging / GENERATION_CONFIG_FILE)
        files = {"encoder": ENCODER_FILE, "decoder": DECODER_FILE, "tokenizer": TOKENIZER_FILE}
        hashed = [*files.values(), *(f for v in variants.values() for f in v.files.values())]
        attention = sum(s.attention for s in summaries.values())
        softmax = sum(s.unfused.get("Softmax", 0) for s in summaries.values())
        manifest = Seq2SeqManifest(
            name=name,
            export_task=EXPORT_TASK,
            tasks=SERVING_TASKS,
            architecture=model.class_name,
            model_type=model.model_type,
            precision="int8" if int8 else "fp32",
            files=files,
            sha256={f: sha256_file(staging / f) for f in dict.fromkeys(hashed)} | explain_hashes,
            max_sequence_length=max_length,
            max_decoder_length=model.decoder_limit,
            hidden_size=model.d_model,
            num_layers=model.num_layers,
            num_heads=model.num_heads,
            d_kv=model.d_kv,
            vocab_size=model.vocab_size,
            inputs=ENCODER_INPUTS,
            decoder_inputs=model.decoder_inputs,
            decoder_outputs=model.decoder_outputs,
            encoder_outputs=model.encoder_outputs,
            generation=model.generation,
            opset=opset,
            fused_ops={role: s.fused for role, s in summaries.items()},
            unfused_ops={role: s.unfused for role, s in summaries.items()},
            # Encoder self-attention, decoder self- and cross-attention per layer.
            fully_fused=attention == model.num_layers * 2 + _encoder_layers(model) and softmax == 0,
            parity=parity,
            variants=variants,
            skipped_variants=skipped,
            explain=explanation,
            source=source_record(source),
            versions=library_versions(),
            created=created_now(),
        )
        model_format.write(staging, manifest)
    progress.finish(
        f"exported {name} to {out} (decoder logits max abs diff "
        f"{parity.decoder_max_abs_diff:.2g}; attention fused: {attention} nodes; int8: "
        + (
            skipped["int8"]
            if "int8" in skipped
            else "min logits cosine "
            f"{variants['int8'].parity.decoder_min_cosine:.4f}, greedy identical "
            f"{variants['int8'].parity.greedy_identical}/{parity.sentences}"
        )
        + ")"
    )


def _int8(
    model: seq2seq.Seq2Seq, staging: Path, tokenizer: Path, max_length: int
) -> Seq2SeqVariant | str:
    """Both graphs quantized and checked; the variant, or why it is left out."""
    # The projections only: the quantizer would take ONNX's standard Attention op for
    # onnxruntime's contrib one of the same name and rewrite it as QAttention, which rejects it.
    matmuls = ["MatMul", "Gemm"]
    quantization = quantize_int8(
        staging / ENCODER_FILE, staging / INT8_FILES["encoder"], op_types=matmuls
    )
    # Every projection of the decoder step, the feed-forward's output included: a step reads
    # each of its weights per token, and bart-base's six kept fp32 were 56 MB of its 144.
    quantize_int8(
        staging / DECODER_FILE,
        staging / INT8_FILES["decoder"],
        keep_ffn_down_fp32=False,
        op_types=matmuls,
    )
    floor = FLOORS["int8"]
    parity = seq2seq_parity.check(
        model,
        staging / INT8_FILES["encoder"],
        staging / INT8_FILES["decoder"],
        tokenizer,
        max_length,
        min_cosine=floor,
    )
    if not parity.passed:
        for file in INT8_FILES.values():
            (staging / file).unlink()
        return (
            f"below its floor: min cosine encoder {parity.encoder_min_cosine:.4f}, decoder "
            f"logits {parity.decoder_min_cosine:.4f} (floor {floor})"
        )
    return Seq2SeqVariant(
        files=dict(INT8_FILES), runs_on=["cpu"], parity=parity, quantization=quantization
    )


def _encoder_layers(model: seq2seq.Seq2Seq) -> int:
    config = model.model.config
    return int(getattr(config, "encoder_layers", None) or config.num_layers)
