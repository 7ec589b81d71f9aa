"""Tiny random-weight GPT-2 and Llama-shaped causal LM source folders, built from configs (no
model hub), for `attnserve export --task text-generation` in the tests.

The Llama one has what SmolLM2 and Qwen2 checkpoints have: grouped-query attention (fewer
key/value heads), tied input and output embeddings, a tokenizer that adds a BOS token, and a
chat template in tokenizer_config.json. GPT-2's tokenizer adds nothing. Imports torch and
transformers: for tests and benchmarks, never the server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.tiny_seq2seq import WORDS, _save, _spread, sentences

__all__ = ["CHAT_TEMPLATE", "build_gpt2", "build_llama", "build_qwen2", "sentences"]

GPT2_SPECIALS = ["<|endoftext|>", "<unk>"]
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>"]
# A minimal chat format, in Jinja as tokenizer_config.json carries it.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|{{ message['role'] }}|> "
    "{{ message['content'] }} {% endfor %}{% if add_generation_prompt %}<|assistant|>"
    "{% endif %}"
)


def _tokenizer(specials: list[str], bos: str | None, eos: str) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*specials, *WORDS, ".", ","])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, vocab[bos])]
        )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    named = {"eos_token": eos, "unk_token": "<unk>"}
    if bos:
        named["bos_token"] = bos
    return PreTrainedTokenizerFast(tokenizer_object=tok, **named)


def build_gpt2(folder: Path, sizes: dict[str, int] | None = None, **generation: Any) -> Path:
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    tokenizer = _tokenizer(GPT2_SPECIALS, None, "<|endoftext|>")
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=128,
        bos_token_id=0,
        eos_token_id=0,
    )
    config.update(sizes or {})
    model = _spread(GPT2LMHeadModel(config).eval(), std=0.3, seed=2)
    model.generation_config = GenerationConfig(
        bos_token_id=0, eos_token_id=0, pad_token_id=0, **generation
    )
    return _save(folder, model, tokenizer)


def build_llama(folder: Path, sizes: dict[str, int] | None = None, **generation: Any) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    return _build_llama_shaped(folder, LlamaConfig, LlamaForCausalLM, sizes, generation)


def build_qwen2(folder: Path, sizes: dict[str, int] | None = None, **generation: Any) -> Path:
    """Llama-shaped with Qwen2's biases on the query, key and value projections."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return _build_llama_shaped(folder, Qwen2Config, Qwen2ForCausalLM, sizes, generation)


def _build_llama_shaped(
    folder: Path,
    config_class: Any,
    model_class: Any,
    sizes: dict[str, int] | None,
    generation: dict[str, Any],
) -> Path:
    from transformers import GenerationConfig

    tokenizer = _tokenizer(LLAMA_SPECIALS, "<s>", "</s>")
    tokenizer.chat_template = CHAT_TEMPLATE
    config = config_class(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # grouped: two query heads per key/value head
        max_position_embeddings=128,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    config.update(sizes or {})
    model = _spread(model_class(config).eval(), std=0.3, seed=3)
    _spread_biases(model, std=0.3)  # Qwen2's start at zero, which would test nothing
    model.tie_weights()
    model.generation_config = GenerationConfig(
        bos_token_id=1, eos_token_id=2, pad_token_id=0, **generation
    )
    return _save(folder, model, tokenizer)


def _spread_biases(model: Any, std: float) -> None:
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("proj.bias"):
                parameter.normal_(0.0, std)
