"""Decoder-only causal LMs (GPT-2, Llama-shaped: Llama, Qwen2, SmolLM) in PyTorch: load one,
wrap its step as one graph, export.

The graph is what a continuous-batching loop with chunked prefill needs:

- inputs: `input_ids` [batch, tokens] (a prompt chunk, one token per row, or a token and
  the tokens drafted after it), `position_ids` [batch, tokens] (each token's position, which
  is also its cache slot: a row's tokens are consecutive, starting at its length so far),
  `logit_positions` [wanted] (which of the chunk's tokens' logits come out, the same for
  every row: the last one when prefilling or decoding, every one when verifying drafted
  tokens; the vocabulary projection is the step's largest matrix product, so it runs on
  those only), the cache
  `past.{i}.key` / `.value` [batch, kv_heads, capacity, head_dim];
- outputs: `logits` [batch, wanted, vocab], and `present.{i}.key` / `.value`: the same cache
  with the new tokens' keys and values written at their slots.

As for the summarizers (export/seq2seq.py), each present is one ONNX `TensorScatter`
(opset 24) on its past, run in place when the server binds one buffer as both. Query t of a
row sees the slots up to its own position (causal, and the slots not written yet masked), so
rows of a batch may be at different lengths and a prompt may come in chunks. Grouped-query
attention stays grouped: the keys and values keep their kv_heads, and the standard ONNX
`Attention` op takes fewer key/value heads than query heads.

The step is written here, from the model's own modules (projections, norms, MLPs, rotary
embedding), rather than traced through transformers' forward, whose cache objects and mask
builders assume one past length per batch; the parity check holds it to transformers.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.export import Dim
from transformers import AutoModelForCausalLM, GenerationConfig

from export.encoder import load_pretrained
from export.errors import ExportError
from export.seq2seq import OPSET, generation_record
from export.source import SourceFolder
from export.step_layers import merged_linear, rms_norm, rotary, typed
from service.model_format import PAST, Generation, cache_names, causal_inputs, causal_outputs

# config.model_type → the family whose step this module writes.
FAMILIES = {"gpt2": "gpt2", "llama": "llama", "qwen2": "llama"}
_NEG = torch.finfo(torch.float32).min


@dataclass(frozen=True)
class Causal:
    model: Any  # a transformers *ForCausalLM, eval mode
    step: nn.Module
    class_name: str
    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int  # query heads
    num_kv_heads: int  # key/value heads: the cache is [batch, num_kv_heads, slots, head_dim]
    head_dim: int
    vocab_size: int
    context_window: int  # most positions: prompt and generated tokens together
    tied_embeddings: bool
    generation: Generation
    inputs: list[str]
    outputs: list[str]


def check_supported(source: SourceFolder) -> str:
    family = FAMILIES.get(source.model_type)
    architectures = source.config.get("architectures") or ["?"]
    if family is None or not str(architectures[0]).endswith(("ForCausalLM", "LMHeadModel")):
        supported = ", ".join(sorted(FAMILIES))
        raise ExportError(
            f"architecture {architectures[0]} (model_type {source.model_type!r}) is not "
            f"supported for text-generation; supported: causal LMs of {supported}"
        )
    return family


def load(source: SourceFolder) -> Causal:
    family = check_supported(source)
    model = load_pretrained(AutoModelForCausalLM, source)
    config = model.config
    if family == "gpt2":
        _refuse(config, scale_attn_by_inverse_layer_idx=False, reorder_and_upcast_attn=False)
        heads = kv_heads = config.n_head
        head_dim = config.n_embd // heads
        step: nn.Module = _GPT2Step(model)
        layers, hidden, window = config.n_layer, config.n_embd, config.n_positions
    else:
        _refuse(config, use_sliding_window=False)
        if (getattr(config, "rope_scaling", None) or {}).get("rope_type", "default") not in (
            "default",
            "llama3",
            "linear",
        ):
            raise ExportError(f"rope_scaling {config.rope_scaling!r} is not supported")
        heads = config.num_attention_heads
        kv_heads = config.num_key_value_heads or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        step = _LlamaStep(model, heads, kv_heads, head_dim)
        layers, hidden = config.num_hidden_layers, config.hidden_size
        window = config.max_position_embeddings
    return Causal(
        model=model,
        step=step.eval(),
        class_name=type(model).__name__,
        model_type=config.model_type,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        vocab_size=config.vocab_size,
        context_window=int(window),
        tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
        generation=_generation(model.generation_config, config, int(window)),
        inputs=causal_inputs(layers),
        outputs=causal_outputs(layers),
    )


def _refuse(config: Any, **neutral: Any) -> None:
    """ExportError naming the config settings this step does not implement."""
    found = [f"{k}={getattr(config, k)!r}" for k, v in neutral.items()
             if getattr(config, k, v) != v]  # fmt: skip
    if found:
        raise ExportError(
            "the model config sets what the server does not implement: " + ", ".join(found)
        )


def _generation(generation: GenerationConfig, config: Any, window: int) -> Generation:
    """The source's generation defaults. A causal LM has no decoder start token: a prompt's
    own tokens come first; `decoder_start_token_id` records the BOS token (what generate()
    starts from on an empty prompt), or EOS where the model has none (GPT-2's are one)."""
    start = generation.bos_token_id if generation.bos_token_id is not None else config.bos_token_id
    eos = generation.eos_token_id if generation.eos_token_id is not None else config.eos_token_id
    if start is None:
        start = eos if not isinstance(eos, list) else eos[0]
    pad = generation.pad_token_id if generation.pad_token_id is not None else config.pad_token_id
    if pad is None:  # generate() pads with EOS then, and so may we: padding is never read
        pad = eos if not isinstance(eos, list) else eos[0]
    # generate() counts a causal LM's max_length with the prompt; new tokens are what a
    # request asks for here, so only max_new_tokens carries over (20, generate()'s default
    # length, when unset).
    max_new = min(generation.max_new_tokens or 20, window - 1)
    return generation_record(generation, start, eos, pad, max_new)


def _heads(states: torch.Tensor, heads: int, head_dim: int) -> torch.Tensor:
    """[batch, tokens, heads * head_dim] → [batch, heads, tokens, head_dim]."""
    return states.view(states.shape[0], -1, heads, head_dim).transpose(1, 2)


def _write(cache: torch.Tensor, new: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """`cache` [batch, heads, capacity, d] with `new` [batch, heads, tokens, d] written from each
    row's `start` slot on: ONNX TensorScatter in the graph, which the server runs in place."""
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
    negative float elsewhere (the future, and slots not written yet)."""
    slots = torch.arange(capacity, dtype=torch.long)[None, None, :]
    blocked = (slots > positions[:, :, None]).to(torch.float32)
    return (blocked * _NEG)[:, None, :, :]


def _wanted(hidden: torch.Tensor, logit_positions: torch.Tensor) -> torch.Tensor:
    """The hidden states of the tokens whose logits are wanted: [batch, wanted, hidden]."""
    return hidden.index_select(1, logit_positions)


def _attend(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor, scale: float
) -> torch.Tensor:
    """One scaled_dot_product_attention (ONNX's Attention op under the dynamo exporter), with
    fewer key/value heads than query heads where the model groups them;
    [batch, tokens, heads * head_dim]."""
    grouped = key.shape[1] != query.shape[1]
    out = nn.functional.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, scale=scale, enable_gqa=grouped
    )
    out = out.transpose(1, 2).contiguous()
    return out.reshape(out.shape[0], out.shape[1], -1)


class _GPT2Step(nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        config = model.config
        self.transformer = model.transformer
        self.lm_head = model.lm_head
        self.heads = config.n_head
        self.head_dim = config.n_embd // self.heads
        self.scale = self.head_dim**-0.5 if config.scale_attn_weights else 1.0

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        logit_positions: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        t = self.transformer
        mask = _causal_mask(position_ids, past[0].shape[2])
        start = position_ids[:, 0]
        hidden = t.wte(input_ids) + t.wpe(position_ids)
        presents: list[torch.Tensor] = []
        for i, block in enumerate(t.h):
            attention = block.attn
            query, key, value = attention.c_attn(block.ln_1(hidden)).split(
                self.heads * self.head_dim, dim=2
            )
            key = _write(past[2 * i], _heads(key, self.heads, self.head_dim), start)
            value = _write(past[2 * i + 1], _heads(value, self.heads, self.head_dim), start)
            presents += [key, value]
            query = _heads(query, self.heads, self.head_dim)
            hidden = hidden + attention.c_proj(_attend(query, key, value, mask, self.scale))
            hidden = hidden + block.mlp(block.ln_2(hidden))
        return (self.lm_head(t.ln_f(_wanted(hidden, logit_positions))), *presents)


class _LlamaLayer(nn.Module):
    """One decoder layer's weights, with the query, key and value projections merged into one
    matrix product, and the MLP's gate and up projections into another."""

    def __init__(self, layer: Any) -> None:
        super().__init__()
        attention, mlp = layer.self_attn, layer.mlp
        self.input_norm, self.post_attention_norm = (
            layer.input_layernorm,
            layer.post_attention_layernorm,
        )
        self.qkv = merged_linear(attention.q_proj, attention.k_proj, attention.v_proj)
        self.o_proj = attention.o_proj
        self.gate_up = merged_linear(mlp.gate_proj, mlp.up_proj)
        self.down_proj, self.act_fn = mlp.down_proj, mlp.act_fn
        self.intermediate = mlp.gate_proj.out_features

    def mlp(self, states: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(states).split(self.intermediate, dim=2)
        return self.down_proj(self.act_fn(gate) * up)


class _LlamaStep(nn.Module):
    """Llama's decoder (RMSNorm, rotary positions, grouped-query attention, gated MLP), and
    Qwen2's, which adds biases to the query, key and value projections (inside them)."""

    def __init__(self, model: Any, heads: int, kv_heads: int, head_dim: int) -> None:
        super().__init__()
        decoder = model.model
        self.embed_tokens, self.norm = decoder.embed_tokens, decoder.norm
        self.layers = nn.ModuleList(_LlamaLayer(layer) for layer in decoder.layers)
        self.lm_head = model.lm_head
        rope = decoder.rotary_emb
        self.inv_freq: torch.Tensor  # [head_dim / 2], the model's own (its rope scaling in it)
        self.register_buffer("inv_freq", rope.inv_freq.detach().clone(), persistent=False)
        self.rotary_scaling = float(rope.attention_scaling)
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, head_dim
        self.widths = [heads * head_dim, kv_heads * head_dim, kv_heads * head_dim]
        self.scale = head_dim**-0.5

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        logit_positions: torch.Tensor,
        *past: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        mask = _causal_mask(position_ids, past[0].shape[2])
        start = position_ids[:, 0]
        hidden = self.embed_tokens(input_ids)
        # transformers' rotary_emb without its duplicated halves: [batch, tokens, head_dim / 2]
        angles = position_ids[:, :, None].float() * self.inv_freq[None, None, :]
        cos, sin = angles.cos() * self.rotary_scaling, angles.sin() * self.rotary_scaling
        presents: list[torch.Tensor] = []
        for i, layer in enumerate(typed(_LlamaLayer, self.layers)):
            query, key, value = layer.qkv(rms_norm(layer.input_norm, hidden)).split(
                self.widths, dim=2
            )
            query = rotary(_heads(query, self.heads, self.head_dim), cos, sin)
            key = rotary(_heads(key, self.kv_heads, self.head_dim), cos, sin)
            key = _write(past[2 * i], key, start)
            value = _write(past[2 * i + 1], _heads(value, self.kv_heads, self.head_dim), start)
            presents += [key, value]
            attended = _attend(query, key, value, mask, self.scale)
            hidden = hidden + layer.o_proj(attended)
            hidden = hidden + layer.mlp(rms_norm(layer.post_attention_norm, hidden))
        hidden = rms_norm(self.norm, _wanted(hidden, logit_positions))
        return (self.lm_head(hidden), *presents)


def dummy_feeds(model: Causal, batch: int, tokens: int, capacity: int) -> dict[str, Any]:
    cache = (batch, model.num_kv_heads, capacity, model.head_dim)
    starts = torch.arange(batch, dtype=torch.int64) % max(1, capacity - tokens)
    feeds: dict[str, Any] = {
        "input_ids": torch.arange(batch * tokens).reshape(batch, tokens) % model.vocab_size,
        "position_ids": starts[:, None] + torch.arange(tokens)[None, :],
        # Not 1, nor the batch's or the chunk's size: the exporter keeps such a dim dynamic.
        "logit_positions": torch.arange(1, tokens),
    }
    for name in cache_names(PAST, model.num_layers):
        feeds[name] = torch.randn(cache)
    return {name: feeds[name] for name in model.inputs}


def export_onnx(model: Causal, path: Path) -> None:
    """The step by the dynamo exporter at OPSET: every attention one Attention node."""
    rows, tokens, capacities = Dim("batch"), Dim("tokens"), Dim("capacity")
    shapes: list[Any] = [{0: rows, 1: tokens}, {0: rows, 1: tokens}, {0: Dim("wanted")}]
    caches = tuple({0: rows, 2: capacities} for _ in range(2 * model.num_layers))
    feeds = dummy_feeds(model, batch=2, tokens=4, capacity=9)
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's progress and torchvision notes
        torch.onnx.export(
            model.step,
            tuple(feeds.values()),
            str(path),
            dynamo=True,
            external_data=False,  # one file, hashed in model.yaml (< 2 GB)
            opset_version=OPSET,
            input_names=model.inputs,
            output_names=model.outputs,
            dynamic_shapes=(*shapes, caches),
        )
