"""The question-answering export: a `*ForQuestionAnswering` encoder → fused ONNX → parity on
its start and end logits → model folder serving `answer` with exact spans.

Decoding defaults follow the transformers question-answering pipeline: windows of at most
384 tokens, a document stride of min(window // 2, 128), answers of at most 15 tokens.
"""

import tempfile
from pathlib import Path

import numpy as np

from export import encoder, explain, fusion, parity, variants
from export.errors import ExportError
from export.feature_extraction import require_parity
from export.output import staged_directory
from export.progress import Progress
from export.source import SourceFolder, max_sequence_length
from service import model_format
from service.model_format import (
    KIND_TASKS,
    SPAN_QA,
    SpanManifest,
    SpanSettings,
)

EXPORT_TASK = SPAN_QA
SERVING_TASKS = list(KIND_TASKS[EXPORT_TASK])
PIPELINE_MAX_WINDOW = 384
DEFAULT_MAX_ANSWER_LENGTH = 15
# Why the optimizer leaves a block unfused, by model type, for model.yaml and the README.
_UNFUSED_EMBEDDINGS = {
    "roberta": "embedding layer norm not fused: RoBERTa computes its position ids from "
    "input_ids (a cumulative sum over the non-padding mask), which onnxruntime's "
    "EmbedLayerNormalization pattern does not match; it runs as a plain LayerNormalization",
}


def export(source: SourceFolder, out: Path, *, name: str, opset: int, allow_unfused: bool) -> None:
    encoder.check_supported(source, encoder.SPAN_LOGITS)
    progress = Progress(total_steps=7)
    progress.step(f"loading {source.path}")
    model = encoder.load_encoder(source, encoder.SPAN_LOGITS)
    window = min(max_sequence_length(source, model.position_limit), PIPELINE_MAX_WINDOW)
    decoding = SpanSettings(
        doc_stride=min(window // 2, 128),
        max_answer_length=DEFAULT_MAX_ANSWER_LENGTH,
        cls_token_id=_cls_token_id(source),
    )

    with (
        tempfile.TemporaryDirectory(prefix="attnserve-export-") as work_name,
        staged_directory(out) as staging,
    ):
        work = Path(work_name)
        fused, summary, fully_fused = encoder.export_fused(
            model, work, opset, allow_unfused, progress
        )

        progress.step("checking fp32 parity of start and end logits with PyTorch")
        batch = parity.tokenize(
            source.tokenizer_path, summary.inputs, model.pad_token_id, window, pairs=True
        )
        reference = encoder.run(model, batch.feeds)
        result = parity.compare(fused, batch, reference, parity.FP32_LIMITS, pool=np.ravel)
        require_parity(result, "fp32")

        progress.step("building the bf16 and fp16 variants and checking their answers")
        hashes = encoder.stage_files(fused, source, staging)
        same = parity.same_best_span(decoding.max_answer_length)
        check = variants.ParityCheck(batch, reference, np.ravel, same)
        held, skipped = variants.build(staging, result, check, ["bf16", "fp16"])
        hashes.update(variants.hashes(staging, held))
        progress.step("exporting the explanation graph (attention probabilities as outputs)")
        explanation = explain.stage(model, staging, batch, opset, hashes)
        progress.step(f"writing {out}")
        manifest = encoder.graph_record(
            SpanManifest,
            name=name,
            model=model,
            summary=summary,
            fully_fused=fully_fused,
            hashes=hashes,
            opset=opset,
            source=source,
            export_task=EXPORT_TASK,
            tasks=SERVING_TASKS,
            precision="fp32",
            max_sequence_length=window,
            pooling="none",  # spans come from per-token logits, nothing is pooled
            normalize=False,
            parity=result,
            quantization=None,
            variants=held,
            skipped_variants=skipped,
            explain=explanation,
            question_answering=decoding,
            fusion_notes=_fusion_notes(summary, model),
        )
        model_format.write(staging, manifest)
    progress.finish(f"exported {name} (fp32) to {out}")


def _cls_token_id(source: SourceFolder) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source.path), local_files_only=True)
    # The pipeline puts the question first only with right padding; so does the server.
    if tokenizer.padding_side != "right" or tokenizer.cls_token_id is None:
        raise ExportError(
            f"the tokenizer in {source.path} needs right padding and a classifier token "
            "for span question answering"
        )
    return int(tokenizer.cls_token_id)


def _fusion_notes(summary: fusion.GraphSummary, model: encoder.Encoder) -> list[str]:
    notes = []
    if summary.fused.get("EmbedLayerNormalization", 0) == 0:
        notes.append(
            _UNFUSED_EMBEDDINGS.get(
                model.model_type, "embedding layer norm not fused by onnxruntime's optimizer"
            )
        )
    if summary.attention < model.num_layers:
        notes.append(
            f"{model.num_layers - summary.attention} of {model.num_layers} attention blocks "
            "not fused (exported with --allow-unfused)"
        )
    return notes
