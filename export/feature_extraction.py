"""The feature-extraction export: a BERT-family encoder → fused ONNX → parity → model folder.

A sentence encoder serves embed directly, and summarize and answer by ranking embedded
sentences, so this one graph backs all three serving tasks.
"""

import tempfile
from pathlib import Path

from export import encoder, explain, parity, variants
from export.errors import ExportError
from export.output import staged_directory
from export.progress import Progress
from export.source import SourceFolder, max_sequence_length, normalize, pooling
from service import model_format
from service.model_format import (
    FEATURE_EXTRACTION,
    KIND_TASKS,
    EncoderManifest,
    Parity,
)

EXPORT_TASK = FEATURE_EXTRACTION
SERVING_TASKS = list(KIND_TASKS[EXPORT_TASK])


def export(
    source: SourceFolder, out: Path, *, name: str, opset: int, int8: bool, allow_unfused: bool
) -> None:
    # Everything that can be checked without loading the weights is checked first.
    encoder.check_supported(source)
    pooling_mode, normalized = pooling(source), normalize(source)
    progress = Progress(total_steps=7)
    progress.step(f"loading {source.path}")
    model = encoder.load_encoder(source)

    with (
        tempfile.TemporaryDirectory(prefix="attnserve-export-") as work_name,
        staged_directory(out) as staging,
    ):
        work = Path(work_name)
        fused, summary, fully_fused = encoder.export_fused(
            model, work, opset, allow_unfused, progress
        )

        progress.step("checking fp32 parity with PyTorch")
        max_length = max_sequence_length(source, model.position_limit)
        batch = parity.tokenize(
            source.tokenizer_path, summary.inputs, model.pad_token_id, max_length
        )
        reference = encoder.run(model, batch.feeds)
        result = parity.compare(fused, batch, reference, parity.FP32_LIMITS)
        require_parity(result, "fp32")

        progress.step("building the bf16, fp16 and int8 variants and checking their parity")
        hashes = encoder.stage_files(fused, source, staging)
        check = variants.ParityCheck(batch, reference)
        held, skipped = variants.build(staging, result, check, ["bf16", "fp16", "int8"])
        hashes.update(variants.hashes(staging, held))
        progress.step("exporting the explanation graph (attention probabilities as outputs)")
        explanation = explain.stage(model, staging, batch, opset, hashes)
        precision = "fp32"
        if int8:  # asked for: the folder serves int8 under --precision auto
            if "int8" not in held:
                raise ExportError(f"int8 variant not written: {skipped['int8']}")
            precision = "int8"
        progress.step(f"writing {out}")
        manifest = encoder.graph_record(
            EncoderManifest,
            name=name,
            model=model,
            summary=summary,
            fully_fused=fully_fused,
            hashes=hashes,
            opset=opset,
            source=source,
            export_task=EXPORT_TASK,
            tasks=SERVING_TASKS,
            precision=precision,
            max_sequence_length=max_length,
            pooling=pooling_mode,
            normalize=normalized,
            parity=held[precision].parity,
            quantization=held[precision].quantization,
            variants=held,
            skipped_variants=skipped,
            explain=explanation,
        )
        model_format.write(staging, manifest)
    progress.finish(f"exported {name} ({precision}) to {out}")


def require_parity(result: Parity, precision: str) -> None:
    if result.passed:
        return
    raise ExportError(
        f"{precision} parity check failed on {result.sentences} sentences: "
        f"max abs diff {result.max_abs_diff:.3g}{_limit(result.max_abs_diff_limit)}, "
        f"min cosine {result.min_cosine:.6f}{_limit(result.min_cosine_limit)}, "
        f"mean cosine {result.mean_cosine:.6f}{_limit(result.mean_cosine_limit)}"
    )


def _limit(limit: float | None) -> str:
    return "" if limit is None else f" (limit {limit:g})"
