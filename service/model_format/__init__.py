"""model.yaml, the record `attnserve export` writes beside the graphs and the server reads.

Defined once, here, for both sides:

- names: the file names, the model kinds (`export_task`) and the serving tasks each may
  list, the graphs' tensor names (the decoder's key/value cache among them);
- records: the dataclasses `write` dumps (their fields are model.yaml's keys, in order) and
  the file hash;
- reading: `read` (what serving needs, validated, the named files hashed), `check_files`,
  and `read_record` (the whole record, typed, as `write` was given it). Every problem is a
  ManifestError with a one-line message.

Only yaml, hashlib, dataclasses and pathlib: the exporter and the server both import it, and
the serving path never imports torch or transformers.
"""

from service.model_format.names import (
    CROSS,
    DECODER_FILE,
    ENCODER_FILE,
    ENCODER_INPUTS,
    ENCODER_TASKS,
    EXPLAIN_FILE,
    FEATURE_EXTRACTION,
    FORMAT_VERSION,
    KIND_TASKS,
    LAST_HIDDEN_STATE,
    LOGITS,
    MANIFEST_FILE,
    MODEL_FILE,
    PAST,
    PRESENT,
    SPAN_OUTPUTS,
    SPAN_QA,
    SUMMARIZATION,
    TOKENIZER_FILE,
    attention_names,
    cache_names,
    decoder_inputs,
    decoder_outputs,
    encoder_outputs,
)
from service.model_format.reading import (
    ExplainSpec,
    Manifest,
    ManifestError,
    Seq2SeqSpec,
    VariantSpec,
    check_files,
    read,
    read_record,
)
from service.model_format.records import (
    RECORDS,
    EncoderManifest,
    ExplainGraph,
    Generation,
    ManifestHeader,
    Parity,
    Quantization,
    Record,
    Seq2SeqManifest,
    Seq2SeqParity,
    Seq2SeqVariant,
    Source,
    SpanManifest,
    SpanSettings,
    Variant,
    sha256_file,
    write,
)

__all__ = [
    "CROSS",
    "DECODER_FILE",
    "ENCODER_FILE",
    "ENCODER_INPUTS",
    "ENCODER_TASKS",
    "EXPLAIN_FILE",
    "FEATURE_EXTRACTION",
    "FORMAT_VERSION",
    "KIND_TASKS",
    "LAST_HIDDEN_STATE",
    "LOGITS",
    "MANIFEST_FILE",
    "MODEL_FILE",
    "PAST",
    "PRESENT",
    "RECORDS",
    "SPAN_OUTPUTS",
    "SPAN_QA",
    "SUMMARIZATION",
    "TOKENIZER_FILE",
    "EncoderManifest",
    "ExplainGraph",
    "ExplainSpec",
    "Generation",
    "Manifest",
    "ManifestError",
    "ManifestHeader",
    "Parity",
    "Quantization",
    "Record",
    "Seq2SeqManifest",
    "Seq2SeqParity",
    "Seq2SeqSpec",
    "Seq2SeqVariant",
    "Source",
    "SpanManifest",
    "SpanSettings",
    "Variant",
    "VariantSpec",
    "attention_names",
    "cache_names",
    "check_files",
    "decoder_inputs",
    "decoder_outputs",
    "encoder_outputs",
    "read",
    "read_record",
    "sha256_file",
    "write",
]
