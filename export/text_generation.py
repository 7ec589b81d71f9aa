"""The text-generation export: a decoder-only causal LM (GPT-2, Llama-shaped) → one step
graph with every attention fused and the cache written in place → parity → model folder.

The folder holds decoder_model.onnx, tokenizer.json (and tokenizer_config.json, config.json,
generation_config.json as the source has them) and a model.yaml with what the server's
generation loop needs: cache shapes, the context window, special token ids, generation
defaults, and the prompt Summarize wraps a document in (docs/generation.md).

Beside the fp32 graph, an int8 variant (dynamic quantization of every projection, as the
summarizers') is written when it holds the int8 floor: a cosine of 0.99 on every position's
logits through the same chunked prefill and steps; the greedy ids that stay identical to
generate() are recorded. It runs when `--precision int8` asks, or when the folder was
exported with `--int8`.
"""

import json
import shutil
from pathlib import Path

from export import causal, causal_parity, fusion
from export.errors import ExportError
from export.manifest import created_now, library_versions, source_record
from export.output import staged_directory
from export.progress import Progress
from export.quantize import quantize_int8
from export.source import CONFIG_FILE, SourceFolder
from export.variants import FLOORS
from service import model_format
from service.model_format import (
    DECODER_FILE,
    KIND_TASKS,
    TEXT_GENERATION,
    TOKENIZER_FILE,
    CausalManifest,
    CausalVariant,
    SummaryPrompt,
    sha256_file,
)

EXPORT_TASK = TEXT_GENERATION
SERVING_TASKS = list(KIND_TASKS[EXPORT_TASK])
# The longest context served: model.yaml's limit, and a cache row of a 135M model at 8192
# slots is already ~190 MB.
MAX_CONTEXT = 8192
INT8_FILE = "decoder_model.int8.onnx"
COPIED_FILES = ("config.json", "generation_config.json", "tokenizer_config.json")
# Summarize's prompt on a model without a chat template: GPT-2's own summarization cue.
DEFAULT_SUMMARY_TEMPLATE = "{text}\n\nTL;DR:"
SUMMARY_INSTRUCTION = "Summarize the following text.\n\n"


def export(source: SourceFolder, out: Path, *, name: str, int8: bool = False) -> None:
    """`attnserve export --task text-generation`: the opset is causal's (24), whatever
    --opset says."""
    causal.check_supported(source)
    progress = Progress(total_steps=5)
    progress.step(f"loading {source.path}")
    model = causal.load(source)
    window = min(model.context_window, MAX_CONTEXT)

    with staged_directory(out) as staging:
        graph = staging / DECODER_FILE
        progress.step(
            f"exporting the step graph (dynamo exporter, opset {causal.OPSET}: every attention "
            "one ONNX Attention op, the cache written in place by TensorScatter)"
        )
        causal.export_onnx(model, graph)
        summary = fusion.summarize_graph(graph)
        softmax = summary.unfused.get("Softmax", 0)
        if summary.attention != model.num_layers or softmax:
            raise ExportError(
                f"{summary.attention} of {model.num_layers} attention blocks fused "
                f"({softmax} Softmax left): the step is not what the server runs"
            )

        progress.step("checking parity with PyTorch (chunked prefill and steps, greedy ids)")
        parity = causal_parity.check(model, graph, source.tokenizer_path)
        if not parity.passed:
            raise ExportError(
                f"parity check failed: logits max abs diff {parity.max_abs_diff:.3g} (limit "
                f"{parity.max_abs_diff_limit:g}), greedy ids identical for "
                f"{parity.greedy_identical} of {parity.prompts} prompts"
            )

        progress.step("int8 variant: quantizing the step graph, checking it against PyTorch")
        int8_variant = _int8(model, staging, source.tokenizer_path)
        if int8 and isinstance(int8_variant, str):
            raise ExportError(f"--int8: the int8 variant cannot be served: {int8_variant}")
        variants = {"fp32": CausalVariant(DECODER_FILE, ["cuda", "cpu"], parity, None)}
        skipped = {"bf16": "not built for causal LMs yet"}
        if isinstance(int8_variant, str):
            skipped["int8"] = int8_variant
        else:
            variants["int8"] = int8_variant

        progress.step(f"writing {out}")
        shutil.copyfile(source.tokenizer_path, staging / TOKENIZER_FILE)
        for file in COPIED_FILES:
            if (source.path / file).is_file():
                shutil.copyfile(source.path / file, staging / file)
        files = {"model": DECODER_FILE, "tokenizer": TOKENIZER_FILE}
        manifest = CausalManifest(
            name=name,
            export_task=EXPORT_TASK,
            tasks=SERVING_TASKS,
            architecture=model.class_name,
            model_type=model.model_type,
            precision="int8" if int8 else "fp32",
            files=files,
            sha256={
                f: sha256_file(staging / f)
                for f in dict.fromkeys([*files.values(), *(v.file for v in variants.values())])
            },
            max_sequence_length=window,
            hidden_size=model.hidden_size,
            num_layers=model.num_layers,
            num_heads=model.num_heads,
            num_kv_heads=model.num_kv_heads,
            head_dim=model.head_dim,
            vocab_size=model.vocab_size,
            tied_embeddings=model.tied_embeddings,
            inputs=model.inputs,
            outputs=model.outputs,
            generation=model.generation,
            summary_prompt=summary_prompt(source.path),
            opset=causal.OPSET,
            fused_ops=summary.fused,
            unfused_ops=summary.unfused,
            fully_fused=True,
            parity=parity,
            variants=variants,
            skipped_variants=skipped,
            source=source_record(source),
            versions=library_versions(),
            created=created_now(),
        )
        model_format.write(staging, manifest)
    assert CONFIG_FILE in COPIED_FILES
    progress.finish(
        f"exported {name} to {out} (logits max abs diff {parity.max_abs_diff:.2g}; attention "
        f"fused: {summary.attention} nodes; greedy identical {parity.greedy_identical}/"
        f"{parity.prompts}; int8: "
        + (
            skipped["int8"]
            if "int8" in skipped
            else f"min logits cosine {variants['int8'].parity.min_cosine:.4f}, greedy identical "
            f"{variants['int8'].parity.greedy_identical}/{parity.prompts}"
        )
        + ")"
    )


def _int8(model: causal.Causal, staging: Path, tokenizer: Path) -> CausalVariant | str:
    """The step graph quantized and checked; the variant, or why it is left out."""
    # The projections only (the quantizer would rewrite ONNX's Attention as QAttention), all
    # of them: a causal LM's step reads every weight per token, so each one kept fp32 costs.
    quantization = quantize_int8(
        staging / DECODER_FILE,
        staging / INT8_FILE,
        keep_ffn_down_fp32=False,
        op_types=["MatMul", "Gemm"],
    )
    floor = FLOORS["int8"]
    parity = causal_parity.check(model, staging / INT8_FILE, tokenizer, min_cosine=floor)
    if not parity.passed:
        (staging / INT8_FILE).unlink()
        return f"below its floor: min logits cosine {parity.min_cosine:.4f} (floor {floor})"
    return CausalVariant(INT8_FILE, ["cpu"], parity, quantization)


def summary_prompt(folder: Path) -> SummaryPrompt:
    """Summarize's prompt: the source's chat template rendered once, here, with one user turn
    asking for a summary of `{text}` and the assistant's turn opened (so the server needs no
    template engine); a model without one gets DEFAULT_SUMMARY_TEMPLATE. A rendered chat
    holds its own special tokens, so it is tokenized without adding them, as
    transformers' apply_chat_template(tokenize=True) does."""
    config = folder / "tokenizer_config.json"
    has_template = (folder / "chat_template.jinja").is_file() or (
        config.is_file() and "chat_template" in json.loads(config.read_text(encoding="utf-8"))
    )
    if not has_template:
        return SummaryPrompt(DEFAULT_SUMMARY_TEMPLATE, add_special_tokens=True, origin="default")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    messages = [{"role": "user", "content": SUMMARY_INSTRUCTION + "{text}"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if not isinstance(rendered, str) or rendered.count("{text}") != 1:
        raise ExportError("the chat template does not render the document exactly once")
    return SummaryPrompt(rendered, add_special_tokens=False, origin="chat_template")
