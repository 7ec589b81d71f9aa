"""Every Prometheus metric attnserve exports, defined once.

Names and labels follow the contract; each metric is recorded where its decision is made
(the servicer for requests, the scheduler for queueing and batches).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
# Why queued work was dropped before compute (attnserve_dropped_rows_total's reason label).
DEADLINE, CANCELLED = "deadline", "cancelled"
DROP_REASONS = (DEADLINE, CANCELLED)
# Why a seq2seq decoder batch moved key/value cache bytes (service/seq2seq/cache.py).
CACHE_COPY_REASONS = ("join", "grow", "reorder")
DRAFT_OUTCOMES = ("accepted", "rejected")
_RATIO_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
# The wire a request came on (the protocol label of the per-request metrics).
GRPC, HTTP = "grpc", "http"


class Metrics:
    """The server's metrics in a registry of their own (one per server instance)."""

    def __init__(self, protocols: Iterable[str] = (GRPC,)) -> None:
        self.protocols = tuple(protocols)  # the ones this server listens on
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "attnserve_requests_total",
            "Requests finished, by model, task, gRPC status code (HTTP requests too: the "
            "code their status maps from) and protocol (grpc, http).",
            ["model", "task", "code", "protocol"],
            registry=r,
        )
        self.request_duration = Histogram(
            "attnserve_request_duration_seconds",
            "Time from receiving a request to answering it.",
            ["model", "task", "protocol"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_duration = Histogram(
            "attnserve_queue_duration_seconds",
            "Time a row waited in the scheduler's queue before its batch started.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            "attnserve_inference_duration_seconds",
            "Time onnxruntime spent on one batch.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "attnserve_batch_size",
            "Rows (tokenized sequences) per batch.",
            ["model"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "attnserve_batch_tokens",
            "Tokens per batch, rows x padded length (what the engine computes).",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=r,
        )
        self.batch_padding = Histogram(
            "attnserve_batch_padding_ratio",
            "Share of a batch's tokens that are padding.",
            ["model"],
            buckets=_RATIO_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "attnserve_queue_depth",
            "Rows waiting in the scheduler's queue.",
            ["model"],
            registry=r,
        )
        self.queued_tokens = Gauge(
            "attnserve_queued_tokens",
            "Tokens waiting in the scheduler's queue (the bound is max_queued_tokens).",
            ["model"],
            registry=r,
        )
        self.inflight = Gauge(
            "attnserve_inflight_requests",
            "Requests being served right now.",
            ["model", "task", "protocol"],
            registry=r,
        )
        self.input_tokens = Counter(
            "attnserve_input_tokens_total",
            "Tokens of accepted input, after tokenization.",
            ["model", "task"],
            registry=r,
        )
        self.model_ready = Gauge(
            "attnserve_model_ready",
            "1 when the model is loaded and warmed up, else 0.",
            ["model"],
            registry=r,
        )
        self.dropped_rows = Counter(
            "attnserve_dropped_rows_total",
            "Queued rows dropped before compute, by reason (deadline, cancelled).",
            ["model", "reason"],
            registry=r,
        )
        self.truncated_rows = Counter(
            "attnserve_truncated_rows_total",
            "Rows cut to the model's maximum sequence length.",
            ["model", "task"],
            registry=r,
        )
        # Seq2seq models: batch_size, batch_tokens and inference_duration record their
        # decoder steps (rows are sequences, beams included); these add what is their own.
        self.encoder_batch_size = Histogram(
            "attnserve_encoder_batch_size",
            "Requests encoded together before joining a seq2seq model's decoder batch.",
            ["model"],
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.active_sequences = Gauge(
            "attnserve_active_sequences",
            "Sequences (beams included) in a seq2seq model's decoder batch.",
            ["model"],
            registry=r,
        )
        self.generated_tokens = Counter(
            "attnserve_generated_tokens_total",
            "Output tokens generated by seq2seq models and causal LMs (one per request and "
            "decoder step; a speculative round gives several).",
            ["model"],
            registry=r,
        )
        self.draft_tokens = Counter(
            "attnserve_draft_tokens_total",
            "Tokens a generation model's int8 draft proposed in speculative rounds, by outcome: "
            "accepted (the served graph's greedy search took it) or rejected.",
            ["model", "outcome"],
            registry=r,
        )
        self.kv_cache_copied_bytes = Counter(
            "attnserve_kv_cache_copied_bytes_total",
            "Key/value cache bytes a seq2seq model's decoder batch moved, by reason: join (a "
            "new row's cross-attention cache), grow (buffers doubled), reorder (rows leaving "
            "or beams forking). A decoder step itself writes the cache in place and moves none.",
            ["model", "reason"],
            registry=r,
        )

        # process_cpu_seconds_total and the rest of Prometheus' standard process metrics.
        ProcessCollector(registry=r)
        self._engine_cpu = _EngineCpu()
        r.register(self._engine_cpu)

    def count_engine_cpu(self, read: Callable[[], dict[str, float]]) -> None:
        """Fill attnserve_engine_cpu_seconds_total from `read` (model -> seconds so far),
        called at each scrape. Against process_cpu_seconds_total it tells the CPU a server
        spends outside its engines."""
        self._engine_cpu.read = read

    def start_at_zero(self, model: str, tasks: Iterable[str]) -> None:
        """Create every series of a model that serves `tasks`, at zero.

        A freshly started pod's dashboards and alerts then see its series from the first
        scrape, as Prometheus' instrumentation guidelines ask (series that appear only on the
        first request break rate() and absent() alerts). A status code is known only when a
        request ends, so requests_total starts with code OK alone.
        """
        for task in tasks:
            for protocol in self.protocols:
                self.requests.labels(model, task, "OK", protocol)
                self.request_duration.labels(model, task, protocol)
                self.inflight.labels(model, task, protocol)
            self.input_tokens.labels(model, task)
            self.truncated_rows.labels(model, task)
        for reason in DROP_REASONS:
            self.dropped_rows.labels(model, reason)
        for reason in CACHE_COPY_REASONS:
            self.kv_cache_copied_bytes.labels(model, reason)
        for outcome in DRAFT_OUTCOMES:
            self.draft_tokens.labels(model, outcome)
        for per_model in (
            self.queue_duration, self.inference_duration, self.batch_size, self.batch_tokens,
            self.batch_padding, self.queue_depth, self.queued_tokens, self.model_ready,
            self.encoder_batch_size, self.active_sequences, self.generated_tokens,
        ):  # fmt: skip
            per_model.labels(model)

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics HTTP endpoint in a thread; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)


class _EngineCpu(Collector):
    def __init__(self) -> None:
        self.read: Callable[[], dict[str, float]] = dict  # no engines until a server sets it

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "attnserve_engine_cpu_seconds",
            "CPU time spent inside the model's engines (onnxruntime or OpenVINO runs: the "
            "calling thread and the sessions' own threads), user and system.",
            labels=["model"],
        )
        for model, seconds in self.read().items():
            family.add_metric([model], seconds)
        yield family
