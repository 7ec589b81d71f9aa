"""Decoder-only causal LMs: the step graph, chunked prefill beside decoding in one
continuously batched loop, and the Generate and Summarize pipelines on top."""
