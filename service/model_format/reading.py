"""Reading model.yaml: what serving needs (validated, the files it names hashed), or the
whole typed record. Every problem is one ManifestError whose message says what is wrong."""

from __future__ import annotations

import types
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from service.model_format.names import (
    KIND_TASKS,
    MANIFEST_FILE,
    SPAN_QA,
    SUMMARIZATION,
    TEXT_GENERATION,
)
from service.model_format.records import RECORDS, Generation, Record, SpanSettings, sha256_file


class ManifestError(Exception):
    """model.yaml, or a file it names, is not servable; the message says why."""


@dataclass(frozen=True, slots=True)
class Seq2SeqSpec:
    """What a seq2seq model's generation loop needs from model.yaml."""

    encoder_file: str
    decoder_file: str
    num_layers: int
    num_heads: int
    d_kv: int
    vocab_size: int
    max_decoder_length: int  # decoder positions, the start token included
    decoder_start_token_id: int
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    defaults: Generation

    @classmethod
    def read(cls, raw: dict[str, Any]) -> Seq2SeqSpec:
        """From model.yaml's mapping; KeyError or ValueError names a missing or bad field."""
        defaults = _generation(raw["generation"])
        spec = cls(
            encoder_file=str(raw["files"]["encoder"]),
            decoder_file=str(raw["files"]["decoder"]),
            num_layers=int(raw["num_layers"]),
            num_heads=int(raw["num_heads"]),
            d_kv=int(raw["d_kv"]),
            vocab_size=int(raw["vocab_size"]),
            max_decoder_length=int(raw["max_decoder_length"]),
            decoder_start_token_id=defaults.decoder_start_token_id,
            eos_token_ids=tuple(defaults.eos_token_ids),
            pad_token_id=defaults.pad_token_id,
            defaults=defaults,
        )
        if min(spec.num_layers, spec.num_heads, spec.d_kv, spec.vocab_size) < 1:
            raise ValueError("num_layers, num_heads, d_kv or vocab_size (must be positive)")
        if spec.max_decoder_length < 2 or not spec.eos_token_ids:
            raise ValueError("max_decoder_length or eos_token_ids")
        return spec


@dataclass(frozen=True, slots=True)
class CausalSpec:
    """What a causal LM's generation loop needs from model.yaml."""

    decoder_file: str
    num_layers: int
    num_kv_heads: int
    head_dim: int
    vocab_size: int
    context_window: int  # prompt and generated tokens together
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    defaults: Generation
    summary_template: str  # with {text}
    summary_special_tokens: bool  # tokenize the rendered prompt with special tokens

    @classmethod
    def read(cls, raw: dict[str, Any]) -> CausalSpec:
        defaults = _generation(raw["generation"])
        prompt = raw["summary_prompt"]
        spec = cls(
            decoder_file=str(raw["files"]["model"]),
            num_layers=int(raw["num_layers"]),
            num_kv_heads=int(raw["num_kv_heads"]),
            head_dim=int(raw["head_dim"]),
            vocab_size=int(raw["vocab_size"]),
            context_window=int(raw["max_sequence_length"]),
            eos_token_ids=tuple(defaults.eos_token_ids),
            pad_token_id=defaults.pad_token_id,
            defaults=defaults,
            summary_template=str(prompt["template"]),
            summary_special_tokens=bool(prompt["add_special_tokens"]),
        )
        if min(spec.num_layers, spec.num_kv_heads, spec.head_dim, spec.vocab_size) < 1:
            raise ValueError("num_layers, num_kv_heads, head_dim or vocab_size (must be positive)")
        if spec.context_window < 2 or not spec.eos_token_ids:
            raise ValueError("max_sequence_length or eos_token_ids")
        if "{text}" not in spec.summary_template:
            raise ValueError("summary_prompt.template (it must hold {text})")
        return spec


def _generation(generation: dict[str, Any]) -> Generation:
    early = generation["early_stopping"]
    return Generation(
        decoder_start_token_id=int(generation["decoder_start_token_id"]),
        eos_token_ids=[int(e) for e in generation["eos_token_ids"]],
        pad_token_id=int(generation["pad_token_id"]),
        max_new_tokens=int(generation["max_new_tokens"]),
        num_beams=int(generation["num_beams"]),
        length_penalty=float(generation["length_penalty"]),
        early_stopping=early if early == "never" else bool(early),
        no_repeat_ngram_size=int(generation["no_repeat_ngram_size"]),
        min_length=int(generation["min_length"]),
        forced_bos_token_id=_optional_id(generation["forced_bos_token_id"]),
        forced_eos_token_id=_optional_id(generation["forced_eos_token_id"]),
        top_k=int(generation.get("top_k", 0)),
    )


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """One precision a model folder holds (model.yaml `variants`), as serving reads it."""

    precision: str
    file: str  # the graph; a seq2seq model's encoder
    fp32_rows_up_to: int  # rows of at most this many tokens run on the fp32 graph
    decoder_file: str = ""  # a seq2seq model's decoder step

    @classmethod
    def read(cls, precision: str, raw: dict[str, Any]) -> VariantSpec:
        files = raw.get("files")  # a seq2seq variant's two graphs
        spec = cls(
            precision=precision,
            file=str(files["encoder"] if files else raw["file"]),
            fp32_rows_up_to=int(raw.get("fp32_rows_up_to", 0)),
            decoder_file=str(files["decoder"]) if files else "",
        )
        if spec.fp32_rows_up_to < 0:
            raise ValueError(f"variants.{precision}.fp32_rows_up_to")
        return spec


@dataclass(frozen=True, slots=True)
class ExplainSpec:
    """The explanation graph (model.yaml `explain`), as serving reads it."""

    file: str
    layers: int
    heads: int

    @classmethod
    def read(cls, raw: dict[str, Any]) -> ExplainSpec:
        spec = cls(file=str(raw["file"]), layers=int(raw["layers"]), heads=int(raw["heads"]))
        if min(spec.layers, spec.heads) < 1:
            raise ValueError("explain.layers or explain.heads (must be positive)")
        return spec


@dataclass(frozen=True, slots=True)
class Manifest:
    """The parts of model.yaml that serving reads."""

    name: str  # the model folder's name
    export_task: str
    tasks: list[str]
    architecture: str
    precision: str
    model_file: str  # a seq2seq model's is its encoder (what KServe serves bare)
    tokenizer_file: str
    sha256: dict[str, str]
    max_sequence_length: int
    hidden_size: int
    pooling: str
    inputs: list[str]
    span: SpanSettings | None  # span question-answering models only
    seq2seq: Seq2SeqSpec | None  # summarization (encoder-decoder) models only
    causal: CausalSpec | None  # text-generation (decoder-only) models only
    # Every precision the folder holds; a folder from before variants holds one, its own.
    # `precision` and `model_file` above are the folder's preferred one until the server
    # picks what runs (`running`).
    variants: dict[str, VariantSpec]
    skipped_variants: dict[str, str]  # precision -> why the export left it out
    explain: ExplainSpec | None  # the explanation graph; None: the model cannot explain

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """Parse and validate folder/model.yaml; the files it names are not opened."""
        raw = _mapping(folder)
        try:
            files = raw["files"]
            manifest = cls(
                name=folder.name,
                export_task=str(raw["export_task"]),
                tasks=[str(t) for t in raw["tasks"]],
                architecture=str(raw["architecture"]),
                precision=str(raw.get("precision", "fp32")),
                model_file=str(
                    files["encoder" if raw["export_task"] == SUMMARIZATION else "model"]
                ),
                tokenizer_file=str(files["tokenizer"]),
                sha256={str(k): str(v) for k, v in raw["sha256"].items()},
                max_sequence_length=int(raw["max_sequence_length"]),
                hidden_size=int(raw["hidden_size"]),
                pooling=str(raw.get("pooling", "mean")),
                inputs=[str(i) for i in raw["inputs"]],
                span=_span_settings(raw["question_answering"])
                if raw["export_task"] == SPAN_QA
                else None,
                seq2seq=Seq2SeqSpec.read(raw) if raw["export_task"] == SUMMARIZATION else None,
                causal=CausalSpec.read(raw) if raw["export_task"] == TEXT_GENERATION else None,
                variants=_variants(raw),
                skipped_variants={
                    str(k): str(v) for k, v in raw.get("skipped_variants", {}).items()
                },
                explain=_explain(raw.get("explain")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"{MANIFEST_FILE} is missing or has a bad value for {exc}") from exc
        kind_tasks = KIND_TASKS.get(manifest.export_task)
        if kind_tasks is None:
            raise _not_served(manifest.export_task)
        unknown = set(manifest.tasks) - set(kind_tasks)
        if unknown or not manifest.tasks:
            raise ManifestError(f"{MANIFEST_FILE} lists tasks this server cannot serve: {unknown}")
        if not 1 <= manifest.max_sequence_length <= 8192:
            raise ManifestError(f"{MANIFEST_FILE}: bad max_sequence_length")
        return manifest

    @property
    def variant(self) -> VariantSpec:
        """The variant `precision` names."""
        return self.variants[self.precision]

    def running(self, precision: str) -> Manifest:
        """This manifest with `precision` (one of `variants`) as the one that runs."""
        variant = self.variants[precision]
        seq2seq, causal = self.seq2seq, self.causal
        if seq2seq is not None:
            seq2seq = replace(seq2seq, encoder_file=variant.file, decoder_file=variant.decoder_file)
        if causal is not None:
            causal = replace(causal, decoder_file=variant.file)
        return replace(
            self, precision=precision, model_file=variant.file, seq2seq=seq2seq, causal=causal
        )

    @property
    def served_files(self) -> list[str]:
        """The files the server loads: graphs and tokenizer."""
        names = [self.model_file, self.tokenizer_file]
        if self.variant.fp32_rows_up_to:
            names.append(self.variants["fp32"].file)
        return names if self.seq2seq is None else [*names, self.seq2seq.decoder_file]


def check_files(folder: Path, manifest: Manifest) -> None:
    """Each file the server loads is a plain file in `folder` with the recorded sha256."""
    for name in manifest.served_files:
        path = folder / name
        if Path(name).name != name or not path.is_file():
            raise ManifestError(f"file {name} is missing")
        want = manifest.sha256.get(name)
        if want is None:
            raise ManifestError(f"{MANIFEST_FILE} records no sha256 for {name}")
        if sha256_file(path) != want:
            raise ManifestError(f"{name} does not match the sha256 in {MANIFEST_FILE}")


def read(folder: Path, *, verify: bool = True) -> Manifest:
    """folder/model.yaml as serving reads it; `verify`: also hash the files it names.
    Raises ManifestError."""
    manifest = Manifest.read(folder)
    if verify:
        check_files(folder, manifest)
    return manifest


def read_record(folder: Path) -> Record:
    """The whole record as `write` was given it; every key its type, extra keys ignored."""
    raw = _mapping(folder)
    export_task = raw.get("export_task")
    record_type = RECORDS.get(export_task) if isinstance(export_task, str) else None
    if record_type is None:
        raise _not_served(export_task)
    record: Record = _typed(record_type, raw, "")
    return record


def _mapping(folder: Path) -> dict[str, Any]:
    try:
        raw: Any = yaml.safe_load((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read {MANIFEST_FILE}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ManifestError(f"{MANIFEST_FILE} is not a mapping")
    return raw


def _not_served(export_task: object) -> ManifestError:
    kinds = ", ".join(KIND_TASKS)
    return ManifestError(
        f"{MANIFEST_FILE}: export_task {export_task!r} is not served (only {kinds})"
    )


def _span_settings(raw: Any) -> SpanSettings:
    settings = SpanSettings(
        doc_stride=int(raw["doc_stride"]),
        max_answer_length=int(raw["max_answer_length"]),
        cls_token_id=int(raw["cls_token_id"]),
    )
    if settings.doc_stride < 1 or settings.max_answer_length < 1:
        raise ManifestError(f"{MANIFEST_FILE}: doc_stride and max_answer_length must be positive")
    return settings


def _variants(raw: dict[str, Any]) -> dict[str, VariantSpec]:
    listed = raw.get("variants")
    seq2seq = raw["export_task"] == SUMMARIZATION
    file = str(raw["files"]["encoder" if seq2seq else "model"])
    decoder = str(raw["files"]["decoder"]) if seq2seq else ""
    if listed is None:  # written before variants: the one graph it has
        precision = str(raw.get("precision", "fp32"))
        return {precision: VariantSpec(precision, file, 0, decoder)}
    variants = {str(p): VariantSpec.read(str(p), v) for p, v in listed.items()}
    if "fp32" in variants:  # the reference graph is the one `files` names
        variants["fp32"] = replace(variants["fp32"], file=file, decoder_file=decoder)
    preferred = str(raw.get("precision", "fp32"))
    if preferred not in variants:
        raise ValueError(f"precision (its variant {preferred!r} is not in variants)")
    if any(v.fp32_rows_up_to for v in variants.values()) and "fp32" not in variants:
        raise ValueError("variants (fp32_rows_up_to needs an fp32 variant)")
    return variants


def _explain(raw: Any) -> ExplainSpec | None:
    """The explanation graph, when the export wrote one that held its check."""
    if not raw or not raw.get("passed"):
        return None
    return ExplainSpec.read(raw)


def _optional_id(value: Any) -> int | None:
    return None if value is None else int(value)


def _typed(hint: Any, value: Any, where: str) -> Any:
    """`value` (from YAML) checked against the annotation `hint`; ManifestError naming the
    dotted key where it is missing or of another type."""
    if isinstance(hint, type) and is_dataclass(hint):
        if not isinstance(value, dict):
            raise _bad(where)
        hints = typing.get_type_hints(hint)
        values = {}
        for field in fields(hint):
            key = f"{where}.{field.name}" if where else field.name
            if field.name not in value:
                if field.default is not MISSING:  # added later: older folders lack it
                    continue
                raise _bad(key)
            values[field.name] = _typed(hints[field.name], value[field.name], key)
        return hint(**values)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is types.UnionType:
        for option in args:
            try:
                return _typed(option, value, where)
            except ManifestError:
                continue
        raise _bad(where)
    if origin is list and isinstance(value, list):
        return [_typed(args[0], item, where) for item in value]
    if origin is dict and isinstance(value, dict):
        return {_typed(args[0], k, where): _typed(args[1], v, where) for k, v in value.items()}
    if hint is type(None) and value is None:
        return None
    # bool is an int to Python, never to model.yaml; an int is a float's whole value.
    if hint is float and type(value) in (int, float):
        return float(value)
    if hint in (bool, int, str) and type(value) is hint:
        return value
    raise _bad(where)


def _bad(where: str) -> ManifestError:
    return ManifestError(f"{MANIFEST_FILE} is missing or has a bad value for {where!r}")
