"""KServe V2 REST (the Open Inference Protocol over HTTP), as Triton serves it and
tritonclient.http and perf_analyzer speak it.

Every route calls the gRPC KServeServicer with the message its JSON stands for, so the two
wires answer alike. Messages leave in protobuf's JSON with 64-bit integers as numbers, as
Triton writes them. ``infer`` takes tensors as JSON ``data`` or, with the binary-tensor
extension, as raw bytes after the JSON header (its length in Inference-Header-Content-Length;
``parameters.binary_data_size`` per input), and gives each output as JSON or as raw bytes
where the request asks (``binary_data`` on the output, or ``binary_data_output``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from google.protobuf import json_format
from google.protobuf.message import Message
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.api.kserve import KServeServicer
from service.api.kserve_tensors import BYTES, NUMPY_TYPES, pack_bytes, split_bytes
from service.api.protos.inference import grpc_predict_v2_pb2 as pb
from service.errors import InvalidArgument, Unavailable
from service.http.app import Endpoint, checked, kserve_error, parse_object
from service.http.context import HttpContext

HEADER_LENGTH = "inference-header-content-length"
Value = StrictBool | StrictInt | StrictFloat | StrictStr
_INT64 = (-(2**63), 2**63 - 1)
# Parameters that say how tensors travel over HTTP: read here, not passed on.
_TRANSPORT = frozenset({"binary_data", "binary_data_size", "binary_data_output"})


def to_json(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: StrictStr
    shape: list[StrictInt]
    datatype: StrictStr
    parameters: dict[str, Value] = {}
    data: Any = None


class _Output(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: StrictStr
    parameters: dict[str, Value] = {}


class _InferBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StrictStr = ""
    parameters: dict[str, Value] = {}
    inputs: list[_Input]
    outputs: list[_Output] = []


class KServeRest:
    def __init__(self, servicer: KServeServicer) -> None:
        self._v2 = servicer

    def endpoints(self) -> list[Endpoint]:
        def get(path: str, handler: Callable[..., Awaitable[Response]]) -> list[Endpoint]:
            # Each model route, also under /versions/{version} (what tritonclient sends when
            # a version is named).
            paths = [path]
            if path.startswith("/v2/models/{model}"):
                paths.append(path.replace("{model}", "{model}/versions/{version}", 1))
            return [Endpoint("GET", p, handler, kserve_error) for p in paths]

        return [
            Endpoint("GET", "/v2/health/live", self.live, kserve_error, open=True),
            Endpoint("GET", "/v2/health/ready", self.ready, kserve_error, open=True),
            *get("/v2", self.server_metadata),
            *get("/v2/models/stats", self.all_statistics),
            *get("/v2/models/{model}", self.model_metadata),
            *get("/v2/models/{model}/ready", self.model_ready),
            *get("/v2/models/{model}/config", self.model_config),
            *get("/v2/models/{model}/stats", self.statistics),
            Endpoint("POST", "/v2/models/{model}/infer", self.infer, kserve_error),
            Endpoint(
                "POST", "/v2/models/{model}/versions/{version}/infer", self.infer, kserve_error
            ),
            Endpoint("POST", "/v2/repository/index", self.repository_index, kserve_error),
        ]

    # -- health and metadata -------------------------------------------------------------

    async def live(self, request: Request, body: bytes, context: HttpContext) -> Response:
        reply = await self._v2.ServerLive(pb.ServerLiveRequest(), context.as_servicer_context())
        return JSONResponse({"live": reply.live})

    async def ready(self, request: Request, body: bytes, context: HttpContext) -> Response:
        reply = await self._v2.ServerReady(pb.ServerReadyRequest(), context.as_servicer_context())
        return JSONResponse({"ready": reply.ready}, status_code=200 if reply.ready else 503)

    async def server_metadata(
        self, request: Request, body: bytes, context: HttpContext
    ) -> Response:
        reply = await self._v2.ServerMetadata(
            pb.ServerMetadataRequest(), context.as_servicer_context()
        )
        return JSONResponse(to_json(reply))

    async def model_metadata(self, request: Request, body: bytes, context: HttpContext) -> Response:
        name, version = _model(request)
        reply = await self._v2.ModelMetadata(
            pb.ModelMetadataRequest(name=name, version=version), context.as_servicer_context()
        )
        return JSONResponse(to_json(reply))

    async def model_ready(self, request: Request, body: bytes, context: HttpContext) -> Response:
        """200 when ready; 404 for a name we do not have, 503 while loading or draining."""
        name, version = _model(request)
        grpc_context = context.as_servicer_context()
        metadata = pb.ModelMetadataRequest(name=name, version=version)
        await self._v2.ModelMetadata(metadata, grpc_context)  # 404, 422 or 503 if not there
        reply = await self._v2.ModelReady(
            pb.ModelReadyRequest(name=name, version=version), grpc_context
        )
        if not reply.ready:
            raise Unavailable(f"model {name!r} is not ready: the server is shutting down")
        return JSONResponse({"name": name, "ready": True})

    async def model_config(self, request: Request, body: bytes, context: HttpContext) -> Response:
        name, version = _model(request)
        reply = await self._v2.ModelConfig(
            pb.ModelConfigRequest(name=name, version=version), context.as_servicer_context()
        )
        return JSONResponse(to_json(reply.config))  # Triton answers the config itself

    async def statistics(self, request: Request, body: bytes, context: HttpContext) -> Response:
        name, version = _model(request)
        message = pb.ModelStatisticsRequest(name=name, version=version)
        return await self._statistics(message, context)

    async def all_statistics(self, request: Request, body: bytes, context: HttpContext) -> Response:
        return await self._statistics(pb.ModelStatisticsRequest(), context)

    async def _statistics(
        self, message: pb.ModelStatisticsRequest, context: HttpContext
    ) -> Response:
        reply = await self._v2.ModelStatistics(message, context.as_servicer_context())
        return JSONResponse(to_json(reply))

    async def repository_index(
        self, request: Request, body: bytes, context: HttpContext
    ) -> Response:
        fields = parse_object(body) if body.strip() else {}
        ready = fields.get("ready", False)
        if not isinstance(ready, bool):
            raise InvalidArgument("'ready' must be a boolean")
        reply = await self._v2.RepositoryIndex(
            pb.RepositoryIndexRequest(ready=ready), context.as_servicer_context()
        )
        return JSONResponse([to_json(m) for m in reply.models])  # Triton: a bare array

    # -- inference -------------------------------------------------------------------------

    async def infer(self, request: Request, body: bytes, context: HttpContext) -> Response:
        name, version = _model(request)
        message, binary_outputs = infer_request(
            name, version, body, request.headers.get(HEADER_LENGTH)
        )
        reply = await self._v2.ModelInfer(message, context.as_servicer_context())
        return infer_response(reply, binary_outputs)


def _model(request: Request) -> tuple[str, str]:
    params = request.path_params
    return str(params["model"]), str(params.get("version", ""))


# -- tensors over HTTP ---------------------------------------------------------------------


def infer_request(
    model: str, version: str, body: bytes, header_length: str | None
) -> tuple[pb.ModelInferRequest, set[str] | bool]:
    """The ModelInferRequest a V2 REST body stands for, and which outputs go back binary
    (the names, or True for every output)."""
    if header_length is None:
        header, binary = body, b""
    else:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise InvalidArgument(
                f"{HEADER_LENGTH}: {header_length!r} is not a length within the body's "
                f"{len(body)} bytes"
            )
        header, binary = body[: int(header_length)], body[int(header_length) :]
    parsed = checked(_InferBody, parse_object(header), "the inference request")
    message = pb.ModelInferRequest(model_name=model, model_version=version, id=parsed.id)
    _set_parameters(message.parameters, parsed.parameters)
    offset = 0
    for item in parsed.inputs:
        if not all(_INT64[0] <= d <= _INT64[1] for d in item.shape):
            raise InvalidArgument(f"input {item.name!r}: shape {item.shape} is out of range")
        tensor = message.inputs.add(name=item.name, datatype=item.datatype, shape=item.shape)
        _set_parameters(tensor.parameters, item.parameters)
        size = item.parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidArgument(f"input {item.name!r}: binary_data_size must be a count")
            if offset + size > len(binary):
                raise InvalidArgument(
                    f"input {item.name!r}: binary_data_size {size} runs past the "
                    f"{len(binary)} bytes of binary data"
                )
            message.raw_input_contents.append(binary[offset : offset + size])
            offset += size
        else:
            message.raw_input_contents.append(_json_tensor(item))
    if offset != len(binary):
        raise InvalidArgument(
            f"{len(binary) - offset} bytes of binary data belong to no input; give each "
            "binary input its binary_data_size"
        )
    every = parsed.parameters.get("binary_data_output") is True
    binary_outputs: set[str] = set()
    for wanted in parsed.outputs:
        message.outputs.add(name=wanted.name)
        if wanted.parameters.get("binary_data", every) is True:
            binary_outputs.add(wanted.name)
    return message, (binary_outputs if parsed.outputs else every)


def infer_response(reply: pb.ModelInferResponse, binary: set[str] | bool) -> Response:
    outputs = []
    tail: list[bytes] = []
    for tensor, raw in zip(reply.outputs, reply.raw_output_contents, strict=True):
        out: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        if binary is True or (binary and tensor.name in binary):
            out["parameters"] = {"binary_data_size": len(raw)}
            tail.append(raw)
        else:
            out["data"] = _json_data(tensor.datatype, raw, math.prod(tensor.shape))
        outputs.append(out)
    document = {"model_name": reply.model_name, "model_version": reply.model_version}
    if reply.id:
        document["id"] = reply.id
    header = json.dumps({**document, "outputs": outputs}, separators=(",", ":")).encode()
    if not tail:
        return Response(header, media_type="application/json")
    return Response(
        b"".join([header, *tail]),
        media_type="application/octet-stream",
        headers={HEADER_LENGTH: str(len(header))},
    )


def _set_parameters(target: Any, values: dict[str, Any]) -> None:
    for key, value in values.items():
        if key in _TRANSPORT:
            continue
        if isinstance(value, bool):
            target[key].bool_param = value
        elif isinstance(value, int):
            if not _INT64[0] <= value <= _INT64[1]:
                raise InvalidArgument(f"parameter {key!r}: {value} is out of the int64 range")
            target[key].int64_param = value
        elif isinstance(value, float):
            target[key].double_param = value
        else:
            target[key].string_param = value


def _json_tensor(item: _Input) -> bytes:
    """A JSON input's `data` (flat or nested, row-major) as the raw bytes of its datatype."""
    if item.data is None:
        raise InvalidArgument(f"input {item.name!r} has no data (nor binary_data_size)")
    flat = _flatten(item.data, item.name)
    count = math.prod(item.shape) if all(d >= 0 for d in item.shape) else -1
    if len(flat) != count:
        raise InvalidArgument(
            f"input {item.name!r} has {len(flat)} elements in data; shape {item.shape} needs "
            f"{count if count >= 0 else 'non-negative sizes'}"
        )
    if item.datatype == BYTES:
        if not all(isinstance(v, str) for v in flat):
            raise InvalidArgument(f"input {item.name!r} is BYTES: its data must be strings")
        return pack_bytes([v.encode() for v in flat])
    dtype = NUMPY_TYPES.get(item.datatype)
    if dtype is None:
        return b""  # read_inputs names the datatype the model takes
    kind, fits = _JSON_KINDS[dtype.kind]
    if not all(fits(v) for v in flat):
        raise InvalidArgument(f"input {item.name!r} is {item.datatype}: its data must be {kind}")
    try:
        array = np.asarray(flat, dtype=dtype)
    except (OverflowError, ValueError) as exc:
        raise InvalidArgument(
            f"input {item.name!r}: data do not fit {item.datatype}: {exc}"
        ) from None
    return array.tobytes()


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The JSON values each numpy kind takes: a bool is not a number here, nor a float an integer.
_JSON_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "b": ("booleans", lambda v: isinstance(v, bool)),
    "i": ("integers", _integer),
    "u": ("integers", _integer),
    "f": ("numbers", lambda v: _integer(v) or isinstance(v, float)),
}


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidArgument(f"input {name!r}: data must be an array")
    out: list[Any] = []
    stack = [iter(data)]
    while stack:  # no recursion: JSON nested thousands deep must not overflow the stack
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            out.append(value)
        else:
            stack.pop()
    return out


def _json_data(datatype: str, raw: bytes, count: int) -> list[Any]:
    if datatype == BYTES:
        return [item.decode("utf-8", "replace") for item in split_bytes(raw, "output", count)]
    return list(np.frombuffer(raw, dtype=NUMPY_TYPES[datatype]).tolist())
