"""Run in build/ct2-venv by bench/causal_peers.py: a JSON request on stdin, a JSON line of
tokens/s and time to first token per compute type on stdout. Imports only what that venv has.

ctranslate2.Generator.generate_batch, greedy (sampling_topk=1), with min_length = max_length
= new_tokens: in CTranslate2 4.8.5 both count generated tokens only when
include_prompt_in_result is False, whatever the prompt's length. With that option the prompt
is forwarded at once to fill the KV cache; in a batch of mixed lengths only up to the shortest
prompt, the rest of each longer one is forced through the decoding loop step by step (that is
how CTranslate2 batches mixed lengths: no left padding). The per-step callback fires for
generated tokens only, not for those forced ones, so its first call per request is that
request's first token (TTFT); every request's callback tokens are checked against its result.

If the request has "check", each compute type's logits for those tokens (forward_batch) are
saved to check["out"] (.npz) for bench/causal_peers.py to compare with PyTorch's.
"""

import json
import statistics
import sys
import time
from typing import Any

import ctranslate2
import numpy as np
from tokenizers import Tokenizer


def main() -> None:
    request = json.loads(sys.stdin.read())
    tokenizer = Tokenizer.from_file(request["tokenizer"])
    prompts = [tokenizer.encode(text).tokens for text in request["prompts"]]
    n = request["new_tokens"]
    options = {"beam_size": 1, "sampling_topk": 1, "max_length": n, "min_length": n,
               "include_prompt_in_result": False}  # fmt: skip

    def run(generator: Any, batch: list[list[str]]) -> tuple[float, list[float]]:
        """Seconds for the batch and each request's seconds to its first token."""
        first: dict[int, float] = {}
        streamed: dict[int, list[int]] = {}
        started = time.perf_counter()

        def on_step(step: Any) -> bool:
            first.setdefault(step.batch_id, time.perf_counter() - started)
            streamed.setdefault(step.batch_id, []).append(step.token_id)
            return False  # keep decoding

        out = generator.generate_batch(
            batch, max_batch_size=len(batch), callback=on_step, **options
        )
        seconds = time.perf_counter() - started
        made = [o.sequences_ids[0] for o in out]
        if [len(ids) for ids in made] != [n] * len(batch) or any(
            streamed.get(i) != ids for i, ids in enumerate(made)
        ):
            lengths = [len(ids) for ids in made]
            raise SystemExit(
                f"CTranslate2 made {lengths} tokens, not {n} each; streamed "
                f"{[len(streamed.get(i, [])) for i in range(len(batch))]}"
            )
        return seconds, [first[i] for i in range(len(batch))]

    alone_only = request.get("one_at_a_time_only", False)

    def alone(engine: Any) -> float:
        """Seconds for every request, one at a time."""
        return sum(run(engine, [one])[0] for one in prompts)

    figures = {}
    check = request.get("check")
    logits = {}
    for kind, path in request["models"].items():
        generator = ctranslate2.Generator(
            path, device="cpu", inter_threads=1, intra_threads=request["threads"],
            compute_type="int8" if kind == "int8" else "float32",
        )  # fmt: skip
        if check:
            logits[kind] = np.array(generator.forward_batch([check["tokens"]]))[0]
        for prompt in prompts[:2]:  # warm-up, as bench/ct2_run.py's
            run(generator, [prompt])
        if alone_only:  # a paired round (bench/paired.py): one at a time, nothing else
            figures[kind] = {"one_at_a_time_tokens_per_s": n * len(prompts) / alone(generator)}
            continue
        run(generator, prompts)
        apart, alone_ttft = 0.0, []
        for prompt in prompts:
            seconds, ttft = run(generator, [prompt])
            apart += seconds
            alone_ttft += ttft
        together, batch_ttft = run(generator, prompts)
        tokens = n * len(prompts)
        figures[kind] = {
            "one_at_a_time_tokens_per_s": tokens / apart,
            "batch_tokens_per_s": tokens / together,
            "one_at_a_time_ttft_ms": 1e3 * statistics.median(alone_ttft),
            "batch_ttft_ms": 1e3 * statistics.median(batch_ttft),
        }
        del generator
    if check:
        np.savez(check["out"], **logits)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
