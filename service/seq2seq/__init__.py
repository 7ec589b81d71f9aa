"""Abstractive summarization on seq2seq (T5, BART) models: encoder and decoder-step graphs,
greedy and beam search as transformers' generate does them, and a continuous-batching loop
where sequences join and leave the decoder batch at every step."""
