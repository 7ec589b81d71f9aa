"""Random-weight decoder-only (causal LM) source folders for the generation bench, built from
configs (no model hub): a Llama of SmolLM2-135M's shape and a GPT-2 of GPT-2 small's.

Each folder holds what a Hugging Face checkpoint does: config.json, model.safetensors,
generation_config.json (greedy) and a real tokenizer, tokenizer.json + tokenizer_config.json
saved through PreTrainedTokenizerFast. The tokenizer is a byte-level BPE, as both real models
use, trained in this process on a generated English-like corpus to exactly the model's
vocabulary size, so every embedding row is a token and prompt lengths in tokens, the byte-level
decoding and the tokenizer's own cost are those of a real checkpoint. The Llama-shaped one puts
`<s>` first through its post-processor, as Llama tokenizers do (SmolLM2's own puts nothing);
GPT-2's puts nothing and ends its vocabulary with `<|endoftext|>` (id 50256), as GPT-2's does.

Weights come from transformers' own init (std 0.02, seeded), so the logits are neither flat
nor degenerate; greedy output of a random model may repeat, which costs the same per token.
Everything is deterministic: the same folder every build. Imports torch and transformers: for
the bench only, never the server.
"""

from __future__ import annotations

import random
import shutil
from functools import cache
from pathlib import Path
from typing import Any

SMOLLM2_135M: dict[str, Any] = {
    "hidden_size": 576,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "intermediate_size": 1536,
    "vocab_size": 49152,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
}
GPT2_SMALL: dict[str, Any] = {
    "n_embd": 768,
    "n_layer": 12,
    "n_head": 12,
    "vocab_size": 50257,
    "n_positions": 1024,
}
# Llama-shaped: <unk> 0, <s> 1, </s> 2, <pad> 3 (Llama has no pad; batching needs one).
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
GPT2_EOS = "<|endoftext|>"  # GPT-2's bos, eos, unk and (by custom) pad

_ONSETS = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
           "w", "y", "z", "br", "cr", "dr", "fr", "gr", "pr", "tr", "bl", "cl", "fl", "gl",
           "pl", "sl", "sh", "ch", "th", "st", "sp", "sk", "sm", "sn", "wh", "qu"]  # fmt: skip
_VOWELS = ["a", "e", "i", "o", "u", "ea", "ou", "oo", "ai"]
_CODAS = ["", "n", "r", "s", "t", "l", "m", "d", "ng", "st", "nd", "ck", "th", "x", "rt"]
LEXICON_SIZE = 60000  # distinct words: enough pre-tokens for BPE to reach 50k merges


@cache
def lexicon() -> tuple[str, ...]:
    """Distinct English-like words (syllable strings), most frequent first."""
    rng = random.Random(0)
    syllables = [o + v + c for o in _ONSETS for v in _VOWELS for c in _CODAS]
    words: dict[str, None] = {}  # ordered set
    for short in ("the", "of", "and", "a", "to", "in", "is", "it", "that", "was"):
        words[short] = None
    while len(words) < LEXICON_SIZE:
        count = rng.choices((1, 2, 3), weights=(3, 5, 2))[0]
        words["".join(rng.choices(syllables, k=count))] = None
    return tuple(words)


def _sentences(rng: random.Random, words: int) -> str:
    """`words` Zipf-drawn words, in sentences of 4 to 20 with now and then a comma."""
    vocabulary = lexicon()
    weights = _zipf_weights()
    drawn = rng.choices(vocabulary, cum_weights=weights, k=words)
    out: list[str] = []
    left = rng.randint(4, 20)
    for i, word in enumerate(drawn):
        left -= 1
        end = "." if left == 0 or i == len(drawn) - 1 else ("," if rng.random() < 0.06 else "")
        if left == 0:
            left = rng.randint(4, 20)
        out.append(word + end)
    return " ".join(out)


@cache
def _zipf_weights() -> list[float]:
    """Cumulative Zipf weights over the lexicon, for random.choices."""
    total, cumulative = 0.0, []
    for rank in range(len(lexicon())):
        total += 1.0 / (rank + 2.7)
        cumulative.append(total)
    return cumulative


def prompts(count: int, seed: int) -> list[str]:
    """Prompts of mixed lengths over the tokenizers' corpus words: log-uniform from 6 to 150
    words, about 8 to 200 tokens (a word is 1.3 tokens on average)."""
    rng = random.Random(seed)
    return [_sentences(rng, round(6 * 25 ** rng.random())) for _ in range(count)]


def _corpus() -> list[str]:
    """The BPE training corpus: Zipf-drawn text, then every lexicon word once, so that rare
    words still get merges."""
    rng = random.Random(1)
    text = [_sentences(rng, 200) for _ in range(2000)]
    words = lexicon()
    text += [" ".join(words[i : i + 100]) for i in range(0, len(words), 100)]
    return text


def _tokenizer(vocab_size: int, specials: list[str], tail: list[str], bos: str | None) -> Any:
    """A byte-level BPE of exactly `vocab_size` tokens: `specials` first, `tail` last (as
    added special tokens); `bos`, if given, put first by the post-processor."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(tail),
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    tok.add_special_tokens(tail)
    if tok.get_vocab_size() != vocab_size:
        raise RuntimeError(f"BPE reached {tok.get_vocab_size()} tokens, not {vocab_size}")
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A",
            pair=f"{bos} $A {bos} $B",
            special_tokens=[(bos, tok.token_to_id(bos))],
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def smollm2_135m(folder: Path) -> Path:
    """A random LlamaForCausalLM of SmolLM2-135M's shape (see SMOLLM2_135M), cached."""
    if (folder / "config.json").exists():
        return folder
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = _tokenizer(SMOLLM2_135M["vocab_size"], LLAMA_SPECIALS, [], "<s>")
    ids = {name: tok.token_to_id(t) for name, t in
           (("unk", "<unk>"), ("bos", "<s>"), ("eos", "</s>"), ("pad", "<pad>"))}  # fmt: skip
    config = LlamaConfig(
        **SMOLLM2_135M,
        bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"],
    )  # fmt: skip
    model = _seeded(LlamaForCausalLM, config, seed=0)
    named = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
             "model_max_length": SMOLLM2_135M["max_position_embeddings"]}  # fmt: skip
    return _save(folder, model, tok, named, GenerationConfig, ids)


def gpt2_small(folder: Path) -> Path:
    """A random GPT2LMHeadModel of GPT-2 small's shape (see GPT2_SMALL), cached."""
    if (folder / "config.json").exists():
        return folder
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    tok = _tokenizer(GPT2_SMALL["vocab_size"], [], [GPT2_EOS], None)
    eos = tok.token_to_id(GPT2_EOS)
    ids = {"bos": eos, "eos": eos, "pad": eos}
    config = GPT2Config(**GPT2_SMALL, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    model = _seeded(GPT2LMHeadModel, config, seed=1)
    named: dict[str, Any] = dict.fromkeys(
        ("bos_token", "eos_token", "unk_token", "pad_token"), GPT2_EOS
    )
    named["model_max_length"] = GPT2_SMALL["n_positions"]
    return _save(folder, model, tok, named, GenerationConfig, ids)


def _seeded(cls: Any, config: Any, seed: int) -> Any:
    """`cls(config)` with transformers' own init (normal, std initializer_range) drawn from
    `seed`: the same weights every build."""
    import torch

    torch.manual_seed(seed)
    return cls(config).eval()


def _save(
    folder: Path, model: Any, tok: Any, named: dict[str, Any], generation: Any, ids: dict[str, int]
) -> Path:
    """Write the checkpoint beside `folder` and move it in place last, so an interrupted
    build never passes for a cached one."""
    from transformers import PreTrainedTokenizerFast

    model.generation_config = generation(
        do_sample=False, num_beams=1,
        bos_token_id=ids["bos"], eos_token_id=ids["eos"], pad_token_id=ids["pad"],
    )  # fmt: skip
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(str(partial))
    PreTrainedTokenizerFast(tokenizer_object=tok, **named).save_pretrained(str(partial))
    partial.rename(folder)
    return folder
