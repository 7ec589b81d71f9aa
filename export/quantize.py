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
# Measured on the 1024 corpus texts and the 16 parity sentences (AMD EPYC, avx2 only), each
# text's cosine against fp32 alone, in the server's length-sorted batches and alone: with the
# recipe below every text holds 0.99 from K = 30 (min 0.9902 batched, 0.9905 alone), where
# 8% of the tokens run in fp32; 1.29x fp32's speed against 1.37x for int8 on every row,
# which leaves 0.3% of texts under 0.99 (min 0.979). Calibrated static QDQ held 0.996 on
# every text but ran at 0.70x fp32, and int8 on fewer ops (attention only) at 1.0x.
INT8_FP32_ROWS_UP_TO = 30


def quantize_int8(
    fused: Path,
    out: Path,
    *,
    keep_ffn_down_fp32: bool = True,
    op_types: list[str] | None = None,
) -> Quantization:
    """`keep_ffn_down_fp32=False` quantizes every MatMul: faster, less exact (`make bench`).
    `op_types`: only these ops (None: the quantizer's default, which also turns onnxruntime's
    own Attention into QAttention)."""
    keep_fp32 = _matmuls_after_gelu(fused) if keep_ffn_down_fp32 else []
    # per_channel: one scale per output column (per-tensor scales drop the cosine to ~0.85).
    # reduce_range: 7-bit weights, so that u8 x s8 products summed in pairs cannot saturate
    # 16 bits on CPUs without VNNI. Without it texts of every length fall under 0.99 (2.0%
    # of the corpus run alone, up to 116 tokens); with it the misses are short texts, which
    # the fp32 split above takes.
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
            reduce_range=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_fp32,
            op_types_to_quantize=op_types,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        root.setLevel(level)
    return Quantization(
        method="dynamic, reduce_range",
        weight_type="int8",
        per_channel=True,
        fp32_matmuls=len(keep_fp32),
    )


def _matmuls_after_gelu(path: Path) -> list[str]:
    graph = onnx.load(str(path), load_external_data=False).graph
    gelu_outputs = {
        output for node in graph.node if node.op_type in _GELU_OP_TYPES for output in node.output
    }
    matmuls = (node for node in graph.node if node.op_type == "MatMul")
    return [node.name for node in matmuls if node.input[0] in gelu_outputs]
