"""The names model.yaml and the graphs beside it agree on: files, model kinds, tensors."""

from __future__ import annotations

FORMAT_VERSION = 1
MANIFEST_FILE = "model.yaml"
MODEL_FILE = "model.onnx"
# An encoder's graph with its attention probabilities as outputs (export/explain.py).
EXPLAIN_FILE = "explain.onnx"
ENCODER_FILE = "encoder_model.onnx"
DECODER_FILE = "decoder_model.onnx"
TOKENIZER_FILE = "tokenizer.json"

# export_task: what kind of model it is, and so which serving tasks it may list.
FEATURE_EXTRACTION = "feature-extraction"
SPAN_QA = "question-answering"
SUMMARIZATION = "summarization"
TEXT_GENERATION = "text-generation"
ENCODER_TASKS = ("embed", "summarize", "answer")
KIND_TASKS = {
    FEATURE_EXTRACTION: ENCODER_TASKS,
    SPAN_QA: ("answer",),
    SUMMARIZATION: ("summarize", "generate"),
    TEXT_GENERATION: ("generate", "summarize"),
}

# Graph tensor names.
LAST_HIDDEN_STATE = "last_hidden_state"
SPAN_OUTPUTS = ["start_logits", "end_logits"]
ENCODER_INPUTS = ["input_ids", "attention_mask"]  # a seq2seq encoder's
LOGITS = "logits"
PAST, PRESENT, CROSS = "past", "present", "cross"  # the decoder's key/value cache kinds


def attention_names(layers: int) -> list[str]:
    """The explanation graph's outputs: `attention.{i}` per layer, in graph order."""
    return [f"attention.{i}" for i in range(layers)]


def cache_names(kind: str, layers: int) -> list[str]:
    """`{kind}.{i}.key`, `{kind}.{i}.value` for every layer, in graph order."""
    return [f"{kind}.{i}.{part}" for i in range(layers) for part in ("key", "value")]


def encoder_outputs(layers: int) -> list[str]:
    """A seq2seq encoder's outputs: the hidden states, then every layer's cross cache."""
    return [LAST_HIDDEN_STATE, *cache_names(CROSS, layers)]


def decoder_inputs(layers: int) -> list[str]:
    """The decoder step's inputs in graph order (export/seq2seq.py says what each holds)."""
    step = ["input_ids", "position_ids", "encoder_attention_mask", *cache_names(PAST, layers)]
    return [*step, *cache_names(CROSS, layers)]


def decoder_outputs(layers: int) -> list[str]:
    return [LOGITS, *cache_names(PRESENT, layers)]


def causal_inputs(layers: int) -> list[str]:
    """A causal LM step's inputs in graph order (export/causal.py says what each holds)."""
    return ["input_ids", "position_ids", "logit_positions", *cache_names(PAST, layers)]


def causal_outputs(layers: int) -> list[str]:
    return decoder_outputs(layers)
