"""Tiny random-weight `*ForQuestionAnswering` models saved as Hugging Face folders.

BERT, DistilBERT and ELECTRA share the default model's WordPiece tokenizer.json; RoBERTa
gets a small byte-level BPE trained here. Each folder loads with AutoTokenizer (a fast
tokenizer) and AutoModelForQuestionAnswering, so the exporter and the reference both read
it as they would a real checkpoint. Nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

# The window the tiny models are built for: short enough that test contexts overflow it.
MAX_LENGTH = 96
ARCHITECTURES = ("bert", "distilbert", "roberta", "electra")

_SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
_WORDPIECE_VOCAB = 30522  # the default model's tokenizer
_BPE_VOCAB = 2000
_ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


def build(architecture: str, folder: Path, wordpiece_source: Path, seed: int) -> Path:
    """Write a tiny `architecture` QA model with its tokenizer into `folder`."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    folder.mkdir(parents=True)
    torch.manual_seed(seed)
    if architecture == "roberta":
        config = _roberta_tokenizer(folder)
    else:
        config = _wordpiece_tokenizer(architecture, folder, wordpiece_source)
    model = AutoModelForQuestionAnswering.from_config(config)
    model.eval().save_pretrained(folder)
    return folder


def _wordpiece_tokenizer(architecture: str, folder: Path, source: Path) -> Any:
    from transformers import BertConfig, DistilBertConfig, ElectraConfig

    shutil.copyfile(source / "tokenizer.json", folder / "tokenizer.json")
    shutil.copyfile(source / "vocab.txt", folder / "vocab.txt")
    tokenizer_config = json.loads((source / "tokenizer_config.json").read_text())
    # DistilBERT's tokenizer class leaves token_type_ids out of the model inputs.
    tokenizer_class = "DistilBertTokenizer" if architecture == "distilbert" else "BertTokenizer"
    tokenizer_config.update(tokenizer_class=tokenizer_class, model_max_length=MAX_LENGTH)
    tokenizer_config.pop("name_or_path", None)
    (folder / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    common = {"vocab_size": _WORDPIECE_VOCAB, "max_position_embeddings": 128}
    if architecture == "distilbert":
        return DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, **common)
    if architecture == "electra":
        return ElectraConfig(embedding_size=32, intermediate_size=64, **_SIZES, **common)
    return BertConfig(intermediate_size=64, **_SIZES, **common)


def _roberta_tokenizer(folder: Path) -> Any:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_bpe_corpus(), vocab_size=_BPE_VOCAB, special_tokens=_ROBERTA_SPECIALS)
    tokenizer = RobertaTokenizerFast(tokenizer_object=bpe, model_max_length=MAX_LENGTH)
    tokenizer.save_pretrained(folder)
    return RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        # RoBERTa numbers positions from pad_token_id + 1.
        max_position_embeddings=MAX_LENGTH + 2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
        intermediate_size=64,
        **_SIZES,
    )


def _bpe_corpus() -> list[str]:
    text = (
        "the tower river city bridge engineer café résumé naïve coffee museum built year "
        "north south paris lisbon winter summer 1889 330 metres tall people visit because "
        "what who when where how why is was did does 🌱 🙂 — « » über straße"
    )
    words = text.split(" ")
    return [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 4
