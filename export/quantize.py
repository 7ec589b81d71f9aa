"""Dynamic int8 quantization of a fused fp32 graph."""

import logging
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic

from service.model_format import Quantization

# GELU's output has a much wider range than any other activation, and dynamic quantization
# scales each activation tensor as a whole, so the FFN down-projection that reads it loses the
# most. Keeping those MatMuls fp32 raised all-MiniLM-L6-v2's worst parity cosine from 0.957 to
# 0.976 and the mean from 0.991 to 0.995, for 11 MB more (33 MB in all, vs 90 MB fp32).
_GELU_OP_TYPES = frozenset({"Gelu", "FastGelu", "BiasGelu"})


# Rows of at most this many tokens run on the fp32 graph in the int8 variant (split.py).
INT8_FP32_ROWS_UP_TO = 8


def quantize_int8(fused: Path, out: Path, *, keep_ffn_down_fp32: bool = True) -> Quantization:
    """`keep_ffn_down_fp32=False` quantizes every MatMul: faster, less exact (`make bench`)."""
    keep_fp32 = _matmuls_after_gelu(fused) if keep_ffn_down_fp32 else []
    # per_channel: one scale per output column (per-tensor scales drop the cosine to ~0.85).
    # DefaultTensorType: the fused contrib ops have no shape inference, and without a default
    # type the quantizer fails on their outputs.
    # The quantizer logs a "consider pre-processing" hint on the root logger on every call;
    # silence it: the graph is already optimized by fusion, and parity is checked afterwards.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            fused,
            out,
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_fp32,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)
    return Quantization(
        method="dynamic", weight_type="int8", per_channel=True, fp32_matmuls=len(keep_fp32)
    )


def _matmuls_after_gelu(path: Path) -> list[str]:
    graph = onnx.load(str(path), load_external_data=False).graph
    gelu_outputs = {
        output for node in graph.node if node.op_type in _GELU_OP_TYPES for output in node.output
    }
    matmuls = (node for node in graph.node if node.op_type == "MatMul")
    return [node.name for node in matmuls if node.input[0] in gelu_outputs]
