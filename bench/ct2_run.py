"""Run in build/ct2-venv by bench/ctranslate2_peer.py: a JSON request on stdin, a JSON line of
tokens/s per compute type on stdout. Imports only what that venv has."""

import json
import sys
import time

import ctranslate2
from tokenizers import Tokenizer


def main() -> None:
    request = json.loads(sys.stdin.read())
    tokenizer = Tokenizer.from_file(request["tokenizer"])
    sources = [tokenizer.encode(text).tokens for text in request["texts"]]
    n = request["new_tokens"]
    options = {"beam_size": 1, "max_decoding_length": n, "min_decoding_length": n}
    figures = {}
    for kind, path in request["models"].items():
        translator = ctranslate2.Translator(
            path, device="cpu", inter_threads=1, intra_threads=request["threads"],
            compute_type="int8" if kind == "int8" else "float32",
        )  # fmt: skip
        translator.translate_batch(sources[:2], **options)  # warm-up
        started = time.perf_counter()
        made = 0
        for source in sources:
            made += len(translator.translate_batch([source], **options)[0].hypotheses[0])
        one = made / (time.perf_counter() - started)
        started = time.perf_counter()
        out = translator.translate_batch(sources, max_batch_size=len(sources), **options)
        batch = sum(len(o.hypotheses[0]) for o in out) / (time.perf_counter() - started)
        figures[kind] = {"one_at_a_time_tokens_per_s": one, "batch_tokens_per_s": batch}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
