"""Pieces of the generation step graphs that export as fewer, larger ops than transformers'
own modules do, each computing the same thing (the parity checks hold them to it).

A decoder step for one request is bound by reading the weights, and each op it runs costs a
dispatch and a synchronisation of the worker threads besides: at batch 1 a 30-layer model's
step ran about 1600 ops, a fifth of its time outside the matrix products.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

import torch
from torch import nn

ModuleType = TypeVar("ModuleType", bound=nn.Module)


def merged_linear(*linears: nn.Linear) -> nn.Linear:
    """One Linear computing all of `linears` (which share their input) side by side: one
    matrix product where there were several, each with its own pass over the input and its
    own dispatch. A part without a bias gets zeros."""
    weight = torch.cat([linear.weight for linear in linears])
    biased = any(linear.bias is not None for linear in linears)
    merged = nn.Linear(weight.shape[1], weight.shape[0], bias=biased)
    with torch.no_grad():
        merged.weight.copy_(weight)
        if merged.bias is not None:
            merged.bias.copy_(torch.cat([_bias(linear) for linear in linears]))
    return merged


def _bias(linear: nn.Linear) -> torch.Tensor:
    return linear.bias if linear.bias is not None else torch.zeros(linear.out_features)


def rms_norm(norm: Any, states: torch.Tensor) -> torch.Tensor:
    """A T5 or Llama RMSNorm module's output as one op (ONNX RMSNormalization, opset 23), where
    transformers writes six (pow, mean, add, sqrt, reciprocal, mul) before the weight."""
    weight = norm.weight
    return nn.functional.rms_norm(states, weight.shape, weight, norm.variance_epsilon)


def rotary(states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary positions on [batch, heads, tokens, head_dim] as one op (ONNX RotaryEmbedding,
    opset 23; halves rotated as transformers' rotate_half does), where transformers writes
    seven. `cos` and `sin` are [batch, tokens, head_dim / 2]."""
    return torch.onnx.ops.rotary_embedding(states, cos, sin)


def typed(kind: type[ModuleType], modules: nn.ModuleList) -> list[ModuleType]:
    """A ModuleList's modules as `kind` (mypy types a Module's attributes Tensor | Module)."""
    return cast(list[ModuleType], list(modules))
