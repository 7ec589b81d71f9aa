"""Seq2seq generation throughput: one request alone, 16 at once through the continuous
batcher, and the same 16 one at a time.

A random T5 of t5-small's shape (6 + 6 layers, d_model 512, 8 heads, vocabulary 32128) is
built from its config, exported with `attnserve export --task summarization` into a
temporary folder and run in this process through the server's own classes (graphs, batcher,
greedy search): what the decoder loop sustains, without gRPC. End-of-sequence is banned
until the last token (min_length), so every request makes exactly `new_tokens` tokens.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import ctranslate2_peer
from service import model_format
from service.metrics import Metrics
from service.runtime.precision import Route
from service.seq2seq.batcher import ContinuousBatcher
from service.seq2seq.graphs import Seq2SeqGraphs
from service.seq2seq.search import Greedy, SearchSettings
from service.seq2seq.spec import Seq2SeqSpec
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
CONCURRENT = 16


def seq2seq_section(
    results: dict[str, Any],
    threads: int,
    log: Callable[[str], None] = print,
    new_tokens: int = 32,
) -> None:
    """Fill results["seq2seq"] with tokens/s figures (see the module docstring)."""
    from export.cli import main as export_main
    from harness.tiny_seq2seq import build_t5, sentences

    with tempfile.TemporaryDirectory(prefix="attnserve-bench-seq2seq-") as tmp:
        root = Path(tmp)
        log("seq2seq: building and exporting a random t5-small-shaped model")
        source = build_t5(root / "src", sizes=T5_SMALL, spread=T5_SMALL["d_model"] ** -0.5)
        if export_main([str(source), "--task", "summarization", "--out", str(root / "t5")]):
            raise RuntimeError("seq2seq bench: export failed")
        manifest = model_format.read(root / "t5")
        spec = manifest.seq2seq
        assert spec is not None
        graphs = Seq2SeqGraphs("bench-t5", root / "t5", spec, Route("fp32", ("cpu",), ()), threads)
        tokenizer = TextTokenizer(
            root / "t5" / manifest.tokenizer_file, manifest.max_sequence_length
        )
        texts = sentences(CONCURRENT, seed=11, min_words=20)
        sources = [e.ids for e in tokenizer.encode(texts)]
        out: dict[str, Any] = asyncio.run(_measure(graphs, spec, sources, new_tokens))
        log("seq2seq: CTranslate2 (side venv build/ct2-venv) and transformers generate()")
        out["ctranslate2"] = ctranslate2_peer.measure(source, root, texts, new_tokens, threads)
        out["generate"] = _generate_rates(source, texts, new_tokens, threads)
    out |= {"model": "random t5-small shape", "new_tokens": new_tokens, "threads": threads}
    out["batching_speedup"] = out["concurrent_16_tokens_per_s"] / out["sequential_16_tokens_per_s"]
    log(f"seq2seq: {out}")
    results["seq2seq"] = out


def _generate_rates(
    source: Path, texts: list[str], new_tokens: int, threads: int
) -> dict[str, float]:
    """transformers' generate() in PyTorch, greedy, exactly `new_tokens` per request: one
    request at a time, and the 16 as one padded batch."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    torch.set_num_threads(threads)
    model = AutoModelForSeq2SeqLM.from_pretrained(str(source)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    options = {"do_sample": False, "num_beams": 1, "max_new_tokens": new_tokens,
               "min_new_tokens": new_tokens}  # fmt: skip

    def seconds(batch: list[str]) -> float:
        inputs = tokenizer(batch, return_tensors="pt", padding=True)
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(**inputs, **options)
        return time.perf_counter() - started

    seconds(texts[:2])  # warm-up
    apart = sum(seconds([text]) for text in texts)
    together = seconds(texts)
    tokens = new_tokens * len(texts)
    return {"one_at_a_time_tokens_per_s": tokens / apart, "batch_tokens_per_s": tokens / together}


async def _measure(
    graphs: Seq2SeqGraphs, spec: Seq2SeqSpec, sources: list[np.ndarray], new_tokens: int
) -> dict[str, float]:
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
    batcher = ContinuousBatcher("bench-t5", graphs, 64, 256, Metrics())

    async def run(batch: list[np.ndarray]) -> float:
        started = time.perf_counter()
        await asyncio.gather(*(batcher.generate(s, Greedy(settings)) for s in batch))
        return time.perf_counter() - started

    await run(sources[:2])  # warm-up
    one = await run(sources[:1])
    together = await run(sources)
    apart = 0.0
    for source in sources:
        apart += await run([source])
    await batcher.close()
    tokens = new_tokens * len(sources)
    return {
        "single_tokens_per_s": new_tokens / one,
        "concurrent_16_tokens_per_s": tokens / together,
        "sequential_16_tokens_per_s": tokens / apart,
    }
