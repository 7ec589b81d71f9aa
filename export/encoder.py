"""BERT-family encoders in PyTorch: load one, run it, export it to ONNX.

The ONNX graph has INT64 [batch, sequence] inputs `input_ids`, `attention_mask` (and
`token_type_ids` when the model takes them) and the head's FP32 outputs: `last_hidden_state`
for the bare encoder, `start_logits` and `end_logits` for a span question-answering head.
"""

import inspect
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from transformers import AutoModel, AutoModelForQuestionAnswering
from transformers.utils import logging as transformers_logging

from export import fusion
from export.errors import ExportError
from export.manifest import created_now, library_versions, source_record
from export.progress import Progress
from export.source import CONFIG_FILE, SourceFolder
from service.model_format import (
    FEATURE_EXTRACTION,
    LAST_HIDDEN_STATE,
    MODEL_FILE,
    SPAN_OUTPUTS,
    SPAN_QA,
    TOKENIZER_FILE,
    EncoderManifest,
    sha256_file,
)

R = TypeVar("R", bound=EncoderManifest)

# config.model_type → the onnxruntime.transformers optimizer that fuses it. All of these are
# post-LayerNorm BERT-style blocks, which the "bert" optimizer's attention fusion matches —
# except MPNet's, whose relative-position bias defeats it: MPNet exports (with exact parity)
# only with --allow-unfused. RoBERTa's embeddings stay unfused (its positions count from the
# padding id); its attention fuses.
OPTIMIZER_TYPES = {
    "bert": "bert",
    "distilbert": "bert",
    "electra": "bert",
    "mpnet": "bert",
    "roberta": "bert",
}
# The span question-answering heads exported and checked end to end (MPNet's QA head is left
# out: its attention does not fuse).
SPAN_QA_TYPES = {
    name: OPTIMIZER_TYPES[name] for name in ("bert", "distilbert", "electra", "roberta")
}

_BATCH_AXES = {0: "batch", 1: "sequence"}


@dataclass(frozen=True)
class Head:
    """What sits on the encoder: the transformers auto class and the outputs the graph keeps."""

    task: str
    auto_class: type[AutoModel] | type[AutoModelForQuestionAnswering]
    outputs: tuple[str, ...]


HIDDEN_STATES = Head(FEATURE_EXTRACTION, AutoModel, (LAST_HIDDEN_STATE,))
SPAN_LOGITS = Head(SPAN_QA, AutoModelForQuestionAnswering, tuple(SPAN_OUTPUTS))


class _Outputs(torch.nn.Module):
    """Takes the graph's inputs positionally (as the legacy exporter passes them) and returns
    only the head's outputs, so that e.g. pooler_output never reaches the graph."""

    def __init__(self, model: torch.nn.Module, input_names: list[str], outputs: tuple[str, ...]):
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.outputs = outputs

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        kwargs = dict(zip(self.input_names, inputs, strict=True))
        result = self.model(**kwargs, return_dict=True)
        return tuple(getattr(result, name) for name in self.outputs)


@dataclass(frozen=True)
class Encoder:
    module: _Outputs
    head: Head
    class_name: str
    model_type: str
    optimizer_type: str
    input_names: list[str]
    hidden_size: int
    num_layers: int
    num_heads: int
    pad_token_id: int
    position_limit: int
    vocab_size: int


def check_supported(source: SourceFolder, head: Head = HIDDEN_STATES) -> str:
    """The optimizer type for the source's architecture, or an error naming what is supported."""
    supported_types = OPTIMIZER_TYPES if head is HIDDEN_STATES else SPAN_QA_TYPES
    optimizer_type = supported_types.get(source.model_type)
    if optimizer_type is None:
        architectures = source.config.get("architectures") or ["?"]
        supported = ", ".join(sorted(supported_types))
        raise ExportError(
            f"architecture {architectures[0]} (model_type {source.model_type!r}) is not "
            f"supported for {head.task}; supported model types: {supported}"
        )
    return optimizer_type


def load_pretrained(auto_class: Any, source: SourceFolder) -> Any:
    """The source's weights in float32 with eager attention, in eval mode; ExportError with
    transformers' first line of explanation when they cannot be loaded."""
    # One progress line per export step is ours to print; the weight-loading bar would break it.
    transformers_logging.disable_progress_bar()
    # Eager attention: its MatMul/Softmax pattern is what the optimizer fuses; sdpa is not.
    try:
        return auto_class.from_pretrained(
            str(source.path),
            attn_implementation="eager",
            dtype=torch.float32,
            local_files_only=True,
        ).eval()
    except (OSError, ValueError) as error:
        # transformers explains missing or mismatched weights over several lines: keep the first.
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise ExportError(f"cannot load the model in {source.path}: {first_line}") from error


def load_encoder(source: SourceFolder, head: Head = HIDDEN_STATES) -> Encoder:
    optimizer_type = check_supported(source, head)
    model = load_pretrained(head.auto_class, source)
    takes = inspect.signature(model.forward).parameters
    input_names = ["input_ids", "attention_mask"]
    if "token_type_ids" in takes:
        input_names.append("token_type_ids")
    config = model.config
    pad_token_id = config.pad_token_id if config.pad_token_id is not None else 0
    position_limit = config.max_position_embeddings
    if config.model_type == "roberta":
        # RoBERTa numbers positions from pad_token_id + 1, so that many positions are unusable.
        position_limit -= pad_token_id + 1
    return Encoder(
        # eval() on the wrapper too: export restores the wrapper's own mode, and a wrapper left
        # in training mode would switch the model's dropout back on afterwards.
        module=_Outputs(model, input_names, head.outputs).eval(),
        head=head,
        class_name=type(model).__name__,
        model_type=config.model_type,
        optimizer_type=optimizer_type,
        input_names=input_names,
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        pad_token_id=pad_token_id,
        position_limit=position_limit,
        vocab_size=config.vocab_size,
    )


def run(encoder: Encoder, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The head's output from PyTorch: the reference the ONNX graph is checked against.

    Several outputs (start and end logits) come stacked on a new last axis, as
    parity.compare stacks the graph's.
    """
    inputs = [torch.from_numpy(feeds[name]) for name in encoder.input_names]
    with torch.inference_mode():
        outputs = [output.numpy() for output in encoder.module(*inputs)]
    return outputs[0] if len(outputs) == 1 else np.stack(outputs, axis=-1)


def export_onnx(encoder: Encoder, path: Path, opset: int) -> None:
    # Legacy TorchScript exporter: the only route whose graph the optimizer fully fuses
    # (dynamo exports keep attention unfused).
    batch, sequence = 2, 16
    input_ids = torch.arange(batch * sequence, dtype=torch.int64).reshape(batch, sequence)
    dummy = {
        "input_ids": input_ids % encoder.vocab_size,
        "attention_mask": torch.ones(batch, sequence, dtype=torch.int64),
        "token_type_ids": torch.zeros(batch, sequence, dtype=torch.int64),
    }
    with warnings.catch_warnings():
        # The legacy exporter's deprecation notice and tracer warnings about Python-side
        # shape checks (which hold for every input whose mask is as long as its ids).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder.module,
            tuple(dummy[name] for name in encoder.input_names),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=encoder.input_names,
            output_names=list(encoder.head.outputs),
            dynamic_axes={
                name: _BATCH_AXES for name in [*encoder.input_names, *encoder.head.outputs]
            },
            do_constant_folding=True,
        )


def export_fused(
    model: Encoder, work: Path, opset: int, allow_unfused: bool, progress: Progress
) -> tuple[Path, fusion.GraphSummary, bool]:
    """Export to ONNX in `work` and fuse it; fail unless every layer's attention became one
    fused node (or `allow_unfused`). Returns the fused graph, its op counts, and whether it
    is fully fused."""
    raw, fused = work / "raw.onnx", work / "fused.onnx"
    progress.step(f"exporting ONNX (legacy TorchScript exporter, opset {opset})")
    export_onnx(model, raw, opset)
    progress.step(f"fusing with onnxruntime's {model.optimizer_type} optimizer")
    fusion.fuse(raw, fused, model.optimizer_type, model.num_heads, model.hidden_size)
    summary = fusion.summarize_graph(fused)
    fully_fused = summary.attention == model.num_layers
    if not fully_fused and not allow_unfused:
        raise ExportError(
            f"attention fusion incomplete: {summary.attention} fused Attention nodes for "
            f"{model.num_layers} layers (bare Softmax: {summary.unfused.get('Softmax', 0)}); "
            "pass --allow-unfused to export it anyway"
        )
    return fused, summary, fully_fused


def stage_files(graph: Path, source: SourceFolder, staging: Path) -> dict[str, str]:
    """Put the graph, the tokenizer and the config into the model folder being built; the
    sha256 of the files the server loads, for model.yaml."""
    shutil.move(graph, staging / MODEL_FILE)
    shutil.copyfile(source.tokenizer_path, staging / TOKENIZER_FILE)
    shutil.copyfile(source.config_path, staging / CONFIG_FILE)
    return {name: sha256_file(staging / name) for name in (MODEL_FILE, TOKENIZER_FILE)}


def graph_record(
    record: type[R],
    *,
    name: str,
    model: Encoder,
    summary: fusion.GraphSummary,
    fully_fused: bool,
    hashes: dict[str, str],
    opset: int,
    source: SourceFolder,
    **fields: Any,
) -> R:
    """A model.yaml record of an encoder graph: what every encoder export takes from the
    model, its fused graph and the staged files, plus the export's own `fields`."""
    return record(
        name=name,
        architecture=model.class_name,
        model_type=model.model_type,
        files={"model": MODEL_FILE, "tokenizer": TOKENIZER_FILE},
        sha256=hashes,
        hidden_size=model.hidden_size,
        num_layers=model.num_layers,
        num_heads=model.num_heads,
        inputs=summary.inputs,
        outputs=summary.outputs,
        opset=opset,
        fused_ops=summary.fused,
        unfused_ops=summary.unfused,
        fully_fused=fully_fused,
        source=source_record(source),
        versions=library_versions(),
        created=created_now(),
        **fields,
    )
