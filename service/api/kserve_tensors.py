"""KServe V2 tensors on the wire: request inputs to arrays and texts, outputs to raw bytes.

Inputs arrive either as typed ``contents`` or as ``raw_input_contents`` (little-endian,
row-major; a BYTES element is a 4-byte little-endian length and then its bytes). Outputs
always leave as ``raw_output_contents``, which is what tritonclient reads fastest.
Every check here names the input it is about, so the client knows what to fix.

Text inputs are declared [-1, 1], Triton's convention for a batched string (ModelConfig
dims [1]), which perf_analyzer and Triton's clients build requests from; [N] is accepted too.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from service.api.protos.inference import grpc_predict_v2_pb2 as pb
from service.errors import InvalidArgument

# Fixed-size V2 datatypes and their little-endian numpy types.
NUMPY_TYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
BYTES = "BYTES"

# Which InferTensorContents field carries each datatype (the protocol has none for FP16).
_CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    BYTES: "bytes_contents",
}
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """One input or output of a V2 model; -1 in ``shape`` means any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    optional: bool = False

    @classmethod
    def text(cls, name: str) -> TensorSpec:
        """A batch of texts, one per row: [N, 1], or [N] (read_inputs takes both)."""
        return cls(name, BYTES, TEXT_SHAPE)


TEXT_SHAPE = (-1, 1)


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    array: np.ndarray | None = None  # fixed-size datatypes
    items: list[bytes] | None = None  # BYTES, flattened

    def values(self) -> np.ndarray:
        assert self.array is not None, f"{self.name} is BYTES"
        return self.array

    def elements(self) -> list[bytes]:
        assert self.items is not None, f"{self.name} is not BYTES"
        return self.items


def read_inputs(
    request: pb.ModelInferRequest, model: str, specs: Sequence[TensorSpec]
) -> dict[str, Tensor]:
    """The request's inputs by name, checked against the model's specs."""
    by_name = {spec.name: spec for spec in specs}
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidArgument(
            f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} inputs; "
            "send one per input, in the order of inputs"
        )
    tensors: dict[str, Tensor] = {}
    for i, tensor in enumerate(request.inputs):
        spec = by_name.get(tensor.name)
        if spec is None:
            raise InvalidArgument(
                f"model {model!r} has no input {tensor.name!r}; its inputs: {_names(specs)}"
            )
        if tensor.name in tensors:
            raise InvalidArgument(f"input {tensor.name!r} is sent twice")
        if tensor.datatype != spec.datatype:
            raise InvalidArgument(
                f"input {spec.name!r} must be {spec.datatype}; got {tensor.datatype or 'none'!r}"
            )
        shape = tuple(int(d) for d in tensor.shape)
        _check_shape(spec, shape)
        tensors[spec.name] = _decode(tensor, raw[i] if raw else None, spec, shape)
    for spec in specs:
        if not spec.optional and spec.name not in tensors:
            raise InvalidArgument(f"input {spec.name!r} is missing; model {model!r} needs it")
    return tensors


def requested_outputs(request: pb.ModelInferRequest, specs: Sequence[TensorSpec]) -> list[str]:
    """Names of the outputs to return, in the order the client asked (default: all)."""
    known = {spec.name for spec in specs}
    names: list[str] = []
    for wanted in request.outputs:
        if wanted.name not in known:
            raise InvalidArgument(
                f"model {request.model_name!r} has no output {wanted.name!r}; "
                f"its outputs: {_names(specs)}"
            )
        if wanted.name not in names:
            names.append(wanted.name)
    return names or [spec.name for spec in specs]


def write_outputs(response: pb.ModelInferResponse, tensors: Sequence[Tensor]) -> None:
    for tensor in tensors:
        out = response.outputs.add(name=tensor.name, datatype=tensor.datatype)
        out.shape.extend(tensor.shape)
        if tensor.datatype == BYTES:
            raw = pack_bytes(tensor.elements())
        else:
            dtype = NUMPY_TYPES[tensor.datatype]
            raw = np.ascontiguousarray(tensor.values(), dtype=dtype).tobytes()
        response.raw_output_contents.append(raw)


def pack_bytes(items: Sequence[bytes]) -> bytes:
    """BYTES elements on the wire: each a 4-byte little-endian length, then its bytes."""
    return b"".join(_LENGTH.pack(len(item)) + item for item in items)


def texts(tensor: Tensor) -> list[str]:
    """A BYTES tensor's elements as text; INVALID_ARGUMENT names the element that is not UTF-8."""
    out = []
    for i, item in enumerate(tensor.elements()):
        try:
            out.append(item.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise InvalidArgument(f"{tensor.name}[{i}] is not valid UTF-8: {exc.reason}") from exc
    return out


# -- request parameters --------------------------------------------------------------------


def bool_parameter(params: Mapping[str, pb.InferParameter], key: str, default: bool) -> bool:
    if key not in params:
        return default
    if params[key].WhichOneof("parameter_choice") != "bool_param":
        raise InvalidArgument(f"parameter {key!r} must be a bool")
    return bool(params[key].bool_param)


def string_parameter(params: Mapping[str, pb.InferParameter], key: str, default: str) -> str:
    if key not in params:
        return default
    if params[key].WhichOneof("parameter_choice") != "string_param":
        raise InvalidArgument(f"parameter {key!r} must be a string")
    return str(params[key].string_param)


def int_parameter(params: Mapping[str, pb.InferParameter], key: str, default: int) -> int:
    if key not in params:
        return default
    kind = params[key].WhichOneof("parameter_choice")
    if kind not in {"int64_param", "uint64_param"}:
        raise InvalidArgument(f"parameter {key!r} must be an integer")
    return int(getattr(params[key], kind))


def float_parameter(params: Mapping[str, pb.InferParameter], key: str, default: float) -> float:
    if key not in params:
        return default
    kind = params[key].WhichOneof("parameter_choice")
    if kind not in {"double_param", "int64_param", "uint64_param"}:
        raise InvalidArgument(f"parameter {key!r} must be a number")
    return float(getattr(params[key], kind))


# -- inside ----------------------------------------------------------------------------------


def _names(specs: Sequence[TensorSpec]) -> str:
    return ", ".join(spec.name for spec in specs)


def _check_shape(spec: TensorSpec, shape: tuple[int, ...]) -> None:
    if spec.shape == TEXT_SHAPE and len(shape) == 1:
        shape = (*shape, 1)  # [N] texts: as [N, 1]
    fits = len(shape) == len(spec.shape) and all(
        got >= 0 and want in (-1, got) for got, want in zip(shape, spec.shape, strict=True)
    )
    if not fits:
        raise InvalidArgument(
            f"input {spec.name!r} has shape {list(shape)}; the model takes "
            f"{list(spec.shape)} (-1: any size)"
        )


def _decode(
    tensor: pb.ModelInferRequest.InferInputTensor,
    raw: bytes | None,
    spec: TensorSpec,
    shape: tuple[int, ...],
) -> Tensor:
    count = math.prod(shape)
    field = _CONTENTS_FIELD.get(spec.datatype)
    typed = getattr(tensor.contents, field) if field else []
    if raw is not None and len(typed):
        raise InvalidArgument(f"input {spec.name!r} has both contents and raw_input_contents")
    if raw is None and not len(typed) and count:
        raise InvalidArgument(f"input {spec.name!r} has no data")
    if spec.datatype == BYTES:
        items = split_bytes(raw, spec.name, count) if raw is not None else list(typed)
        if len(items) != count:
            raise InvalidArgument(
                f"input {spec.name!r} has {len(items)} elements; shape {list(shape)} needs {count}"
            )
        return Tensor(spec.name, spec.datatype, shape, items=items)
    dtype = NUMPY_TYPES[spec.datatype]
    if raw is not None:
        if len(raw) != count * dtype.itemsize:
            raise InvalidArgument(
                f"input {spec.name!r} has {len(raw)} bytes; shape {list(shape)} of "
                f"{spec.datatype} needs {count * dtype.itemsize}"
            )
        array = np.frombuffer(raw, dtype=dtype)
    else:
        if len(typed) != count:
            raise InvalidArgument(
                f"input {spec.name!r} has {len(typed)} elements; shape {list(shape)} needs {count}"
            )
        array = np.asarray(typed, dtype=dtype)
    return Tensor(spec.name, spec.datatype, shape, array=array.reshape(shape))


def split_bytes(raw: bytes, name: str, count: int) -> list[bytes]:
    """BYTES elements from the wire (pack_bytes'), at most `count` + 1 of them."""
    items: list[bytes] = []
    offset = 0
    while offset < len(raw):
        if offset + _LENGTH.size > len(raw):
            raise InvalidArgument(f"input {name!r}: raw BYTES end inside a length prefix")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += _LENGTH.size
        if offset + length > len(raw):
            raise InvalidArgument(
                f"input {name!r}: element {len(items)} claims {length} bytes past the end"
            )
        items.append(raw[offset : offset + length])
        offset += length
        if len(items) > count:
            break  # the count check in _decode reports it
    return items
