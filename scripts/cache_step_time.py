"""Decoder step time against cache length, the cache written in place or copied.

    python scripts/cache_step_time.py MODEL_FOLDER [--rows 16] [--threads 2]

MODEL_FOLDER is a summarization export (`attnserve export --task summarization`). The same
decoder graph runs twice per cache capacity, alternating: each present bound to its past's
own buffer (what the server does: TensorScatter writes one slot), and bound to a buffer of
its own (TensorScatter then copies the whole cache first, as a concatenating step did). The
difference is what copying the cache costs a step at that length.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service import model_format
from service.model_format import CROSS, PAST, PRESENT, cache_names
from service.runtime.engine import run_in_place, session_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rows", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    spec = model_format.read(args.folder).seq2seq
    assert spec is not None, "not a summarization export"
    ort.set_default_logger_severity(3)  # the copying runs warn that they copy, every time
    session = ort.InferenceSession(
        str(args.folder / spec.decoder_file), session_options(args.threads)
    )
    outputs = [o.name for o in session.get_outputs()]
    rows, source = args.rows, 40
    shape = (rows, spec.num_heads)
    print("| cache slots | in place, ms | copied, ms | copy's share |")
    print("|---:|---:|---:|---:|")
    for capacity in (32, 64, 128, 256, 512, 1024):
        past = {
            n: np.zeros((*shape, capacity, spec.d_kv), np.float32)
            for n in cache_names(PAST, spec.num_layers)
        }
        feeds = dict(past)
        feeds |= {
            n: np.random.rand(*shape, source, spec.d_kv).astype(np.float32)
            for n in cache_names(CROSS, spec.num_layers)
        }
        feeds["input_ids"] = np.full((rows, 1), spec.decoder_start_token_id, np.int64)
        feeds["position_ids"] = np.full((rows, 1), capacity // 2, np.int64)
        feeds["encoder_attention_mask"] = np.ones((rows, source), np.int64)
        presents = cache_names(PRESENT, spec.num_layers)
        in_place = dict(zip(presents, past.values(), strict=True))
        copied = {n: np.empty_like(a) for n, a in in_place.items()}
        times: dict[str, list[float]] = {"in place": [], "copied": []}
        for i in range(args.repeats + 2):
            for label, into in (("in place", in_place), ("copied", copied)):
                started = time.perf_counter()
                run_in_place(session, feeds, into, outputs)
                if i >= 2:  # warm-up
                    times[label].append(time.perf_counter() - started)
        a, b = (float(np.median(times[k]) * 1e3) for k in ("in place", "copied"))
        print(f"| {capacity} | {a:.1f} | {b:.1f} | {(b - a) / b:.0%} |")


if __name__ == "__main__":
    main()
