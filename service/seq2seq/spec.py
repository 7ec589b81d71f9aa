"""What model.yaml says about a seq2seq model's graphs and generation defaults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Defaults:
    """The model's generation settings (its generation_config), used where a request has 0."""

    max_new_tokens: int
    num_beams: int
    length_penalty: float
    early_stopping: bool | str
    no_repeat_ngram_size: int
    min_length: int
    forced_bos_token_id: int | None
    forced_eos_token_id: int | None


@dataclass(frozen=True, slots=True)
class Seq2SeqSpec:
    encoder_file: str
    decoder_file: str
    num_layers: int
    num_heads: int
    d_kv: int
    vocab_size: int
    max_decoder_length: int  # decoder positions, the start token included
    decoder_start_token_id: int
    eos_token_ids: tuple[int, ...]
    pad_token_id: int
    defaults: Defaults

    @classmethod
    def read(cls, raw: dict[str, Any]) -> Seq2SeqSpec:
        """From model.yaml's mapping; KeyError or ValueError names a missing or bad field."""
        generation = raw["generation"]
        early = generation["early_stopping"]
        spec = cls(
            encoder_file=str(raw["files"]["encoder"]),
            decoder_file=str(raw["files"]["decoder"]),
            num_layers=int(raw["num_layers"]),
            num_heads=int(raw["num_heads"]),
            d_kv=int(raw["d_kv"]),
            vocab_size=int(raw["vocab_size"]),
            max_decoder_length=int(raw["max_decoder_length"]),
            decoder_start_token_id=int(generation["decoder_start_token_id"]),
            eos_token_ids=tuple(int(e) for e in generation["eos_token_ids"]),
            pad_token_id=int(generation["pad_token_id"]),
            defaults=Defaults(
                max_new_tokens=int(generation["max_new_tokens"]),
                num_beams=int(generation["num_beams"]),
                length_penalty=float(generation["length_penalty"]),
                early_stopping=early if early == "never" else bool(early),
                no_repeat_ngram_size=int(generation["no_repeat_ngram_size"]),
                min_length=int(generation["min_length"]),
                forced_bos_token_id=_optional_id(generation["forced_bos_token_id"]),
                forced_eos_token_id=_optional_id(generation["forced_eos_token_id"]),
            ),
        )
        if min(spec.num_layers, spec.num_heads, spec.d_kv, spec.vocab_size) < 1:
            raise ValueError("num_layers, num_heads, d_kv or vocab_size (must be positive)")
        if spec.max_decoder_length < 2 or not spec.eos_token_ids:
            raise ValueError("max_decoder_length or eos_token_ids")
        return spec


def _optional_id(value: Any) -> int | None:
    return None if value is None else int(value)
