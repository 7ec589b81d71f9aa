"""Fuse an exported graph with onnxruntime's transformer optimizer; summarize what it fused."""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnxruntime.transformers.optimizer import optimize_model

# onnxruntime's fused kernels (Attention, SkipLayerNormalization, ...) live in this domain.
FUSED_DOMAIN = "com.microsoft"
# Standard ops that are one fused kernel in onnxruntime (opset 23), which the generation
# graphs use: ONNX's own Attention, and the RMSNorm and rotary positions of T5 and Llama.
FUSED_STANDARD_OPS = ("Attention", "RMSNormalization", "RotaryEmbedding")
# Standard ops left behind when a fusion missed: Softmax is attention that was not fused,
# ReduceMean/LayerNormalization a layer norm, Erf a GELU.
UNFUSED_OP_TYPES = ("Softmax", "LayerNormalization", "ReduceMean", "Erf")


@dataclass(frozen=True)
class GraphSummary:
    inputs: list[str]
    outputs: list[str]
    fused: dict[str, int]
    unfused: dict[str, int]

    @property
    def attention(self) -> int:
        return self.fused.get("Attention", 0)


def fuse(raw: Path, out: Path, optimizer_type: str, num_heads: int, hidden_size: int) -> None:
    # opt_level=0: only the Python fusions, so the saved graph stays free of provider-specific
    # rewrites; onnxruntime applies its own graph optimizations when the server loads it.
    optimized = optimize_model(
        str(raw),
        model_type=optimizer_type,
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,
        only_onnxruntime=False,
    )
    optimized.save_model_to_file(str(out))


def summarize_graph(path: Path) -> GraphSummary:
    graph = onnx.load(str(path), load_external_data=False).graph
    fused = Counter(
        node.op_type
        for node in graph.node
        if node.domain == FUSED_DOMAIN
        or (node.domain in ("", "ai.onnx") and node.op_type in FUSED_STANDARD_OPS)
    )
    bare = Counter(node.op_type for node in graph.node if node.domain in ("", "ai.onnx"))
    return GraphSummary(
        inputs=[value.name for value in graph.input],
        outputs=[value.name for value in graph.output],
        fused=dict(sorted(fused.items())),
        unfused={op_type: bare[op_type] for op_type in UNFUSED_OP_TYPES},
    )
