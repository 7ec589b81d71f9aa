"""The explanation graph of an encoder: the same model with its attention probabilities as
outputs, exported beside the fused graph (which computes them inside its Attention nodes and
never shows them).

`explain.onnx` takes the graph's inputs and returns, for every layer, `attention.{i}`: the
softmax probabilities laid out [batch, query, heads, key], the query axis second so that
the server's scheduler cuts each row's queries to its length as it cuts hidden states. It
is exported unfused (eager attention, the legacy exporter) and checked against
transformers' `output_attentions=True` on the eager model: every real query and key of the
parity sentences within EXPLAIN_LIMIT.
"""

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from export.encoder import Encoder
from export.parity import Batch
from service.model_format import EXPLAIN_FILE, ExplainGraph, attention_names, sha256_file

EXPLAIN_LIMIT = 1e-5
_AXES = {0: "batch", 1: "sequence"}


class _Attentions(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, input_names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        kwargs = dict(zip(self.input_names, inputs, strict=True))
        result = self.model(**kwargs, output_attentions=True, return_dict=True)
        # [batch, heads, query, key] -> [batch, query, heads, key]
        return tuple(layer.transpose(1, 2) for layer in result.attentions)


def stage(
    model: Encoder, staging: Path, batch: Batch, opset: int, hashes: dict[str, str]
) -> ExplainGraph:
    """explain.onnx into the folder being built, checked, its sha256 added to `hashes`. A
    graph whose probabilities are not transformers' is deleted and recorded as failed: the
    model then serves everything but explanations, and model.yaml says by how much."""
    return kept(export(model, staging, batch, opset), staging, hashes)


def checked(layers: int, heads: int, layout: str, diff: float) -> ExplainGraph:
    """The record of explain.onnx, its probabilities `diff` from transformers'."""
    return ExplainGraph(
        file=EXPLAIN_FILE,
        layers=layers,
        heads=heads,
        outputs=attention_names(layers),
        layout=layout,
        max_abs_diff=diff,
        max_abs_diff_limit=EXPLAIN_LIMIT,
        passed=diff <= EXPLAIN_LIMIT,
    )


def kept(graph: ExplainGraph, staging: Path, hashes: dict[str, str]) -> ExplainGraph:
    """A graph that held its check hashed into `hashes`; one that did not, deleted."""
    if graph.passed:
        hashes[graph.file] = sha256_file(staging / graph.file)
    else:
        (staging / graph.file).unlink()
    return graph


def export(model: Encoder, staging: Path, batch: Batch, opset: int) -> ExplainGraph:
    """Write staging/explain.onnx and check it; ExplainGraph records the check."""
    path = staging / EXPLAIN_FILE
    wrapper = _Attentions(model.module.model, model.input_names).eval()
    names = attention_names(model.num_layers)
    dummy = {name: torch.from_numpy(batch.feeds[name][:2]) for name in model.input_names}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
        torch.onnx.export(
            wrapper,
            tuple(dummy[name] for name in model.input_names),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=model.input_names,
            output_names=names,
            dynamic_axes={
                **{name: _AXES for name in model.input_names},
                **{name: {0: "batch", 1: "sequence", 3: "keys"} for name in names},
            },
            do_constant_folding=True,
        )
    diff = _max_diff(wrapper, path, batch, model.input_names)
    return checked(model.num_layers, model.num_heads, "batch, query, heads, key", diff)


def _max_diff(wrapper: _Attentions, path: Path, batch: Batch, input_names: list[str]) -> float:
    """The largest difference from PyTorch's probabilities over real queries and keys."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    graph = session.run(None, {name: batch.feeds[name] for name in input_names})
    with torch.inference_mode():
        reference = wrapper(*(torch.from_numpy(batch.feeds[name]) for name in input_names))
    real = batch.mask.astype(bool)
    pairs = real[:, :, None, None] & real[:, None, None, :]  # [batch, query, 1, key]
    return max(
        float(np.abs(ours - theirs.numpy())[np.broadcast_to(pairs, ours.shape)].max())
        for ours, theirs in zip(graph, reference, strict=True)
    )
