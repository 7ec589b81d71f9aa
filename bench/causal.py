"""Decoder-only generation throughput, time to first token and the prefill stall, on a
random SmolLM2-135M-shaped Llama and a random GPT-2-small-shaped GPT-2.

Each source (bench/causal_models.py) is exported with `attnserve export --task
text-generation` and run in this process through the server's own classes (step graph,
continuous batcher with chunked prefill, greedy search): what the loop sustains, without
gRPC. EOS is never chosen (min_length past the end), so every request makes exactly
`new_tokens` tokens. Beside it, CTranslate2 (fp32 and int8, side venv) and transformers'
generate() on the same folder and prompts (bench/causal_peers.py).

- one request at a time: the 16 prompts (mixed lengths) one after another; fp32 as the
  server runs it, with its int8 variant drafting speculative rounds (and without, beside);
- 16 concurrent: the 16 sent at once through the batcher (prefill and decode together);
- TTFT: from `batcher.generate` to the first token, alone and under the 16;
- the prefill stall: 8 sequences decoding, then a prompt of STALL_PROMPT tokens joins; the
  longest gap between two tokens of the running sequences while it goes in, against their
  median gap before it, and one loop call's bound (a decode step plus one prefill budget).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import causal_models, causal_peers, ceiling
from bench.drafts import draft_share
from bench.paired import paired_rounds
from service import model_format
from service.causal.batch import PREFILL_TOKENS, CausalBatch
from service.causal.graphs import CausalGraphs
from service.metrics import Metrics
from service.model_format import CausalSpec
from service.runtime.precision import Route
from service.seq2seq.batcher import ContinuousBatcher
from service.seq2seq.search import Greedy, SearchSettings
from service.seq2seq.speculation import LOOKUP, Speculator
from service.tasks.tokenizer import TextTokenizer

CONCURRENT = 16
PRECISIONS = ("fp32", "int8")
STALL_RUNNING = 8
STALL_PROMPT = 1000
SHAPES: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "smollm2": ("random SmolLM2-135M shape (Llama, GQA 9/3, tied)", causal_models.smollm2_135m),
    "gpt2": ("random GPT-2 small shape", causal_models.gpt2_small),
}


def causal_section(
    results: dict[str, Any], threads: int, log: Callable[[str], None] = print, new_tokens: int = 32
) -> None:
    """Fill results["causal"]: {"new_tokens", "threads", "concurrent", "seconds", "models"}."""
    started = time.perf_counter()
    models = {}
    for key, (name, build) in SHAPES.items():
        models[key] = _model_figures(key, name, build, threads, log, new_tokens)
        log(f"causal {key}: {models[key]}")
    from bench.__main__ import cpu_name

    results["causal"] = {
        "machine": cpu_name(),
        "new_tokens": new_tokens,
        "threads": threads,
        "concurrent": CONCURRENT,
        "prefill_tokens": PREFILL_TOKENS,
        "models": models,
        "seconds": time.perf_counter() - started,
    }


def _model_figures(
    key: str,
    name: str,
    build: Callable[[Path], Path],
    threads: int,
    log: Callable[[str], None],
    new_tokens: int,
) -> dict[str, Any]:
    from export.cli import main as export_main

    with tempfile.TemporaryDirectory(prefix=f"attnserve-bench-causal-{key}-") as tmp:
        root = Path(tmp)
        log(f"causal: building and exporting a {name} model")
        source = build(root / "src")
        if export_main([str(source), "--task", "text-generation", "--out", str(root / key)]):
            raise RuntimeError(f"causal bench: export of the {name} failed")
        manifest = model_format.read(root / key)
        assert manifest.causal is not None
        fp32 = manifest.running("fp32").causal
        assert fp32 is not None
        weight_bytes = ceiling.step_weight_bytes(root / key / fp32.decoder_file)
        tokenizer = TextTokenizer(
            root / key / manifest.tokenizer_file, manifest.causal.context_window
        )
        prompts = causal_models.prompts(CONCURRENT, seed=11)
        ids = [tokenizer.encode_whole(p) for p in prompts]
        attnserve: dict[str, Any] = {}
        for precision in PRECISIONS:
            if precision not in manifest.variants:
                attnserve[precision] = {"skipped": manifest.skipped_variants.get(precision)}
                continue
            spec = manifest.running(precision).causal
            assert spec is not None
            route = Route(precision, ("cpu",), ())
            graphs = CausalGraphs(f"bench-{key}", root / key, spec, route, threads)
            drafts = (
                _speculator(manifest, root / key, key, threads) if precision == "fp32" else None
            )
            figures = asyncio.run(_measure(key, graphs, spec, ids, new_tokens, drafts))
            if drafts is not None:  # the same, one at a time without drafts
                plain = asyncio.run(_measure(key, graphs, spec, ids, new_tokens, alone_only=True))
                figures["one_at_a_time_no_draft_tokens_per_s"] = plain["one_at_a_time_tokens_per_s"]
            attnserve[precision] = figures
            del graphs, drafts
        log(f"causal {key}: CTranslate2 (side venv) and transformers generate()")
        ct2 = causal_peers.ctranslate2_generate(source, root, prompts, new_tokens, threads)
        generate = causal_peers.generate_baseline(source, prompts, new_tokens, threads)
        log(f"causal {key}: attnserve fp32 and CTranslate2 fp32 one at a time, paired rounds")
        graphs = CausalGraphs(
            f"bench-{key}", root / key, fp32, Route("fp32", ("cpu",), ()), threads
        )
        drafts = _speculator(manifest, root / key, key, threads)

        def ours() -> float:
            figures = asyncio.run(
                _measure(key, graphs, fp32, ids, new_tokens, drafts, alone_only=True)
            )
            return float(figures["one_at_a_time_tokens_per_s"])

        def theirs() -> float:
            return causal_peers.ctranslate2_one_at_a_time(
                source, root, prompts, new_tokens, threads
            )

        paired = paired_rounds(ours, theirs, threads)
    return {
        "model": name,
        "fp32_ceiling": {"weight_bytes": weight_bytes},
        "paired_one_at_a_time": paired,
        "prompt_tokens": [len(i) for i in ids],
        "attnserve": attnserve,
        "ctranslate2": ct2,
        "generate": generate,
    }


def _speculator(
    manifest: model_format.Manifest, folder: Path, key: str, threads: int
) -> Speculator | None:
    """The int8 variant as the draft of speculative rounds, with lookups, as the server loads it."""
    if "int8" not in manifest.variants:
        return None
    spec = manifest.running("int8").causal
    assert spec is not None
    route = Route("int8", ("cpu",), ())
    draft = CausalGraphs(f"bench-{key}.draft", folder, spec, route, threads)
    return Speculator(draft, lookup=LOOKUP)


def _settings(spec: CausalSpec, new_tokens: int, prompt: int) -> SearchSettings:
    return SearchSettings(
        decoder_start_token_id=spec.defaults.decoder_start_token_id,
        eos_token_ids=spec.eos_token_ids,
        max_new_tokens=new_tokens,
        num_beams=1,
        length_penalty=1.0,
        early_stopping=False,
        no_repeat_ngram_size=0,
        min_length=prompt + new_tokens + 1,  # no EOS: exactly new_tokens tokens
        forced_bos_token_id=None,
        forced_eos_token_id=None,
    )


async def _measure(
    key: str,
    graphs: CausalGraphs,
    spec: CausalSpec,
    prompts: list[np.ndarray],
    new_tokens: int,
    drafts: Speculator | None = None,
    alone_only: bool = False,
) -> dict[str, Any]:
    """Every figure of one variant, or (`alone_only`, a paired round) one at a time only;
    `drafts`: speculative rounds for a request alone, as the server runs fp32."""
    metrics = Metrics()
    batcher = ContinuousBatcher(
        f"bench-{key}", lambda: CausalBatch(graphs, PREFILL_TOKENS, drafts), 64, 256, metrics
    )

    async def one(
        prompt: np.ndarray, started: float, new: int = new_tokens, times: list[float] | None = None
    ) -> list[float]:
        """The times of this request's tokens, from `started` (into `times` as they come)."""
        times = [] if times is None else times
        search = Greedy(_settings(spec, new, len(prompt)), [int(t) for t in prompt])
        made = await batcher.generate(
            prompt, search, on_token=lambda _: times.append(time.perf_counter() - started)
        )
        if len(made) != new:
            raise RuntimeError(f"attnserve made {len(made)} tokens, not {new}")
        return times

    async def run(batch: list[np.ndarray]) -> tuple[float, list[float]]:
        started = time.perf_counter()
        times = await asyncio.gather(*(one(p, started) for p in batch))
        return time.perf_counter() - started, [t[0] for t in times]

    for prompt in prompts[:2]:  # warm-up: alone, then the 16 at once
        await run([prompt])
    tokens = new_tokens * len(prompts)
    if alone_only:
        alone = [await run([p]) for p in prompts]
        await batcher.close()
        return {"one_at_a_time_tokens_per_s": tokens / sum(s for s, _ in alone)}
    await run(prompts)
    together, loaded_ttft = await run(prompts)
    alone = [await run([p]) for p in prompts]
    stall = await _stall(one, prompts, spec)
    await batcher.close()
    return {
        "one_at_a_time_tokens_per_s": tokens / sum(s for s, _ in alone),
        **draft_share(metrics, f"bench-{key}"),
        "concurrent_16_tokens_per_s": tokens / together,
        "one_at_a_time_ttft_ms": 1e3 * statistics.median(t[0] for _, t in alone),
        "concurrent_16_ttft_ms": 1e3 * statistics.median(loaded_ttft),
        "concurrent_16_ttft_max_ms": 1e3 * max(loaded_ttft),
        **stall,
    }


async def _stall(
    one: Callable[..., Any], prompts: list[np.ndarray], spec: CausalSpec
) -> dict[str, float]:
    """Running sequences' token gaps in steady decoding (all their prompts in), then while a
    long prompt is prefilled."""
    long = np.resize(prompts[0], min(STALL_PROMPT, spec.context_window - 8))
    started = time.perf_counter()
    times: list[list[float]] = [[] for _ in range(STALL_RUNNING)]
    running = [
        asyncio.ensure_future(one(p, started, 200, stamps))
        for p, stamps in zip(prompts[:STALL_RUNNING], times, strict=True)
    ]
    while not all(len(stamps) >= 8 for stamps in times):  # every prompt in, a few steps on
        await asyncio.sleep(0.05)
    steady = max(stamps[0] for stamps in times)
    joined = time.perf_counter() - started
    first = (await one(long, started, 1))[0]
    await asyncio.gather(*running)
    before, during = [], []
    for stamps in times:
        for a, b in itertools.pairwise(stamps):
            if a >= steady and b < joined:
                before.append(b - a)
            elif a >= joined and b <= first:
                during.append(b - a)
    return {
        "stall_prompt_tokens": float(len(long)),
        "stall_prefill_ms": 1e3 * (first - joined),
        "stall_median_gap_ms": 1e3 * statistics.median(before),
        "stall_max_gap_ms": 1e3 * max(during, default=0.0),
        "stall_median_gap_during_ms": 1e3 * statistics.median(during) if during else 0.0,
    }
