"""The record `attnserve export` writes as model.yaml: its keys are these dataclasses' fields,
dumped in field order."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from service.model_format.names import (
    FEATURE_EXTRACTION,
    FORMAT_VERSION,
    MANIFEST_FILE,
    SPAN_QA,
    SUMMARIZATION,
    TEXT_GENERATION,
)


@dataclass(frozen=True)
class Parity:
    reference: str
    sentences: int
    max_abs_diff: float
    min_cosine: float
    mean_cosine: float
    max_abs_diff_limit: float | None  # None: recorded, not enforced
    min_cosine_limit: float
    mean_cosine_limit: float | None
    identical_answers: int | None  # span QA: rows whose best span is PyTorch's (None: n/a)
    passed: bool


@dataclass(frozen=True)
class Quantization:
    method: str
    weight_type: str
    per_channel: bool
    fp32_matmuls: int  # MatMuls deliberately left unquantized


@dataclass(frozen=True)
class Variant:
    """One precision of the graph (model.yaml `variants`), written only if it held its floor
    against PyTorch on the parity set."""

    file: str  # the graph in the folder; bf16 shares the fp32 file (OpenVINO casts it)
    runs_on: list[str]  # the providers it is meant for, fastest first
    parity: Parity
    quantization: Quantization | None
    fused_ops: dict[str, int]
    # Rows of at most this many tokens run on the fp32 graph instead (int8: a short row has
    # too few tokens to average out quantization error); 0: none.
    fp32_rows_up_to: int
    note: str  # how it runs, e.g. who fuses its attention


@dataclass(frozen=True)
class Source:
    path: str
    config_sha256: str


@dataclass(frozen=True)
class ExplainGraph:
    """The explanation graph beside an encoder's fused one (model.yaml `explain`)."""

    file: str
    layers: int
    heads: int
    outputs: list[str]  # attention.{i}, one per layer
    layout: str  # of each output's axes
    max_abs_diff: float  # against transformers' output_attentions, real queries and keys
    max_abs_diff_limit: float
    passed: bool


@dataclass(frozen=True, kw_only=True)
class ManifestHeader:
    """The keys every task's model.yaml starts with."""

    format_version: int = FORMAT_VERSION
    name: str
    export_task: str
    tasks: list[str]
    architecture: str
    model_type: str
    precision: str
    files: dict[str, str]  # role (model, encoder, decoder, tokenizer) -> file name
    sha256: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class EncoderManifest(ManifestHeader):
    """An encoder's model.yaml (feature extraction)."""

    max_sequence_length: int
    hidden_size: int
    num_layers: int
    num_heads: int
    pooling: str
    normalize: bool
    inputs: list[str]
    outputs: list[str]
    opset: int
    fused_ops: dict[str, int]
    unfused_ops: dict[str, int]
    fully_fused: bool  # one fused Attention per layer; false only with --allow-unfused
    parity: Parity
    quantization: Quantization | None  # None: fp32
    # Every precision it can run in, fp32 (the file above) included; a precision left out
    # says why in `skipped_variants` (below its floor, or not measurable on this machine).
    variants: dict[str, Variant]
    skipped_variants: dict[str, str]
    explain: ExplainGraph | None  # None: the model cannot explain (exported without one)
    source: Source
    versions: dict[str, str]
    created: str


@dataclass(frozen=True, slots=True)
class SpanSettings:
    """How the server windows contexts and decodes spans (model.yaml `question_answering`);
    request options override these."""

    doc_stride: int  # tokens shared by consecutive windows of a long context
    max_answer_length: int  # in tokens
    # The classifier token's id: SQuAD2-style heads score "no answer" there, so it is never
    # masked out as a non-context token.
    cls_token_id: int


@dataclass(frozen=True, kw_only=True)
class SpanManifest(EncoderManifest):
    """A span question-answering model: the encoder's record plus what decoding needs."""

    question_answering: SpanSettings
    fusion_notes: list[str]  # what the optimizer left unfused, and why


@dataclass(frozen=True)
class Generation:
    """The source's generation defaults (model.yaml `generation`), as the server applies
    them where a request leaves a setting 0."""

    decoder_start_token_id: int
    eos_token_ids: list[int]
    pad_token_id: int
    max_new_tokens: int
    num_beams: int
    length_penalty: float
    early_stopping: bool | str
    no_repeat_ngram_size: int
    min_length: int
    forced_bos_token_id: int | None
    forced_eos_token_id: int | None
    # Sampling keeps the top_k most likely tokens (0: all), as generate() does; recorded
    # since generation was; a folder from before reads 0.
    top_k: int = 0


@dataclass(frozen=True)
class Seq2SeqParity:
    """Both graphs against PyTorch (export/seq2seq_parity.py); fp32 is held to the absolute
    limit, a quantized variant to the cosine floor (the other limit None: recorded only)."""

    reference: str
    sentences: int
    steps: int
    encoder_max_abs_diff: float
    decoder_max_abs_diff: float
    max_abs_diff_limit: float | None
    encoder_min_cosine: float  # per real token's hidden state
    decoder_min_cosine: float  # per row and step, the logits over the vocabulary
    min_cosine_limit: float | None
    greedy_identical: int  # sentences whose greedy ids equal transformers' generate
    passed: bool


@dataclass(frozen=True)
class Seq2SeqVariant:
    """One precision of both graphs (model.yaml `variants`), written only if it held its floor."""

    files: dict[str, str]  # encoder, decoder
    runs_on: list[str]  # the providers it is meant for, fastest first
    parity: Seq2SeqParity
    quantization: Quantization | None


@dataclass(frozen=True, kw_only=True)
class Seq2SeqManifest(ManifestHeader):
    """A summarization (encoder-decoder) model's model.yaml."""

    max_sequence_length: int  # longest source text, in tokens
    max_decoder_length: int  # most decoder positions, the start token included
    hidden_size: int
    num_layers: int  # decoder layers
    num_heads: int  # decoder heads: cache tensors are [batch, num_heads, length, d_kv]
    d_kv: int
    vocab_size: int
    inputs: list[str]  # the encoder's
    decoder_inputs: list[str]
    decoder_outputs: list[str]
    encoder_outputs: list[str]
    generation: Generation
    opset: int
    fused_ops: dict[str, dict[str, int]]  # per graph
    unfused_ops: dict[str, dict[str, int]]
    fully_fused: bool  # every attention block one fused node (see docs/seq2seq.md)
    parity: Seq2SeqParity
    # Every precision it runs in, fp32 (the files above) included; one left out says why.
    variants: dict[str, Seq2SeqVariant]
    skipped_variants: dict[str, str]
    explain: ExplainGraph | None  # cross-attention probabilities; None: it cannot explain
    source: Source
    versions: dict[str, str]
    created: str


@dataclass(frozen=True)
class CausalParity:
    """The step graph against PyTorch (export/causal_parity.py): each prompt's logits at
    every chunk and step against one transformers forward, and greedy ids against
    generate()."""

    reference: str
    prompts: int
    steps: int  # greedy steps per prompt
    prefill_chunk: int  # prompts go in chunks of this many tokens, as the server sends them
    max_abs_diff: float
    max_abs_diff_limit: float | None
    min_cosine: float  # per position, the logits over the vocabulary
    min_cosine_limit: float | None
    greedy_identical: int  # prompts whose greedy ids equal transformers' generate
    passed: bool


@dataclass(frozen=True)
class SummaryPrompt:
    """How Summarize asks a causal LM for a summary: `template` with `{text}` replaced by the
    document, tokenized with or without the tokenizer's own special tokens."""

    template: str
    add_special_tokens: bool
    origin: str  # "chat_template" (rendered from tokenizer_config.json) or "default"


@dataclass(frozen=True)
class CausalVariant:
    """One precision of the step graph (model.yaml `variants`), written only if it held its
    floor."""

    file: str
    runs_on: list[str]  # the providers it is meant for, fastest first
    parity: CausalParity
    quantization: Quantization | None


@dataclass(frozen=True, kw_only=True)
class CausalManifest(ManifestHeader):
    """A text-generation (decoder-only) model's model.yaml."""

    max_sequence_length: int  # the context window: prompt and generated tokens together
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int  # cache tensors are [batch, num_kv_heads, slots, head_dim]
    head_dim: int
    vocab_size: int
    tied_embeddings: bool
    inputs: list[str]
    outputs: list[str]
    generation: Generation
    summary_prompt: SummaryPrompt
    opset: int
    fused_ops: dict[str, int]
    unfused_ops: dict[str, int]
    fully_fused: bool  # one Attention node per layer
    parity: CausalParity
    # Every precision it runs in, fp32 (the file above) included; one left out says why.
    variants: dict[str, CausalVariant]
    skipped_variants: dict[str, str]
    source: Source
    versions: dict[str, str]
    created: str


Record = EncoderManifest | Seq2SeqManifest | CausalManifest  # SpanManifest: an EncoderManifest
RECORDS: dict[str, type[EncoderManifest] | type[Seq2SeqManifest] | type[CausalManifest]] = {
    FEATURE_EXTRACTION: EncoderManifest,
    SPAN_QA: SpanManifest,
    SUMMARIZATION: Seq2SeqManifest,
    TEXT_GENERATION: CausalManifest,
}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write(folder: Path, manifest: Record) -> Path:
    """`manifest` as folder/model.yaml: keys in field order, short collections inline."""
    text = yaml.safe_dump(asdict(manifest), sort_keys=False, default_flow_style=None, width=100)
    path = folder / MANIFEST_FILE
    path.write_text(text, encoding="utf-8")
    return path
