"""Seq2seq generation throughput and time to first token: one request alone, 16 at once
through the continuous batcher, and the same 16 one at a time; on two shapes.

A random T5 of t5-small's shape (6 + 6 layers, d_model 512, 8 heads, vocabulary 32128) and a
random BART of bart-base's (6 + 6 layers, d_model 768, 12 heads, ffn 3072, vocabulary 50265)
are built from their configs, exported with `attnserve export --task summarization` into a
temporary folder and run in this process through the server's own classes (graphs, batcher,
greedy search): what the decoder loop sustains, without gRPC. End-of-sequence is banned
until the last token (min_length), so every request makes exactly `new_tokens` tokens; each
system's count is checked. Beside it, CTranslate2 (bench/ctranslate2_peer.py) and
transformers' generate() on the same source folder and texts.

Every system is warmed up, untimed, on two requests alone and the 16 at once, so that the
timed runs find its memory pools grown to the batch's size.

Time to first token (TTFT): attnserve, from calling `batcher.generate` to its first
`on_token` callback; CTranslate2, from calling translate_batch to that request's first step
callback; generate(), from calling it to its streamer's first put after the prompt's. Alone:
the median over the 16 texts run one at a time; loaded: the median over the 16 run at once.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import ceiling, ctranslate2_peer
from bench.drafts import draft_share
from bench.paired import paired_rounds
from service import model_format
from service.metrics import CACHE_COPY_REASONS, Metrics
from service.runtime.precision import Route
from service.seq2seq.batch import DecoderBatch
from service.seq2seq.batcher import ContinuousBatcher
from service.seq2seq.graphs import Seq2SeqGraphs
from service.seq2seq.search import Greedy, SearchSettings
from service.seq2seq.spec import Seq2SeqSpec
from service.seq2seq.speculation import LOOKUP, Speculator
from service.tasks.tokenizer import TextTokenizer

T5_SMALL = {
    "d_model": 512,
    "d_kv": 64,
    "d_ff": 2048,
    "num_layers": 6,
    "num_decoder_layers": 6,
    "num_heads": 8,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "vocab_size": 32128,
    "n_positions": 512,
}
BART_BASE = {
    "d_model": 768,
    "encoder_layers": 6,
    "decoder_layers": 6,
    "encoder_attention_heads": 12,
    "decoder_attention_heads": 12,
    "encoder_ffn_dim": 3072,
    "decoder_ffn_dim": 3072,
    "vocab_size": 50265,
    "max_position_embeddings": 1024,
}
CONCURRENT = 16
# The precisions attnserve's seq2seq export writes, each measured as its own entry (the
# report and bench.goals key by these names); one the export left out is reported as such.
PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class Shape:
    name: str  # for the report
    family: str  # harness.tiny_seq2seq.build_<family>
    sizes: dict[str, int]
    spread: float  # the weights' std: near d_model ** -0.5 for T5, BART's own init_std


SHAPES = {
    "t5": Shape("random t5-small shape", "t5", T5_SMALL, T5_SMALL["d_model"] ** -0.5),
    "bart": Shape("random bart-base shape", "bart", BART_BASE, 0.02),
}


def seq2seq_section(
    results: dict[str, Any],
    threads: int,
    log: Callable[[str], None] = print,
    new_tokens: int = 32,
) -> None:
    """Fill results["seq2seq"] with tokens/s and TTFT figures per model (see the module
    docstring): {"new_tokens", "threads", "seconds", "models": {"t5": ..., "bart": ...}}."""
    started = time.perf_counter()
    models = {}
    for key, shape in SHAPES.items():
        models[key] = _model_figures(key, shape, threads, log, new_tokens)
        log(f"seq2seq {key}: {models[key]}")
    from bench.__main__ import cpu_name

    results["seq2seq"] = {
        "machine": cpu_name(),
        "new_tokens": new_tokens,
        "threads": threads,
        "concurrent": CONCURRENT,
        "models": models,
        "seconds": time.perf_counter() - started,
    }


def _model_figures(
    key: str,
    shape: Shape,
    threads: int,
    log: Callable[[str], None],
    new_tokens: int,
) -> dict[str, Any]:
    from export.cli import main as export_main
    from harness import tiny_seq2seq

    build = getattr(tiny_seq2seq, f"build_{shape.family}")
    # One folder per model, gone before the next: bart-base's weights are 0.5 GB a copy.
    with tempfile.TemporaryDirectory(prefix=f"attnserve-bench-seq2seq-{key}-") as tmp:
        root = Path(tmp)
        log(f"seq2seq: building and exporting a {shape.name} model")
        source = build(root / "src", sizes=shape.sizes, spread=shape.spread)
        if export_main([str(source), "--task", "summarization", "--out", str(root / key)]):
            raise RuntimeError(f"seq2seq bench: export of the {shape.name} failed")
        manifest = model_format.read(root / key)
        fp32 = manifest.running("fp32").seq2seq
        assert fp32 is not None
        weight_bytes = ceiling.step_weight_bytes(root / key / fp32.decoder_file)
        tokenizer = TextTokenizer(
            root / key / manifest.tokenizer_file, manifest.max_sequence_length
        )
        texts = tiny_seq2seq.sentences(CONCURRENT, seed=11, min_words=20)
        sources = [e.ids for e in tokenizer.encode(texts)]
        attnserve = {}
        skipped = {}
        for precision in PRECISIONS:
            if precision not in manifest.variants:
                skipped[precision] = manifest.skipped_variants.get(precision, "not exported")
                continue
            spec = manifest.running(precision).seq2seq
            assert spec is not None
            route = Route(precision, ("cpu",), ())
            graphs = Seq2SeqGraphs(f"bench-{key}", root / key, spec, route, threads)
            drafts = (
                _speculator(manifest, root / key, key, threads) if precision == "fp32" else None
            )
            figures = asyncio.run(_measure(key, graphs, spec, sources, new_tokens, drafts))
            if drafts is not None:  # the same, one at a time without drafts
                plain = asyncio.run(
                    _measure(key, graphs, spec, sources, new_tokens, alone_only=True)
                )
                figures["sequential_16_no_draft_tokens_per_s"] = plain["sequential_16_tokens_per_s"]
            attnserve[precision] = figures
            del graphs, drafts  # their sessions' memory, before the peers load theirs
        log(f"seq2seq {key}: CTranslate2 (side venv build/ct2-venv) and transformers generate()")
        ct2 = ctranslate2_peer.measure(source, root, texts, new_tokens, threads)
        generate = _generate_rates(source, texts, new_tokens, threads)
        log(f"seq2seq {key}: attnserve fp32 and CTranslate2 fp32 one at a time, paired rounds")
        graphs = Seq2SeqGraphs(
            f"bench-{key}", root / key, fp32, Route("fp32", ("cpu",), ()), threads
        )

        drafts = _speculator(manifest, root / key, key, threads)

        def ours() -> float:
            figures = asyncio.run(
                _measure(key, graphs, fp32, sources, new_tokens, drafts, alone_only=True)
            )
            return float(figures["sequential_16_tokens_per_s"])

        def theirs() -> float:
            return ctranslate2_peer.one_at_a_time(source, root, texts, new_tokens, threads)

        paired = paired_rounds(ours, theirs, threads)
    return {
        "model": shape.name,
        "fp32_ceiling": {"weight_bytes": weight_bytes},
        "paired_one_at_a_time": paired,
        "attnserve": attnserve,
        "skipped_variants": skipped,
        "ctranslate2": ct2,
        "generate": generate,
    }


def _speculator(
    manifest: model_format.Manifest, folder: Path, key: str, threads: int
) -> Speculator | None:
    """The int8 variant as the draft of speculative rounds, with lookups, as the server loads it."""
    if "int8" not in manifest.variants:
        return None
    spec = manifest.running("int8").seq2seq
    assert spec is not None
    route = Route("int8", ("cpu",), ())
    draft = Seq2SeqGraphs(f"bench-{key}.draft", folder, spec, route, threads)
    return Speculator(draft, lookup=LOOKUP)


def _steps(metrics: Metrics, model: str) -> float:
    """Decoder steps taken so far (attnserve_batch_size's count)."""
    count = metrics.registry.get_sample_value("attnserve_batch_size_count", {"model": model})
    return count or 0.0


def _median_ms(seconds: list[float]) -> float:
    return 1e3 * statistics.median(seconds)


def _generate_rates(
    source: Path, texts: list[str], new_tokens: int, threads: int
) -> dict[str, float]:
    """transformers' generate() on the seq2seq source (its output starts with the decoder
    start token)."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    torch.set_num_threads(threads)
    model = AutoModelForSeq2SeqLM.from_pretrained(str(source)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    return generate_rates(model, tokenizer, texts, new_tokens, lambda inputs: 1)


def generate_rates(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    new_tokens: int,
    skipped: Callable[[Any], int],
) -> dict[str, float]:
    """transformers' generate() in PyTorch, greedy, exactly `new_tokens` per request: one
    request at a time, and all as one padded batch; `skipped(inputs)` is how many leading
    ids of its output are not generated (a seq2seq start token, a causal LM's prompt)."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    class FirstToken(BaseStreamer):
        """The time of the first generated token: generate() puts the prompt's (or the
        decoder start's) ids first, then each step's tokens (every row of a batch at once)."""

        def __init__(self) -> None:
            self.puts = 0
            self.at = 0.0

        def put(self, value: Any) -> None:
            self.puts += 1
            if self.puts == 2:
                self.at = time.perf_counter()

        def end(self) -> None:
            pass

    eos = model.generation_config.eos_token_id
    options = {"do_sample": False, "num_beams": 1, "max_new_tokens": new_tokens,
               "min_new_tokens": new_tokens}  # fmt: skip

    def run(batch: list[str]) -> tuple[float, float]:
        """Seconds for the batch, and to its first token."""
        inputs = tokenizer(batch, return_tensors="pt", padding=True)
        streamer = FirstToken()
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**inputs, **options, streamer=streamer)
        seconds = time.perf_counter() - started
        made = out[:, skipped(inputs) :]
        if made.shape[1] != new_tokens or bool(torch.isin(made, torch.tensor(eos)).any()):
            raise RuntimeError(f"generate() made {made.shape[1]} tokens, not {new_tokens}")
        return seconds, streamer.at - started

    for text in texts[:2]:  # warm-up, as in _measure
        run([text])
    run(texts)
    alone = [run([text]) for text in texts]
    together, first = run(texts)
    tokens = new_tokens * len(texts)
    return {
        "one_at_a_time_tokens_per_s": tokens / sum(s for s, _ in alone),
        "batch_tokens_per_s": tokens / together,
        "one_at_a_time_ttft_ms": _median_ms([t for _, t in alone]),
        # A padded batch: every request's first token comes at the same step.
        "batch_ttft_ms": 1e3 * first,
    }


async def _measure(
    key: str,
    graphs: Seq2SeqGraphs,
    spec: Seq2SeqSpec,
    sources: list[np.ndarray],
    new_tokens: int,
    drafts: Speculator | None = None,
    alone_only: bool = False,
) -> dict[str, Any]:
    """Every figure of one variant, or (`alone_only`, a paired round) one at a time only;
    `drafts`: speculative rounds for a request alone, as the server runs fp32."""
    settings = SearchSettings(
        decoder_start_token_id=spec.decoder_start_token_id,
        eos_token_ids=spec.eos_token_ids,
        max_new_tokens=new_tokens,
        num_beams=1,
        length_penalty=1.0,
        early_stopping=False,
        no_repeat_ngram_size=0,
        min_length=new_tokens + 1,  # no EOS: every request makes new_tokens tokens
        forced_bos_token_id=None,
        forced_eos_token_id=None,
    )
    metrics = Metrics()
    batcher = ContinuousBatcher(
        f"bench-{key}", lambda: DecoderBatch(graphs, drafts), 64, 256, metrics
    )

    def copied() -> dict[str, float]:
        """KV cache bytes the batcher moved so far, by reason (0 for a step without joins,
        growth or rows leaving: the step writes its cache in place)."""
        return {
            reason: metrics.registry.get_sample_value(
                "attnserve_kv_cache_copied_bytes_total", {"model": f"bench-{key}", "reason": reason}
            )
            or 0.0
            for reason in CACHE_COPY_REASONS
        }

    async def one(source: np.ndarray, started: float) -> float:
        """Seconds from `started` to this request's first token."""
        first: list[float] = []

        def on_token(_: int) -> None:
            if not first:
                first.append(time.perf_counter())

        made = await batcher.generate(source, Greedy(settings), on_token=on_token)
        if len(made) != new_tokens or not first:
            raise RuntimeError(f"attnserve made {len(made)} tokens, not {new_tokens}")
        return first[0] - started

    async def run(batch: list[np.ndarray]) -> tuple[float, list[float]]:
        """Seconds for the batch, all sent at once, and each request's TTFT."""
        started = time.perf_counter()
        ttft = await asyncio.gather(*(one(s, started) for s in batch))
        return time.perf_counter() - started, list(ttft)

    for source in sources[:2]:  # warm-up: alone, then the 16 at once (the pools' peak)
        await run([source])
    tokens = new_tokens * len(sources)
    if alone_only:
        alone = [await run([source]) for source in sources]
        await batcher.close()
        return {"sequential_16_tokens_per_s": tokens / sum(s for s, _ in alone)}
    await run(sources)
    one_seconds, one_ttft = await run(sources[:1])
    before = copied()
    steps_before = _steps(metrics, f"bench-{key}")
    together, loaded_ttft = await run(sources)
    moved = {r: v - before[r] for r, v in copied().items()}
    steps = _steps(metrics, f"bench-{key}") - steps_before
    alone = [await run([source]) for source in sources]
    await batcher.close()
    figures: dict[str, Any] = {
        "single_tokens_per_s": new_tokens / one_seconds,
        "concurrent_16_tokens_per_s": tokens / together,
        "sequential_16_tokens_per_s": tokens / sum(s for s, _ in alone),
        **draft_share(metrics, f"bench-{key}"),
        "single_ttft_ms": 1e3 * one_ttft[0],
        "concurrent_16_ttft_ms": _median_ms(loaded_ttft),
        "sequential_16_ttft_ms": _median_ms([t[0] for _, t in alone]),
        # The 16 concurrent: cache bytes moved per decoder step, by reason, over its steps.
        "concurrent_16_steps": steps,
        "concurrent_16_copied_bytes_per_step": {r: v / max(1, steps) for r, v in moved.items()},
    }
    figures["batching_speedup"] = (
        figures["concurrent_16_tokens_per_s"] / figures["sequential_16_tokens_per_s"]
    )
    return figures
