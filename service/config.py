"""Server configuration: command-line flags over ATTNSERVE_* variables over defaults.

Every knob is a field here, validated once at start; a bad value stops the server with a
one-line message that names it (see ``load_settings``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

import grpc
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROVIDER_NAMES = ("tensorrt", "cuda", "openvino", "cpu")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")

# Token budgets per execution provider, chosen from `make bench` (docs/benchmarks.md): on CPU
# big batches lose cache locality; GPUs want far larger ones.
DEFAULT_BATCH_TOKENS = {"cpu": 512, "openvino": 512, "cuda": 16384, "tensorrt": 16384}
# Padding a row may add to a batch, as a share of its padded length. On CPU a padded token
# costs what a real one does; on GPUs padding is nearly free next to a bigger batch.
DEFAULT_PADDING_SLACK = {"cpu": 0.125, "openvino": 0.125, "cuda": 4.0, "tensorrt": 4.0}
# Providers that compute on the CPU's cores.
CPU_PROVIDERS = frozenset({"cpu", "openvino"})
# Those whose sessions each own their threads, so that one session per core keeps a batch in
# flight on every core. OpenVINO's CPU plugin computes on one oneTBB pool for the whole
# process: sessions of one thread each only split it. One session with every thread served
# 269 req/s where two of one thread served 177 (make bench, AMD EPYC with avx512_bf16, bf16
# through OpenVINO, 64 clients).
SESSION_PER_CORE = frozenset({"cpu"})


class ConfigError(ValueError):
    """A configuration value is invalid; the message names it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ATTNSERVE_", extra="forbid")

    models: Path = Field(Path("models"), description="model repository directory")
    default_model: str = Field("minilm", description="model used when a request names none")
    grpc_host: str = Field("0.0.0.0", description="interface the gRPC server binds")
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0: pick a free one)")
    http_host: str = Field("0.0.0.0", description="interface the HTTP server binds")
    http_port: int = Field(
        8000,
        ge=-1,
        le=65535,
        description="HTTP port: OpenAI embeddings, KServe V2 REST, JSON task routes (0: pick "
        "a free one; -1: no HTTP)",
    )
    metrics_host: str = Field("0.0.0.0", description="interface the metrics endpoint binds")
    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus /metrics port")
    providers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(PROVIDER_NAMES),
        description="execution providers to try, in order (tensorrt, cuda, openvino, cpu)",
    )
    precision: Literal["auto", "fp32", "bf16", "fp16", "int8"] = Field(
        "auto",
        description="auto: each model's fastest variant this machine runs within cosine "
        "0.9999 of fp32; or one precision for every model (a model or machine that cannot "
        "run it stops the server)",
    )
    trt_cache_dir: Path = Field(
        Path(tempfile.gettempdir()) / "attnserve-tensorrt",
        description="TensorRT engine cache (a volume keeps engines across restarts)",
    )
    intra_op_threads: int = Field(
        0, ge=0, le=256, description="onnxruntime threads per session (0: one per core)"
    )
    sessions: int = Field(
        0,
        ge=0,
        le=64,
        description="onnxruntime sessions per model, batches in flight (0: one per core on "
        "the CPU provider, 1 on OpenVINO and GPUs)",
    )
    max_batch_tokens: int | None = Field(
        None, ge=1, description="batch budget: rows x padded length"
    )
    padding_slack: float | None = Field(
        None,
        gt=0,
        le=100,
        description="padding a row may add to a batch, as a share of the padded length",
    )
    max_batch_size: int = Field(64, ge=1, le=4096, description="most rows in one batch")
    batching: Literal["tokens", "count"] = Field(
        "tokens",
        description="tokens: similar lengths under a token budget; count: arrival order, "
        "max-batch-size rows padded to the longest (a baseline for comparison)",
    )
    max_queue_delay_ms: float = Field(
        2.0, ge=0, le=10_000, description="longest a row waits for a batch to fill"
    )
    max_queue_wait_ms: float = Field(
        2000.0,
        gt=0,
        le=600_000,
        description="refuse requests (RESOURCE_EXHAUSTED) when the queued work would take "
        "longer than this",
    )
    max_queued_tokens: int = Field(
        262_144, ge=1, description="queue bound; past it requests get RESOURCE_EXHAUSTED"
    )
    max_sequences: int = Field(
        256,
        ge=1,
        description="seq2seq models and causal LMs: most sequences (beams count each) "
        "generating or waiting; past it requests get RESOURCE_EXHAUSTED",
    )
    prefill_tokens: int = Field(
        128,
        ge=1,
        le=8192,
        description="causal LMs: most prompt tokens prefilled between two decode steps, "
        "which bounds how long a new prompt delays the tokens of running requests",
    )
    draft_tokens: int = Field(
        6,
        ge=0,
        le=16,
        description="seq2seq models and causal LMs served on the CPU at a precision other than "
        "int8: most tokens the int8 variant drafts per speculative round for a greedy "
        "request alone in its batch (the same tokens, faster); 0: off",
    )
    draft_lookup: int = Field(
        3,
        ge=0,
        le=8,
        description="speculative rounds: longest run of a request's latest tokens looked up "
        "in its prompt and output so far, whose earlier continuation is drafted for no model "
        "call (prompt lookup); also for a model without an int8 variant, or served int8; 0: off",
    )
    max_text_chars: int = Field(
        200_000, ge=1, description="longest text (code points) a request may send"
    )
    max_texts: int = Field(1024, ge=1, description="most texts in one Embed request")
    grace_period_s: float = Field(
        30.0, ge=0, le=3600, description="SIGTERM: time to finish accepted work"
    )
    drain_linger_s: float = Field(
        1.0,
        ge=0,
        le=600,
        description="SIGTERM: after the last accepted request, keep refusing new calls "
        "with UNAVAILABLE this long before closing the port",
    )
    max_message_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="largest gRPC message (or HTTP request body) accepted or sent",
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR")
    tls_cert: Path | None = Field(None, description="PEM server certificate: serve TLS")
    tls_key: Path | None = Field(None, description="PEM private key of --tls-cert")
    tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle: require client certificates signed by it (mTLS)"
    )
    auth_token: SecretStr | None = Field(
        None,
        description="require 'authorization: Bearer TOKEN' (health stays open); needs TLS "
        "unless --allow-insecure-token",
    )
    allow_insecure_token: bool = Field(
        False,
        description="accept --auth-token without TLS, for meshes whose sidecar terminates TLS",
    )

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.replace(" ", ",").split(",") if part]
        return value

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, value: list[str]) -> list[str]:
        names = [name.lower() for name in value]
        unknown = [name for name in names if name not in PROVIDER_NAMES]
        if unknown or not names:
            raise ValueError(f"must be a list of {', '.join(PROVIDER_NAMES)}; got {value}")
        return names

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @field_validator("auth_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("tls_cert", "tls_key", "tls_client_ca")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("is not a readable file")
        return value

    # Cross-field rules: their messages name the flags themselves (load_settings prints
    # them as they are, without the values: one of them is a secret).
    @model_validator(mode="after")
    def _tls_and_token(self) -> Settings:
        if self.tls_cert is not None and self.tls_key is None:
            raise ValueError("--tls-cert needs --tls-key (ATTNSERVE_TLS_KEY)")
        if self.tls_key is not None and self.tls_cert is None:
            raise ValueError("--tls-key needs --tls-cert (ATTNSERVE_TLS_CERT)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("--tls-client-ca needs --tls-cert and --tls-key")
        if self.auth_token is not None and self.tls_cert is None and not self.allow_insecure_token:
            raise ValueError(
                "--auth-token (ATTNSERVE_AUTH_TOKEN) needs TLS (--tls-cert and --tls-key): "
                "a token sent in plaintext can be read on the way; pass --allow-insecure-token "
                "only where a sidecar or mesh terminates TLS in front of the server"
            )
        return self

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """TLS (and mTLS with a client CA) credentials, or None for plaintext."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        pair = (self.tls_key.read_bytes(), self.tls_cert.read_bytes())
        client_ca = self.tls_client_ca.read_bytes() if self.tls_client_ca else None
        return grpc.ssl_server_credentials(
            [pair], root_certificates=client_ca, require_client_auth=client_ca is not None
        )

    @property
    def serves_http(self) -> bool:
        return self.http_port != -1

    def batch_tokens_for(self, provider: str) -> int:
        """The token budget for a model running on `provider` (a PROVIDER_NAMES entry)."""
        return self.max_batch_tokens or DEFAULT_BATCH_TOKENS[provider]

    def padding_slack_for(self, provider: str) -> float:
        return self.padding_slack or DEFAULT_PADDING_SLACK[provider]

    def sessions_for(self, provider: str) -> int:
        if self.sessions:
            return self.sessions
        return self.threads() if provider in SESSION_PER_CORE else 1

    def threads(self) -> int:
        return self.intra_op_threads or (os.cpu_count() or 1)


# Fields whose values never appear in a message or a log line.
SECRET_FIELDS = frozenset(
    name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)
)


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def load_settings(**flags: Any) -> Settings:
    """Settings from flags (which win) and the environment; ConfigError names a bad value.

    The message names the flag and its variable, and shows the value given unless the field
    is a secret; a cross-field rule's message names its flags itself.
    """
    try:
        return Settings(**flags)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:
            raise ConfigError(reason) from None
        field = str(first["loc"][0])
        shown = "" if field in SECRET_FIELDS else f" (got {first.get('input')!r})"
        raise ConfigError(
            f"invalid {flag_name(field)} / ATTNSERVE_{field.upper()}: {reason}{shown}"
        ) from None
