"""Dynamic int8 quantization of a fused fp32 graph."""

import logging
import tempfile
from pathlib import Path

import onnx
from onnx import numpy_helper
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
        with tempfile.TemporaryDirectory(prefix="attnserve-quantize-") as tmp:
            folded = _with_weight_transposes_folded(fused, Path(tmp) / fused.name)
            _quantize(folded, out, keep_fp32, op_types)
    finally:
        root.setLevel(level)
    return Quantization(
        method="dynamic, reduce_range",
        weight_type="int8",
        per_channel=True,
        fp32_matmuls=len(keep_fp32),
    )


def _quantize(fused: Path, out: Path, keep_fp32: list[str], op_types: list[str] | None) -> None:
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


def _with_weight_transposes_folded(path: Path, out: Path) -> Path:
    """`path` with each Transpose of a weight into a matrix product replaced by the transposed
    weight (a copy, at `out`; `path` itself when there is none). A tied LM head reads the
    embedding table through such a Transpose, and the quantizer leaves a MatMul whose weight
    is not an initializer in fp32: the largest matrix of a generation step (154 MB of
    bart-base's 353), read whole for every token."""
    model = onnx.load(str(path))
    graph = model.graph
    weights = {init.name: init for init in graph.initializer}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    folded = []
    for node in graph.node:
        if node.op_type != "Transpose" or node.input[0] not in weights:
            continue
        if not all(r.op_type in ("MatMul", "Gemm") for r in readers.get(node.output[0], [])):
            continue
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        table = numpy_helper.to_array(weights[node.input[0]])
        graph.initializer.append(
            numpy_helper.from_array(table.transpose(perm).copy(), node.output[0])
        )
        folded.append(node)
    if not folded:
        return path
    for node in folded:
        graph.node.remove(node)
    onnx.save(model, str(out))
    return out


def _matmuls_after_gelu(path: Path) -> list[str]:
    graph = onnx.load(str(path), load_external_data=False).graph
    gelu_outputs = {
        output for node in graph.node if node.op_type in _GELU_OP_TYPES for output in node.output
    }
    matmuls = (node for node in graph.node if node.op_type == "MatMul")
    return [node.name for node in matmuls if node.input[0] in gelu_outputs]
