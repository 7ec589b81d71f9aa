"""Random and hostile input on every RPC of both APIs, through a real channel.

Whatever arrives, the answer is a deliberate status (never INTERNAL or UNKNOWN), the
process survives, and a client sending ordinary requests meanwhile is unaffected.
V2 requests are built with tritonclient's own protobuf classes, as a Triton client would.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterator

import grpc
import pytest
import requests
import tritonclient.grpc.service_pb2 as v2
import tritonclient.grpc.service_pb2_grpc as v2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.server_process import ServerProcess

DELIBERATE = {
    "OK", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED",
    "UNAVAILABLE",  # only for the model that failed to load
}  # fmt: skip
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Any Unicode a protobuf string can carry (surrogates cannot be UTF-8 encoded; raw invalid
# UTF-8 is covered in test_security.py), weighted towards the awkward parts.
awkward = st.sampled_from(
    ["\u200b", "\u200d", "\u202e", "\u061f", "שלום", "😀", "👨‍👩‍👧", "e\u0301",
     ".", "...", "Dr.", "\n\n", "\t", " "]
)  # fmt: skip
unicode_text = st.lists(
    st.one_of(st.text(st.characters(exclude_categories=("Cs",)), max_size=40), awkward),
    max_size=12,
).map("".join)
model_names = st.sampled_from(["", "minilm", "embedder", "broken", "nope", "minilm.embed"])
big_uint = st.one_of(st.integers(0, 5), st.integers(0, 2**32 - 1))


def status(call: object) -> str:
    try:
        call()  # type: ignore[operator]
    except grpc.RpcError as err:
        return str(err.code().name)
    return "OK"


@pytest.fixture(scope="module")
def bystander(server: ServerProcess) -> Iterator[list[str]]:
    """Ordinary Embed calls in a loop while the fuzzing runs; collects their codes."""
    codes: list[str] = []
    stop = threading.Event()
    stub = pb_grpc.TextInferenceStub(server.channel)

    def loop() -> None:
        while not stop.is_set():
            codes.append(status(lambda: stub.Embed(pb.EmbedRequest(texts=["steady"]), timeout=30)))
            stop.wait(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield codes
    stop.set()
    thread.join(30)


@pytest.fixture(scope="module")
def stub(server: ServerProcess, bystander: list[str]) -> pb_grpc.TextInferenceStub:
    return pb_grpc.TextInferenceStub(server.channel)


@FUZZ
@given(texts=st.lists(unicode_text, max_size=6), normalize=st.booleans(), model=model_names)
def test_embed(
    stub: pb_grpc.TextInferenceStub, texts: list[str], normalize: bool, model: str
) -> None:
    reply: list[pb.EmbedResponse] = []
    code = status(
        lambda: reply.append(
            stub.Embed(pb.EmbedRequest(texts=texts, normalize=normalize, model=model), timeout=30)
        )
    )
    assert code in DELIBERATE
    if code == "OK":
        assert len(reply[0].embeddings) == len(texts)


@FUZZ
@given(text=unicode_text, k=big_uint, model=model_names)
def test_summarize(stub: pb_grpc.TextInferenceStub, text: str, k: int, model: str) -> None:
    reply: list[pb.SummarizeResponse] = []
    request = pb.SummarizeRequest(text=text, max_sentences=k, model=model)
    code = status(lambda: reply.append(stub.Summarize(request, timeout=30)))
    assert code in DELIBERATE
    if code == "OK":
        assert all(text[s.start : s.end] == s.text for s in reply[0].sentences)


@FUZZ
@given(question=unicode_text, context=unicode_text, k=big_uint, model=model_names)
def test_answer(
    stub: pb_grpc.TextInferenceStub, question: str, context: str, k: int, model: str
) -> None:
    reply: list[pb.AnswerResponse] = []
    request = pb.AnswerRequest(question=question, context=context, top_k=k, model=model)
    code = status(lambda: reply.append(stub.Answer(request, timeout=30)))
    assert code in DELIBERATE
    if code == "OK":
        assert all(context[a.start : a.end] == a.text for a in reply[0].answers)


def _bytes_tensor(elements: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


v2_models = st.sampled_from(
    ["minilm", "minilm.embed", "minilm.answer", "minilm.summarize", "embedder.summarize",
     "broken.embed", "nope", ""]
)  # fmt: skip
v2_names = st.sampled_from(["TEXT", "QUESTION", "CONTEXT", "input_ids", "attention_mask", "X"])
v2_types = st.sampled_from(["BYTES", "INT64", "FP32", "INT32", "BOOL", "NONSENSE", ""])
shapes = st.lists(st.integers(-2, 4), max_size=3)


@FUZZ
@given(
    model=v2_models,
    inputs=st.lists(st.tuples(v2_names, v2_types, shapes), max_size=3),
    payloads=st.lists(st.lists(st.binary(max_size=30), max_size=4), max_size=3),
    parameters=st.dictionaries(
        st.sampled_from(["timeout", "priority", "normalize", "max_sentences", "x"]),
        st.one_of(st.integers(-(2**40), 2**40), st.booleans(), st.text(max_size=5)),
        max_size=3,
    ),
)
def test_v2_model_infer(
    server: ServerProcess,
    bystander: list[str],
    model: str,
    inputs: list[tuple[str, str, list[int]]],
    payloads: list[list[bytes]],
    parameters: dict[str, object],
) -> None:
    stub = v2_grpc.GRPCInferenceServiceStub(server.channel)
    request = v2.ModelInferRequest(model_name=model)
    for name, datatype, shape in inputs:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
    for elements in payloads[: len(inputs)]:
        request.raw_input_contents.append(_bytes_tensor(elements))
    for key, value in parameters.items():
        if isinstance(value, bool):
            request.parameters[key].bool_param = value
        elif isinstance(value, int):
            request.parameters[key].int64_param = value
        else:
            request.parameters[key].string_param = str(value)
    assert status(lambda: stub.ModelInfer(request, timeout=30)) in DELIBERATE
    for call in (
        lambda: stub.ModelMetadata(v2.ModelMetadataRequest(name=model), timeout=10),
        lambda: stub.ModelReady(v2.ModelReadyRequest(name=model), timeout=10),
        lambda: stub.ModelConfig(v2.ModelConfigRequest(name=model), timeout=10),
        lambda: stub.ModelStatistics(v2.ModelStatisticsRequest(name=model), timeout=10),
    ):
        assert status(call) in DELIBERATE


def test_extremes(stub: pb_grpc.TextInferenceStub) -> None:
    many = pb.EmbedRequest(texts=["t"] * 5000)
    assert status(lambda: stub.Embed(many, timeout=30)) == "INVALID_ARGUMENT"
    huge = pb.SummarizeRequest(text="word " * 1_000_000)  # 5 MB, over --max-text-chars
    assert status(lambda: stub.Summarize(huge, timeout=30)) == "INVALID_ARGUMENT"
    too_big = pb.EmbedRequest(texts=["x" * (70 * 2**20)])  # over the 64 MiB message limit
    assert status(lambda: stub.Embed(too_big, timeout=30)) == "RESOURCE_EXHAUSTED"
    assert status(lambda: stub.ListModels(pb.ListModelsRequest(), timeout=10)) == "OK"


# -- HTTP: JSON that is almost right, or anything at all ------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    unicode_text, st.sampled_from(["minilm", "embedder", "nope", "BYTES", "INT64", "base64"]),
)  # fmt: skip
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.one_of(
                st.sampled_from(
                    ["input", "model", "encoding_format", "dimensions", "inputs", "outputs",
                     "name", "shape", "datatype", "data", "parameters", "binary_data_size",
                     "text", "question", "context", "topK", "max_sentences", "prompt",
                     "maxNewTokens", "temperature", "explain", "id"]
                ),
                st.text(max_size=8),
            ),
            inner,
            max_size=6,
        ),
    ),
    max_leaves=20,
)  # fmt: skip
ROUTES = [
    "/v1/embeddings", "/v1/summarize", "/v1/answer", "/v1/generate", "/v1/generate_stream",
    "/v2/models/minilm.embed/infer", "/v2/models/minilm/infer", "/v2/models/minilm.answer/infer",
    "/v2/repository/index",
]  # fmt: skip
HTTP_DELIBERATE = {200, 400, 404, 405, 422, 429, 503}


@pytest.fixture(scope="module")
def http(server: ServerProcess, bystander: list[str]) -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@FUZZ
@given(
    route=st.sampled_from(ROUTES),
    body=st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=64),
        st.sampled_from([b"", b"{", rb'{"input": "\ud800"}', b"[" * 5000, b'{"a":' * 5000]),
    ),
    headers=st.dictionaries(
        st.sampled_from(
            ["x-request-timeout", "content-encoding", "inference-header-content-length"]
        ),
        st.sampled_from(["", "0", "1", "-5", "nan", "1e309", "gzip", "deflate", "abc", "30"]),
        max_size=2,
    ),
)
def test_http_any_body_gets_a_deliberate_status(
    server: ServerProcess,
    http: requests.Session,
    route: str,
    body: bytes,
    headers: dict[str, str],
) -> None:
    reply = http.post(server.http_url + route, data=body, headers=headers, timeout=60)
    assert reply.status_code in HTTP_DELIBERATE, (reply.status_code, reply.text)
    if reply.status_code != 200:
        assert "error" in reply.json()


def test_zz_server_is_unharmed(server: ServerProcess, bystander: list[str]) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert server.process.poll() is None
    assert bystander and set(bystander) == {"OK"}, set(bystander)
