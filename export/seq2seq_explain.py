"""The explanation graph of a seq2seq model: what each generated token's cross-attention
weighed in the source.

`explain.onnx` takes `input_ids`, `attention_mask` (the source) and `decoder_input_ids` (the
start token and the generated tokens but the last: teacher forcing, one pass) and returns,
for every decoder layer, `attention.{i}`: the cross-attention probabilities [batch, heads,
target, source]. It is transformers' own model in eager attention, exported by the dynamo
exporter, and checked against its `output_attentions=True` (`cross_attentions`) on the
parity sentences: every target row over the real source tokens within EXPLAIN_LIMIT.
"""

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch
from torch.export import Dim

from export.explain import checked, kept
from export.seq2seq import OPSET, Seq2Seq
from service.model_format import EXPLAIN_FILE, ExplainGraph, attention_names

INPUTS = ["input_ids", "attention_mask", "decoder_input_ids"]
_TARGET = 6  # decoder tokens in the check


class _CrossAttentions(torch.nn.Module):
    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, decoder_input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            output_attentions=True,
            use_cache=False,
            return_dict=True,
        )
        return tuple(out.cross_attentions)


def stage(
    model: Seq2Seq, staging: Path, ids: np.ndarray, mask: np.ndarray, hashes: dict[str, str]
) -> ExplainGraph:
    """staging/explain.onnx, checked on the parity sentences `ids`/`mask`; its sha256 into
    `hashes`. A graph whose probabilities are not transformers' is deleted and recorded as
    failed: the model then cannot explain, and model.yaml says by how much it missed (very
    wide random weights put the softmax inputs in the thousands, where float32 rounding
    moves probabilities by 1e-4)."""
    model.model.set_attn_implementation("eager")  # sdpa hides the probabilities
    wrapper = _CrossAttentions(model.model).eval()
    path = staging / EXPLAIN_FILE
    names = attention_names(model.num_layers)
    start = model.generation.decoder_start_token_id
    decoder = np.full((len(ids), _TARGET), start, dtype=np.int64)
    decoder[:, 1:] = (np.arange(1, _TARGET) * 7) % model.vocab_size
    rows, sources, targets = Dim("batch"), Dim("source"), Dim("target")
    example = tuple(torch.from_numpy(a) for a in (ids, mask, decoder))
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # the exporter's progress and torchvision notes
        torch.onnx.export(
            wrapper,
            example,
            str(path),
            dynamo=True,
            external_data=False,
            opset_version=OPSET,
            input_names=INPUTS,
            output_names=names,
            dynamic_shapes=({0: rows, 1: sources}, {0: rows, 1: sources}, {0: rows, 1: targets}),
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph = session.run(None, dict(zip(INPUTS, (ids, mask, decoder), strict=True)))
    with torch.inference_mode():
        reference = wrapper(*example)
    real = np.broadcast_to(mask.astype(bool)[:, None, None, :], graph[0].shape)
    diff = max(
        float(np.abs(ours - theirs.numpy())[real].max())
        for ours, theirs in zip(graph, reference, strict=True)
    )
    layout = "batch, heads, target, source (cross-attention)"
    return kept(checked(model.num_layers, model.num_heads, layout, diff), staging, hashes)
