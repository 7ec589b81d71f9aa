from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Span(_message.Message):
    __slots__ = ("text", "score", "start", "end")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    text: str
    score: float
    start: int
    end: int
    def __init__(self, text: _Optional[str] = ..., score: _Optional[float] = ..., start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class TokenWeight(_message.Message):
    __slots__ = ("token", "start", "end", "weight")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    token: str
    start: int
    end: int
    weight: float
    def __init__(self, token: _Optional[str] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., weight: _Optional[float] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("tokens", "method", "target")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenWeight]
    method: str
    target: str
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenWeight, _Mapping]]] = ..., method: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class SummarizeRequest(_message.Message):
    __slots__ = ("text", "model", "max_sentences", "max_new_tokens", "num_beams", "length_penalty", "no_repeat_ngram_size", "explain", "explain_method", "explain_layer")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_SENTENCES_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_BEAMS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_PENALTY_FIELD_NUMBER: _ClassVar[int]
    NO_REPEAT_NGRAM_SIZE_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_METHOD_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_LAYER_FIELD_NUMBER: _ClassVar[int]
    text: str
    model: str
    max_sentences: int
    max_new_tokens: int
    num_beams: int
    length_penalty: float
    no_repeat_ngram_size: int
    explain: bool
    explain_method: str
    explain_layer: int
    def __init__(self, text: _Optional[str] = ..., model: _Optional[str] = ..., max_sentences: _Optional[int] = ..., max_new_tokens: _Optional[int] = ..., num_beams: _Optional[int] = ..., length_penalty: _Optional[float] = ..., no_repeat_ngram_size: _Optional[int] = ..., explain: _Optional[bool] = ..., explain_method: _Optional[str] = ..., explain_layer: _Optional[int] = ...) -> None: ...

class SummarizeResponse(_message.Message):
    __slots__ = ("summary", "sentences", "model", "truncated_sentences", "token_ids", "explanations")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SENTENCES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_SENTENCES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATIONS_FIELD_NUMBER: _ClassVar[int]
    summary: str
    sentences: _containers.RepeatedCompositeFieldContainer[Span]
    model: str
    truncated_sentences: int
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    explanations: _containers.RepeatedCompositeFieldContainer[Explanation]
    def __init__(self, summary: _Optional[str] = ..., sentences: _Optional[_Iterable[_Union[Span, _Mapping]]] = ..., model: _Optional[str] = ..., truncated_sentences: _Optional[int] = ..., token_ids: _Optional[_Iterable[int]] = ..., explanations: _Optional[_Iterable[_Union[Explanation, _Mapping]]] = ...) -> None: ...

class SummarizeChunk(_message.Message):
    __slots__ = ("text", "done", "model")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    text: str
    done: bool
    model: str
    def __init__(self, text: _Optional[str] = ..., done: _Optional[bool] = ..., model: _Optional[str] = ...) -> None: ...

class AnswerRequest(_message.Message):
    __slots__ = ("question", "context", "model", "top_k", "max_answer_length", "doc_stride", "allow_no_answer", "explain", "explain_method", "explain_layer")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_ANSWER_LENGTH_FIELD_NUMBER: _ClassVar[int]
    DOC_STRIDE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_NO_ANSWER_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_METHOD_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_LAYER_FIELD_NUMBER: _ClassVar[int]
    question: str
    context: str
    model: str
    top_k: int
    max_answer_length: int
    doc_stride: int
    allow_no_answer: bool
    explain: bool
    explain_method: str
    explain_layer: int
    def __init__(self, question: _Optional[str] = ..., context: _Optional[str] = ..., model: _Optional[str] = ..., top_k: _Optional[int] = ..., max_answer_length: _Optional[int] = ..., doc_stride: _Optional[int] = ..., allow_no_answer: _Optional[bool] = ..., explain: _Optional[bool] = ..., explain_method: _Optional[str] = ..., explain_layer: _Optional[int] = ...) -> None: ...

class AnswerResponse(_message.Message):
    __slots__ = ("answers", "model", "truncated_sentences", "explanations")
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_SENTENCES_FIELD_NUMBER: _ClassVar[int]
    EXPLANATIONS_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[Span]
    model: str
    truncated_sentences: int
    explanations: _containers.RepeatedCompositeFieldContainer[Explanation]
    def __init__(self, answers: _Optional[_Iterable[_Union[Span, _Mapping]]] = ..., model: _Optional[str] = ..., truncated_sentences: _Optional[int] = ..., explanations: _Optional[_Iterable[_Union[Explanation, _Mapping]]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("texts", "model", "normalize", "explain", "explain_method", "explain_layer")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_METHOD_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_LAYER_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    model: str
    normalize: bool
    explain: bool
    explain_method: str
    explain_layer: int
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., normalize: _Optional[bool] = ..., explain: _Optional[bool] = ..., explain_method: _Optional[str] = ..., explain_layer: _Optional[int] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "model", "dimensions", "truncated_texts", "explanations")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_TEXTS_FIELD_NUMBER: _ClassVar[int]
    EXPLANATIONS_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    model: str
    dimensions: int
    truncated_texts: _containers.RepeatedScalarFieldContainer[int]
    explanations: _containers.RepeatedCompositeFieldContainer[Explanation]
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., model: _Optional[str] = ..., dimensions: _Optional[int] = ..., truncated_texts: _Optional[_Iterable[int]] = ..., explanations: _Optional[_Iterable[_Union[Explanation, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "tasks", "architecture", "max_sequence_length", "providers", "ready", "precision", "error", "dimensions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    tasks: _containers.RepeatedScalarFieldContainer[str]
    architecture: str
    max_sequence_length: int
    providers: _containers.RepeatedScalarFieldContainer[str]
    ready: bool
    precision: str
    error: str
    dimensions: int
    def __init__(self, name: _Optional[str] = ..., tasks: _Optional[_Iterable[str]] = ..., architecture: _Optional[str] = ..., max_sequence_length: _Optional[int] = ..., providers: _Optional[_Iterable[str]] = ..., ready: _Optional[bool] = ..., precision: _Optional[str] = ..., error: _Optional[str] = ..., dimensions: _Optional[int] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "default_model")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_MODEL_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    default_model: str
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ..., default_model: _Optional[str] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("prompt", "model", "max_new_tokens", "num_beams", "temperature", "top_p", "seed", "stop")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_BEAMS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    model: str
    max_new_tokens: int
    num_beams: int
    temperature: float
    top_p: float
    seed: int
    stop: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, prompt: _Optional[str] = ..., model: _Optional[str] = ..., max_new_tokens: _Optional[int] = ..., num_beams: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., seed: _Optional[int] = ..., stop: _Optional[_Iterable[str]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("text", "model", "token_ids", "finish_reason", "prompt_tokens")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    text: str
    model: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    finish_reason: str
    prompt_tokens: int
    def __init__(self, text: _Optional[str] = ..., model: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ..., finish_reason: _Optional[str] = ..., prompt_tokens: _Optional[int] = ...) -> None: ...

class GenerateChunk(_message.Message):
    __slots__ = ("text", "done", "model", "finish_reason")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    text: str
    done: bool
    model: str
    finish_reason: str
    def __init__(self, text: _Optional[str] = ..., done: _Optional[bool] = ..., model: _Optional[str] = ..., finish_reason: _Optional[str] = ...) -> None: ...
