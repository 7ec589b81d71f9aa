"""V2 calls with attnserve's own generated stubs and typed `contents`; prints JSON.

test_kserve runs this as a subprocess: tritonclient (used in the test process) registers
Triton's `inference.*` messages in protobuf's default descriptor pool, and our
grpc_predict_v2.proto defines the same names, so the two cannot load in one process.

Usage: python -m tests.kserve_typed_client HOST:PORT TEXT [IDS_JSON]
"""

from __future__ import annotations

import json
import struct
import sys
from typing import Any

import grpc
import numpy as np

from service.api.protos.inference import grpc_predict_v2_pb2 as pb
from service.api.protos.inference import grpc_predict_v2_pb2_grpc as pb_grpc


def _code(call: Any) -> str:
    try:
        call()
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    return "OK"


def main(target: str, text: str, ids: list[list[int]]) -> dict[str, Any]:
    stub = pb_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(target))
    out: dict[str, Any] = {
        "live": stub.ServerLive(pb.ServerLiveRequest(), timeout=5).live,
        "ready": stub.ModelReady(pb.ModelReadyRequest(name="minilm.embed"), timeout=5).ready,
    }

    embed = pb.ModelInferRequest(model_name="minilm.embed", id="typed-1")
    tensor = embed.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(text.encode())
    reply = stub.ModelInfer(embed, timeout=10)
    out["embed_id"] = reply.id
    out["embed_shape"] = list(reply.outputs[0].shape)
    out["embedding"] = np.frombuffer(reply.raw_output_contents[0], "<f4").tolist()

    array = np.array(ids, dtype=np.int64)
    bare = pb.ModelInferRequest(model_name="minilm", model_version="1")
    for name, values in (("input_ids", array), ("attention_mask", (array != 0).astype(np.int64))):
        t = bare.inputs.add(name=name, datatype="INT64", shape=list(array.shape))
        t.contents.int64_contents.extend(values.ravel().tolist())
    reply = stub.ModelInfer(bare, timeout=10)
    out["hidden_shape"] = list(reply.outputs[0].shape)
    out["hidden"] = np.frombuffer(reply.raw_output_contents[0], "<f4").tolist()

    # Both kinds of data for one input, and a raw BYTES element cut short.
    both = pb.ModelInferRequest()
    both.CopyFrom(embed)
    both.raw_input_contents.append(struct.pack("<I", 2) + b"hi")
    out["both"] = _code(lambda: stub.ModelInfer(both, timeout=10))
    cut = pb.ModelInferRequest(model_name="minilm.embed")
    cut.inputs.add(name="TEXT", datatype="BYTES", shape=[1])
    cut.raw_input_contents.append(struct.pack("<I", 50) + b"short")
    out["cut"] = _code(lambda: stub.ModelInfer(cut, timeout=10))
    return out


if __name__ == "__main__":
    ids_arg = json.loads(sys.argv[3]) if len(sys.argv) > 3 else [[101, 102]]
    print(json.dumps(main(sys.argv[1], sys.argv[2], ids_arg)))
