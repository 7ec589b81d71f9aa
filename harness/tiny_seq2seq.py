"""Tiny random-weight T5 and BART source folders, built from configs (no model hub).

Each folder holds what `attnserve export --task summarization` reads: config.json, the
weights, generation_config.json and a real tokenizer.json (a WordLevel vocabulary over
generated words), wrapped as PreTrainedTokenizerFast so transformers and attnserve produce
the same ids. Imports torch and transformers: for tests and benchmarks, never the server.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "ti") for b in "aeiouxyz"]
# T5 numbers pad 0, eos 1, unk 2; BART bos 0, pad 1, eos 2, unk 3.
T5_SPECIALS = ["<pad>", "</s>", "<unk>"]
BART_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]


def sentences(count: int, seed: int = 0, min_words: int = 3, max_words: int = 40) -> list[str]:
    """Texts of mixed lengths over the tiny vocabulary, with an unknown word now and then."""
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        words = rng.choices([*WORDS, "zzz"], k=rng.randint(min_words, max_words))
        texts.append(" ".join(words) + ".")
    return texts


def _tokenizer(specials: list[str], bos: str | None, eos: str) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*specials, *WORDS, "."])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    single = f"{bos} $A {eos}" if bos else f"$A {eos}"
    special_ids = [(t, vocab[t]) for t in (bos, eos) if t]
    tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=special_ids)
    named = {"pad_token": "<pad>", "eos_token": eos, "unk_token": "<unk>"}
    if bos:
        named["bos_token"] = bos
    return PreTrainedTokenizerFast(tokenizer_object=tok, **named)


def build_t5(
    folder: Path, sizes: dict[str, Any] | None = None, spread: float = 1.0, **generation: Any
) -> Path:
    """A T5; `sizes` overrides the tiny dimensions (d_model, num_layers, vocab_size, ...),
    `spread` the weights' standard deviation (keep it near d_model ** -0.5 for wide ones)."""
    from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration

    tokenizer = _tokenizer(T5_SPECIALS, None, "</s>")
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
        n_positions=128,
    )
    config.update(sizes or {})
    model = _spread(T5ForConditionalGeneration(config).eval(), std=spread, seed=0)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=0, eos_token_id=1, pad_token_id=0, **generation
    )
    return _save(folder, model, tokenizer)


def build_bart(
    folder: Path, sizes: dict[str, int] | None = None, spread: float = 0.4, **generation: Any
) -> Path:
    """A BART; `sizes` overrides the tiny dimensions (d_model, encoder_layers, vocab_size,
    ...), `spread` the weights' standard deviation (0.4 suits the tiny width; give wide
    ones BART's own init_std, 0.02)."""
    from transformers import BartConfig, BartForConditionalGeneration, GenerationConfig

    tokenizer = _tokenizer(BART_SPECIALS, "<s>", "</s>")
    config = BartConfig(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=128,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=2,
        forced_eos_token_id=None,
    )
    config.update(sizes or {})
    model = _spread(BartForConditionalGeneration(config).eval(), std=spread, seed=1)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=2, bos_token_id=0, eos_token_id=2, pad_token_id=1, **generation
    )
    return _save(folder, model, tokenizer)


def _spread(model: Any, std: float, seed: int) -> Any:
    """Redraw every weight matrix wider than the default init: with it, a tiny random model
    repeats one token (or stops at once) whatever the input; with this, what it generates
    depends on the input, as a trained model's output does."""
    import torch

    torch.manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:
                parameter.normal_(0.0, std)
    return model


def _save(folder: Path, model: Any, tokenizer: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder
