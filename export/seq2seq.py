"""T5 and BART (`*ForConditionalGeneration`) in PyTorch: load one, wrap it as two graphs, export.

The two graphs are what a continuous-batching decoder loop needs:

- encoder: `input_ids`, `attention_mask` [batch, source] → `last_hidden_state` and, for every
  decoder layer, the cross-attention keys and values `cross.{i}.key` / `cross.{i}.value`
  [batch, heads, source, d_kv]: computed once per request, never again per step.
- decoder (one step): `input_ids` [batch, tokens] (one new token per row when decoding, or a
  token and the tokens drafted after it when verifying them), `position_ids` [batch, tokens]
  (each token's position, which is also its cache slot: a row's tokens are consecutive,
  starting at its number of decoder tokens so far), `encoder_attention_mask` [batch, source],
  the self-attention cache `past.{i}.key` / `.value` [batch, heads, capacity, d_kv] and the
  cross keys and values → `logits` [batch, tokens, vocab] (every new token's: there is no
  prefill here, so tokens is small) and `present.{i}.key` / `.value`, the same cache with the
  new tokens' keys and values written from each row's first position on.

The cache has a fixed capacity per row and is written in place: each present comes from one
ONNX `TensorScatter` (opset 24) on its past, which onnxruntime runs without copying when the
server binds the same buffer as the past input and the present output. Query t of a row sees
the slots up to its own position (causal among the new tokens, and the slots not written yet
masked), so rows of one batch may be at different steps, and nothing in the cache moves
between steps. T5's relative bias is computed per row and query from its position; BART's
learned absolute positions come from `position_ids` too.

The step is written here rather than traced through transformers' decoder, whose cache
objects and mask builders assume every row of a batch has the same past length. It reuses
the model's own modules (projections, norms, feed-forward), and the parity check holds it to
transformers' logits.
"""

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.export import Dim
from transformers import AutoModelForSeq2SeqLM, GenerationConfig
from transformers.models.t5.modeling_t5 import T5Attention

from export.encoder import load_pretrained
from export.errors import ExportError
from export.source import SourceFolder
from export.step_layers import merged_linear, rms_norm, typed
from service.model_format import (
    CROSS,
    ENCODER_INPUTS,
    PAST,
    Generation,
    cache_names,
    decoder_inputs,
    decoder_outputs,
    encoder_outputs,
)

# config.model_type → the family whose graphs this module writes (T5 or BART).
FAMILIES = {"t5": "t5", "mt5": "t5", "bart": "bart"}
# The first opset with TensorScatter (the in-place cache write); the standard Attention op,
# which the dynamo exporter writes for every scaled_dot_product_attention and onnxruntime
# runs on CPU and CUDA, came in 23.
OPSET = 24
# The longest decoder a T5 is asked for: relative positions have no table to run out of.
T5_DECODER_LIMIT = 1024
# Generation settings that change what greedy or beam search returns and that the server
# does not implement: a source that sets them is refused rather than served differently.
_UNSUPPORTED_GENERATION = {
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "min_new_tokens": None,
    "num_beam_groups": 1,
    "diversity_penalty": 0.0,
    "exponential_decay_length_penalty": None,
    "renormalize_logits": False,
}


@dataclass(frozen=True)
class Seq2Seq:
    model: Any  # a transformers *ForConditionalGeneration, eval mode
    encoder: nn.Module
    decoder: nn.Module
    class_name: str
    model_type: str
    d_model: int
    num_layers: int  # decoder layers: the cache has two tensors per layer per kind
    num_heads: int
    d_kv: int
    vocab_size: int
    position_limit: int  # longest source the encoder takes
    decoder_limit: int  # most decoder positions (start token included)
    generation: Generation
    decoder_inputs: list[str]
    decoder_outputs: list[str]
    encoder_outputs: list[str]


def check_supported(source: SourceFolder) -> str:
    family = FAMILIES.get(source.model_type)
    architectures = source.config.get("architectures") or ["?"]
    if family is None or not str(architectures[0]).endswith("ForConditionalGeneration"):
        supported = ", ".join(sorted(FAMILIES))
        raise ExportError(
            f"architecture {architectures[0]} (model_type {source.model_type!r}) is not "
            f"supported for summarization; supported: *ForConditionalGeneration of {supported}"
        )
    return family


def load(source: SourceFolder) -> Seq2Seq:
    family = check_supported(source)
    model = load_pretrained(AutoModelForSeq2SeqLM, source)
    config = model.config
    is_t5 = family == "t5"
    if is_t5:
        decoder: nn.Module = _T5Step(model)
        heads, d_kv = config.num_heads, config.d_kv
        layers = config.num_decoder_layers
        position_limit = int(getattr(config, "n_positions", 512))
        decoder_limit = T5_DECODER_LIMIT
    else:
        if getattr(model.model.decoder, "layer_norm", None) is not None:
            raise ExportError("BART variants with a final decoder layer norm are not supported")
        decoder = _BartStep(model)
        heads = config.decoder_attention_heads
        d_kv = config.d_model // heads
        layers = config.decoder_layers
        position_limit = decoder_limit = config.max_position_embeddings
    return Seq2Seq(
        model=model,
        encoder=_EncoderWithCrossCache(
            _T5Encoder(model) if is_t5 else _BartEncoder(model),
            _cross_projections(model, is_t5),
            heads,
            d_kv,
        ).eval(),
        decoder=decoder.eval(),
        class_name=type(model).__name__,
        model_type=config.model_type,
        d_model=config.d_model,
        num_layers=layers,
        num_heads=heads,
        d_kv=d_kv,
        vocab_size=config.vocab_size,
        position_limit=position_limit,
        decoder_limit=decoder_limit,
        generation=_generation(model.generation_config, config, decoder_limit),
        decoder_inputs=decoder_inputs(layers),
        decoder_outputs=decoder_outputs(layers),
        encoder_outputs=encoder_outputs(layers),
    )


def _generation(generation: GenerationConfig, config: Any, decoder_limit: int) -> Generation:
    start = _setting(generation, "decoder_start_token_id")
    start = config.decoder_start_token_id if start is None else start
    eos = _setting(generation, "eos_token_id")
    eos = config.eos_token_id if eos is None else eos
    pad = _setting(generation, "pad_token_id")
    pad = config.pad_token_id if pad is None else pad
    if start is None or eos is None or pad is None:
        raise ExportError("the model config lacks decoder_start_token_id, eos_token_id or pad")
    # transformers counts max_length with the decoder's start token; with neither length
    # set, generate() makes 20 new tokens (its default max_length, counted after the start).
    max_new = generation.max_new_tokens
    if max_new is None:
        max_length = generation.max_length
        max_new = _DEFAULTS["max_length"] if max_length is None else max_length - 1
    return generation_record(generation, start, eos, pad, min(int(max_new), decoder_limit - 1))


# transformers leaves unset fields None and fills them from these defaults in generate().
_DEFAULTS = GenerationConfig._get_default_generation_params()


def _setting(generation: GenerationConfig, name: str) -> Any:
    value = getattr(generation, name, None)
    return _DEFAULTS.get(name) if value is None else value


def generation_record(
    generation: GenerationConfig, start: int, eos: int | list[int], pad: int, max_new: int
) -> Generation:
    """The generation defaults model.yaml records; ExportError when the source's generation
    config sets what the server does not implement (it would answer otherwise)."""
    unsupported = [
        f"{name}={_setting(generation, name)!r}"
        for name, neutral in _UNSUPPORTED_GENERATION.items()
        if _setting(generation, name) not in (neutral, None)
    ]
    if unsupported:
        raise ExportError(
            "the generation config sets what the server does not implement: "
            + ", ".join(unsupported)
        )
    top_k = _setting(generation, "top_k")
    return Generation(
        decoder_start_token_id=int(start),
        eos_token_ids=[int(e) for e in (eos if isinstance(eos, list) else [eos])],
        pad_token_id=int(pad),
        max_new_tokens=max_new,
        num_beams=int(_setting(generation, "num_beams")),
        length_penalty=float(_setting(generation, "length_penalty")),
        early_stopping=_setting(generation, "early_stopping"),
        no_repeat_ngram_size=int(_setting(generation, "no_repeat_ngram_size")),
        min_length=int(_setting(generation, "min_length")),
        forced_bos_token_id=_setting(generation, "forced_bos_token_id"),
        forced_eos_token_id=_setting(generation, "forced_eos_token_id"),
        top_k=int(top_k) if top_k else 0,
    )


def _heads(states: torch.Tensor, heads: int, d_kv: int) -> torch.Tensor:
    """[batch, length, heads * d_kv] → [batch, heads, length, d_kv]."""
    return states.view(states.shape[0], -1, heads, d_kv).transpose(1, 2)


def _attend(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor, scale: float
) -> torch.Tensor:
    """Attention as one scaled_dot_product_attention: the dynamo exporter writes it as ONNX's
    own Attention op (opset 23), bias added to the scores; [batch, length, heads * d_kv]."""
    out = nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=bias, scale=scale)
    out = out.transpose(1, 2).contiguous()  # a view of a transpose does not export
    return out.reshape(out.shape[0], out.shape[1], -1)


def _additive_mask(mask: torch.Tensor) -> torch.Tensor:
    """[batch, keys] of 1/0 → [batch, 1, 1, keys] of 0/most negative, as transformers does."""
    blocked = 1.0 - mask[:, None, None, :].to(torch.float32)
    return blocked * torch.finfo(torch.float32).min


def _cross_mask(mask: torch.Tensor, tokens: int) -> torch.Tensor:
    """[batch, source] of 1/0 → [batch, 1, tokens, source]: onnxruntime's Attention takes a
    mask whose query dimension is the query's length, not one broadcast from 1."""
    return _additive_mask(mask).expand(-1, -1, tokens, -1)


def _write(cache: torch.Tensor, new: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """`cache` [batch, heads, capacity, d_kv] with `new` [batch, heads, tokens, d_kv] written
    from each row's `start` slot on: ONNX TensorScatter in the graph, which the server runs
    in place (as export/causal.py's)."""
    if torch.onnx.is_in_onnx_export():
        return torch.onnx.ops.symbolic(
            "TensorScatter",
            (cache, new, start),
            {"axis": 2},
            dtype=cache.dtype,
            shape=cache.shape,
            version=OPSET,
        )
    out = cache.clone()
    for row in range(cache.shape[0]):
        first = int(start[row])
        out[row, :, first : first + new.shape[2]] = new[row]
    return out


def _causal_mask(positions: torch.Tensor, capacity: int) -> torch.Tensor:
    """[batch, 1, tokens, capacity]: 0 where query t may see slot j (j ≤ its position), the most
    negative float elsewhere (the later new tokens, and slots not written yet)."""
    slots = torch.arange(capacity, dtype=torch.long)[None, None, :]
    blocked = (slots > positions[:, :, None]).to(torch.float32)
    return (blocked * torch.finfo(torch.float32).min)[:, None, :, :]


def _cross_projections(model: Any, is_t5: bool) -> list[tuple[nn.Linear, nn.Linear]]:
    if is_t5:
        return [
            (block.layer[1].EncDecAttention.k, block.layer[1].EncDecAttention.v)
            for block in model.decoder.block
        ]
    return [
        (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj)
        for layer in model.model.decoder.layers
    ]


class _T5Encoder(nn.Module):
    """T5's encoder stack with its self-attention through `_attend`: transformers' own sdpa
    path reshapes a transposed view, which the dynamo exporter cannot decompose."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        config = model.config
        self.stack = model.encoder
        self.attentions = nn.ModuleList(_T5SelfAttention(b.layer[0]) for b in self.stack.block)
        self.feed_forwards = nn.ModuleList(_T5FeedForward(b.layer[1]) for b in self.stack.block)
        self.heads, self.d_kv = config.num_heads, config.d_kv
        self.buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        positions = torch.arange(length, dtype=torch.long)
        relative = positions[None, :] - positions[:, None]  # key position - query position
        bucket = T5Attention._relative_position_bucket(
            relative, bidirectional=True, num_buckets=self.buckets, max_distance=self.max_distance
        )
        first = self.stack.block[0].layer[0].SelfAttention
        bias = first.relative_attention_bias(bucket).permute([2, 0, 1]).unsqueeze(0)
        bias = bias + _additive_mask(attention_mask)
        hidden = self.stack.embed_tokens(input_ids)
        attentions = typed(_T5SelfAttention, self.attentions)
        feed_forwards = typed(_T5FeedForward, self.feed_forwards)
        for attention, feed_forward in zip(attentions, feed_forwards, strict=True):
            query, key, value = (
                _heads(part, self.heads, self.d_kv) for part in attention.projections(hidden)
            )
            hidden = hidden + attention.o(_attend(query, key, value, bias, 1.0))
            hidden = feed_forward(hidden)
        return rms_norm(self.stack.final_layer_norm, hidden)


class _BartEncoder(nn.Module):
    """BART's encoder as transformers writes it, on its sdpa attention."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        model.model.encoder.set_attn_implementation("sdpa")
        self.stack = model.model.encoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.stack(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        return out.last_hidden_state


class _EncoderWithCrossCache(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        projections: list[tuple[nn.Linear, nn.Linear]],
        heads: int,
        d_kv: int,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        # Every decoder layer's cross key and value projection of the encoder's output, as one
        # matrix product; its parts in the order of the graph's cross outputs (key, value, ...).
        self.projections = merged_linear(*(module for pair in projections for module in pair))
        self.widths = [module.out_features for pair in projections for module in pair]
        self.heads, self.d_kv = heads, d_kv

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[Any, ...]:
        hidden = self.encoder(input_ids, attention_mask)
        parts = self.projections(hidden).split(self.widths, dim=2)
        return (hidden, *(_heads(part, self.heads, self.d_kv) for part in parts))


class _T5SelfAttention(nn.Module):
    """A T5 self-attention block's norm and its query, key and value projections as one
    matrix product; `o` its output projection."""

    def __init__(self, layer: Any) -> None:
        super().__init__()
        attention = layer.SelfAttention
        self.norm, self.o = layer.layer_norm, attention.o
        self.qkv = merged_linear(attention.q, attention.k, attention.v)
        self.width = attention.q.out_features

    def projections(self, hidden: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.qkv(rms_norm(self.norm, hidden)).split(self.width, dim=2))


class _T5FeedForward(nn.Module):
    """T5's feed-forward block with its residual: ReLU (t5) or gated (t5 v1.1, mT5, the gate
    and input projections as one matrix product)."""

    def __init__(self, layer: Any) -> None:
        super().__init__()
        dense = layer.DenseReluDense
        self.norm, self.wo, self.act = layer.layer_norm, dense.wo, dense.act
        self.gated = hasattr(dense, "wi_0")
        self.wi = merged_linear(dense.wi_0, dense.wi_1) if self.gated else dense.wi
        self.width = self.wi.out_features // 2

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        inner = self.wi(rms_norm(self.norm, hidden))
        if self.gated:
            gate, up = inner.split(self.width, dim=2)
            inner = self.act(gate) * up
        else:
            inner = self.act(inner)
        return hidden + self.wo(inner)


class _T5Step(nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        config = model.config
        self.decoder = model.decoder
        self.attentions = nn.ModuleList(_T5SelfAttention(b.layer[0]) for b in model.decoder.block)
        self.feed_forwards = nn.ModuleList(_T5FeedForward(b.layer[2]) for b in model.decoder.block)
        self.lm_head = model.lm_head
        self.heads, self.d_kv = config.num_heads, config.d_kv
        self.layers = config.num_decoder_layers
        self.buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        scale = getattr(config, "scale_decoder_outputs", config.tie_word_embeddings)
        self.output_scale = config.d_model**-0.5 if scale else 1.0

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        *caches: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        past, cross = caches[: 2 * self.layers], caches[2 * self.layers :]
        start = position_ids[:, 0]
        capacity = past[0].shape[2]
        # Slot j sits j - position tokens from query t, per row and query (the future is
        # masked): [batch, tokens, capacity].
        slots = torch.arange(capacity, dtype=torch.long)[None, None, :]
        relative = slots - position_ids[:, :, None]
        bucket = T5Attention._relative_position_bucket(
            relative, bidirectional=False, num_buckets=self.buckets, max_distance=self.max_distance
        )
        first = self.decoder.block[0].layer[0].SelfAttention
        # [batch, tokens, capacity, heads] → [batch, heads, tokens, capacity]
        position_bias = first.relative_attention_bias(bucket).permute([0, 3, 1, 2])
        self_bias = position_bias + _causal_mask(position_ids, capacity)
        cross_bias = _cross_mask(encoder_attention_mask, input_ids.shape[1])
        hidden = self.decoder.embed_tokens(input_ids)
        presents: list[torch.Tensor] = []
        for i, block in enumerate(self.decoder.block):
            attention = typed(_T5SelfAttention, self.attentions)[i]
            query, key, value = (
                _heads(part, self.heads, self.d_kv) for part in attention.projections(hidden)
            )
            key = _write(past[2 * i], key, start)
            value = _write(past[2 * i + 1], value, start)
            presents += [key, value]
            hidden = hidden + attention.o(_attend(query, key, value, self_bias, 1.0))
            layer = block.layer[1]
            cross_attention = layer.EncDecAttention
            normed = rms_norm(layer.layer_norm, hidden)
            query = _heads(cross_attention.q(normed), self.heads, self.d_kv)
            attended = _attend(query, cross[2 * i], cross[2 * i + 1], cross_bias, 1.0)
            hidden = hidden + cross_attention.o(attended)
            hidden = typed(_T5FeedForward, self.feed_forwards)[i](hidden)
        hidden = rms_norm(self.decoder.final_layer_norm, hidden)
        if self.output_scale != 1.0:
            hidden = hidden * self.output_scale
        return (self.lm_head(hidden), *presents)


class _BartStep(nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        config = model.config
        self.decoder = model.model.decoder
        self.lm_head = model.lm_head
        # Each layer's self-attention query, key and value projections as one matrix product.
        self.self_qkv = nn.ModuleList(
            merged_linear(a.q_proj, a.k_proj, a.v_proj)
            for a in (layer.self_attn for layer in self.decoder.layers)
        )
        self.register_buffer("final_logits_bias", model.final_logits_bias.clone())
        self.heads = config.decoder_attention_heads
        self.d_kv = config.d_model // self.heads
        self.scale = self.d_kv**-0.5
        self.layers = config.decoder_layers

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        encoder_attention_mask: torch.Tensor,
        *caches: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        past, cross = caches[: 2 * self.layers], caches[2 * self.layers :]
        start = position_ids[:, 0]
        self_bias = _causal_mask(position_ids, past[0].shape[2])
        cross_bias = _cross_mask(encoder_attention_mask, input_ids.shape[1])
        embed = self.decoder.embed_positions
        position = nn.functional.embedding(position_ids + embed.offset, embed.weight)
        hidden = self.decoder.layernorm_embedding(self.decoder.embed_tokens(input_ids) + position)
        presents: list[torch.Tensor] = []
        for i, layer in enumerate(self.decoder.layers):
            attention = layer.self_attn
            query, new_key, new_value = (
                _heads(part, self.heads, self.d_kv)
                for part in self.self_qkv[i](hidden).split(self.heads * self.d_kv, dim=2)
            )
            key = _write(past[2 * i], new_key, start)
            value = _write(past[2 * i + 1], new_value, start)
            presents += [key, value]
            attended = attention.out_proj(_attend(query, key, value, self_bias, self.scale))
            hidden = layer.self_attn_layer_norm(hidden + attended)
            attention = layer.encoder_attn
            query = _heads(attention.q_proj(hidden), self.heads, self.d_kv)
            attended = _attend(query, cross[2 * i], cross[2 * i + 1], cross_bias, self.scale)
            hidden = layer.encoder_attn_layer_norm(hidden + attention.out_proj(attended))
            feed_forward = layer.fc2(layer.activation_fn(layer.fc1(hidden)))
            hidden = layer.final_layer_norm(hidden + feed_forward)
        logits = self.lm_head(hidden) + self.final_logits_bias
        return (logits, *presents)


def dummy_decoder_feeds(
    model: Seq2Seq, batch: int, capacity: int, source: int, tokens: int = 1
) -> dict[str, Any]:
    cache = (batch, model.num_heads, capacity, model.d_kv)
    cross = (batch, model.num_heads, source, model.d_kv)
    # Rows at different lengths, each row's tokens consecutive from there (within capacity).
    starts = torch.arange(batch, dtype=torch.int64) % max(1, capacity - tokens + 1)
    feeds: dict[str, Any] = {
        "input_ids": torch.arange(batch * tokens).reshape(batch, tokens) % model.vocab_size,
        "position_ids": starts[:, None] + torch.arange(tokens)[None, :],
        "encoder_attention_mask": torch.ones(batch, source, dtype=torch.int64),
    }
    for name in cache_names(PAST, model.num_layers):
        feeds[name] = torch.randn(cache)
    for name in cache_names(CROSS, model.num_layers):
        feeds[name] = torch.randn(cross)
    return {name: feeds[name] for name in model.decoder_inputs}


def export_onnx(model: Seq2Seq, encoder_path: Path, decoder_path: Path) -> None:
    """Both graphs by the dynamo exporter at OPSET: every attention one Attention."""
    # tokens > 1 in the example: a dimension of size 1 would be fixed at 1 by torch.export.
    batch, source, capacity, tokens = 2, 7, 9, 3
    ids = torch.arange(batch * source, dtype=torch.int64).reshape(batch, source) % model.vocab_size
    rows, sources, capacities = Dim("batch"), Dim("source"), Dim("capacity")
    new_tokens = Dim("tokens")
    per_input: dict[str, dict[int, Any]] = {
        "input_ids": {0: rows, 1: new_tokens},
        "position_ids": {0: rows, 1: new_tokens},
        "encoder_attention_mask": {0: rows, 1: sources},
    }
    for name in cache_names(PAST, model.num_layers):
        per_input[name] = {0: rows, 2: capacities}
    for name in cache_names(CROSS, model.num_layers):
        per_input[name] = {0: rows, 2: sources}
    shapes = [per_input[name] for name in model.decoder_inputs]
    fixed = len(shapes) - 4 * model.num_layers  # the step takes its caches as *caches
    decoder_feeds = dummy_decoder_feeds(model, batch, capacity, source, tokens)
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        # The exporter prints its progress and warns about torchvision; neither is ours.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.encoder,
            (ids, torch.ones_like(ids)),
            str(encoder_path),
            dynamo=True,
            external_data=False,  # one file per graph, hashed in model.yaml (< 2 GB)
            opset_version=OPSET,
            input_names=ENCODER_INPUTS,
            output_names=model.encoder_outputs,
            dynamic_shapes=({0: rows, 1: sources}, {0: rows, 1: sources}),
        )
        torch.onnx.export(
            model.decoder,
            tuple(decoder_feeds.values()),
            str(decoder_path),
            dynamo=True,
            external_data=False,  # one file per graph, hashed in model.yaml (< 2 GB)
            opset_version=OPSET,
            input_names=model.decoder_inputs,
            output_names=model.decoder_outputs,
            dynamic_shapes=(*shapes[:fixed], tuple(shapes[fixed:])),
        )
