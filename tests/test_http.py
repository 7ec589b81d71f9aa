"""HTTP beside gRPC, through the clients its users use: the openai SDK, tritonclient.http,
curl and plain requests. Every answer is compared with gRPC's for the same input, and every
bad request gets the contract's status code in its API's error shape."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import requests
import tritonclient.http as triton_http
from google.protobuf import json_format
from prometheus_client.parser import text_string_to_metric_families
from tokenizers import Tokenizer

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.server_process import ServerProcess

TEXTS = ["A man is eating food.", "The tower is 330 m tall.", "Plants make energy from light 🌱."]
CONTEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company built it from 1887 to 1889. "
    "The tower is 330 m (1,083 ft) tall, about the height of an 81-storey building."
)


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> pb_grpc.TextInferenceStub:
    return pb_grpc.TextInferenceStub(server.channel)


@pytest.fixture(scope="module")
def oai(server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.http_url}/v1", api_key="unused", max_retries=0)


class Http(requests.Session):
    """requests with the server's base URL and a timeout on every call."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", 60)
        return super().request(method, self.base + url, *args, **kwargs)


@pytest.fixture(scope="module")
def http(server: ServerProcess) -> Http:
    return Http(server.http_url)


@pytest.fixture(scope="module")
def tokenizer(repository: Path) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(repository / "minilm" / "tokenizer.json"))
    tokenizer.no_padding()
    return tokenizer


def grpc_vectors(stub: pb_grpc.TextInferenceStub, texts: list[str]) -> np.ndarray:
    reply = stub.Embed(pb.EmbedRequest(texts=texts, normalize=True), timeout=30)
    return np.array([e.values for e in reply.embeddings])


# -- OpenAI embeddings ------------------------------------------------------------------------


def test_openai_embeddings_equal_grpc_embed(
    oai: openai.OpenAI, stub: pb_grpc.TextInferenceStub, tokenizer: Tokenizer
) -> None:
    want = grpc_vectors(stub, TEXTS)
    reply = oai.embeddings.create(model="minilm", input=TEXTS)  # the SDK asks for base64
    assert reply.model == "minilm" and [d.index for d in reply.data] == [0, 1, 2]
    got = np.array([d.embedding for d in reply.data])
    assert got.shape == (3, 384) and np.allclose(got, want, atol=1e-5)
    tokens = sum(len(e.ids) for e in tokenizer.encode_batch(TEXTS))
    assert reply.usage.prompt_tokens == reply.usage.total_tokens == tokens
    floats = oai.embeddings.create(model="minilm", input=TEXTS[1], encoding_format="float")
    assert np.allclose(floats.data[0].embedding, want[1], atol=1e-5)
    same = oai.embeddings.create(model="minilm", input=TEXTS[:1], dimensions=384)
    assert np.allclose(same.data[0].embedding, want[0], atol=1e-5)


def test_openai_errors_raise_the_sdks_own_exceptions(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="text-embedding-3-small"):
        oai.embeddings.create(model="text-embedding-3-small", input="x")
    bad: list[dict[str, Any]] = [
        {"input": []},
        {"input": ""},
        {"input": "x", "dimensions": 8},  # the model cannot shorten its vectors
        {"input": [[101, 2023, 102]]},  # token ids: tiktoken's, not this model's
        {"input": ["x"] * 65},  # the server runs with --max-texts 64
    ]
    for options in bad:
        with pytest.raises(openai.BadRequestError) as info:
            oai.embeddings.create(model="minilm", **options)
        assert info.value.status_code == 400 and info.value.body, options
    with pytest.raises(openai.InternalServerError) as unavailable:
        oai.embeddings.create(model="broken", input="x")
    assert unavailable.value.status_code == 503 and "missing.onnx" in str(unavailable.value)


def test_openai_model_list(oai: openai.OpenAI) -> None:
    ids = {m.id for m in oai.models.list()}
    assert {"minilm", "embedder"} <= ids
    assert oai.models.retrieve("embedder").owned_by == "attnserve"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("nope")


def test_curl_as_a_user_would(server: ServerProcess, stub: pb_grpc.TextInferenceStub) -> None:
    body = json.dumps({"model": "minilm", "input": TEXTS[0]})
    out = subprocess.run(
        ["curl", "-sS", "-f", f"{server.http_url}/v1/embeddings",
         "-H", "Content-Type: application/json", "-d", body],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    vector = json.loads(out)["data"][0]["embedding"]
    assert np.allclose(vector, grpc_vectors(stub, TEXTS[:1])[0], atol=1e-5)
    probe = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
         f"{server.http_url}/v2/health/ready"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert probe.stdout == "200"


# -- the task API in JSON ---------------------------------------------------------------------


def test_task_routes_answer_as_grpc(http: Http, stub: pb_grpc.TextInferenceStub) -> None:
    summary = http.post("/v1/summarize", json={"text": CONTEXT, "maxSentences": 1})
    want = stub.Summarize(pb.SummarizeRequest(text=CONTEXT, max_sentences=1), timeout=30)
    assert summary.status_code == 200
    assert summary.json() == json_format.MessageToDict(
        want, always_print_fields_with_no_presence=True
    )
    # The proto's own field names are accepted too (the proto3 JSON mapping).
    answer = http.post("/v1/answer", json={"question": "How tall?", "context": CONTEXT, "top_k": 2})
    want_answer = stub.Answer(
        pb.AnswerRequest(question="How tall?", context=CONTEXT, top_k=2), timeout=30
    )
    got = answer.json()
    assert [a["text"] for a in got["answers"]] == [a.text for a in want_answer.answers]
    first = got["answers"][0]
    assert CONTEXT[first["start"] : first["end"]] == first["text"]
    unknown = http.post("/v1/answer", json={"question": "q", "context": "c", "topk": 2})
    assert unknown.status_code == 400 and "topk" in unknown.json()["error"]["message"]


# -- KServe V2 REST through tritonclient.http ------------------------------------------------


@pytest.fixture(scope="module")
def v2(server: ServerProcess) -> triton_http.InferenceServerClient:
    return triton_http.InferenceServerClient(url=server.http_url.removeprefix("http://"))


def text_input(name: str, texts: list[str], shape: list[int], binary: bool) -> Any:
    tensor = triton_http.InferInput(name, shape, "BYTES")
    data = np.array([t.encode() for t in texts], dtype=object).reshape(shape)
    tensor.set_data_from_numpy(data, binary_data=binary)
    return tensor


def test_kserve_rest_health_metadata_and_config(v2: triton_http.InferenceServerClient) -> None:
    assert v2.is_server_live() and v2.is_server_ready()
    assert v2.is_model_ready("minilm.embed") and v2.is_model_ready("minilm", "1")
    for name in ("nope", "broken.embed", "embedder.summarize"):
        assert not v2.is_model_ready(name), name
    assert v2.get_server_metadata()["name"] == "attnserve"
    meta = v2.get_model_metadata("minilm.embed")
    assert meta["inputs"] == [{"name": "TEXT", "datatype": "BYTES", "shape": [-1, 1]}]
    assert meta["outputs"][0] == {"name": "EMBEDDING", "datatype": "FP32", "shape": [-1, 384]}
    config = v2.get_model_config("minilm.answer")
    assert config["max_batch_size"] == 64  # --max-texts
    assert [(i["name"], i["data_type"], i["dims"]) for i in config["input"]] == [
        ("QUESTION", "TYPE_STRING", [1]),
        ("CONTEXT", "TYPE_STRING", [1]),
    ]
    index = v2.get_model_repository_index()
    assert {"name": "minilm.embed", "version": "1", "state": "READY", "reason": ""} in index
    with pytest.raises(triton_http.InferenceServerException) as info:
        v2.get_model_metadata("nope")
    assert info.value.status() == "404" and "nope" in info.value.message()


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("shape", [[3, 1], [3]])
def test_kserve_rest_embed_equals_grpc(
    v2: triton_http.InferenceServerClient,
    stub: pb_grpc.TextInferenceStub,
    binary: bool,
    shape: list[int],
) -> None:
    out = triton_http.InferRequestedOutput("EMBEDDING", binary_data=binary)
    reply = v2.infer("minilm.embed", [text_input("TEXT", TEXTS, shape, binary)], outputs=[out])
    got = reply.as_numpy("EMBEDDING")
    assert got.shape == (3, 384) and np.allclose(got, grpc_vectors(stub, TEXTS), atol=1e-5)


def test_kserve_rest_answer_bare_model_compression_and_statistics(
    v2: triton_http.InferenceServerClient, stub: pb_grpc.TextInferenceStub, tokenizer: Tokenizer
) -> None:
    inputs = [
        text_input("QUESTION", ["How tall is the tower?"], [1, 1], True),
        text_input("CONTEXT", [CONTEXT], [1, 1], False),
    ]
    reply = v2.infer("minilm.answer", inputs, request_compression_algorithm="gzip")
    want = stub.Answer(pb.AnswerRequest(question="How tall is the tower?", context=CONTEXT))
    assert reply.as_numpy("ANSWER").tolist() == [want.answers[0].text.encode()]
    assert np.allclose(reply.as_numpy("SCORE"), [want.answers[0].score], atol=1e-5)

    ids = np.array([tokenizer.encode(TEXTS[0]).ids], dtype=np.int64)
    tensors = []
    for name, array in (("input_ids", ids), ("attention_mask", np.ones_like(ids))):
        tensor = triton_http.InferInput(name, list(array.shape), "INT64")
        tensor.set_data_from_numpy(array, binary_data=name == "input_ids")
        tensors.append(tensor)
    states = v2.infer("minilm", tensors, request_compression_algorithm="deflate")
    pooled = states.as_numpy("last_hidden_state")[0].mean(axis=0)
    plain = stub.Embed(pb.EmbedRequest(texts=TEXTS[:1]), timeout=30).embeddings[0].values
    assert np.allclose(pooled, plain, atol=1e-5)

    stats = v2.get_inference_statistics("minilm.answer")["model_stats"][0]
    assert stats["name"] == "minilm.answer" and stats["inference_count"] >= 1
    assert stats["inference_stats"]["success"]["count"] >= 1


def test_kserve_rest_errors_name_the_input(v2: triton_http.InferenceServerClient) -> None:
    cases = [
        ("minilm.embed", [text_input("TEXTS", ["x"], [1], True)], "400", "no input 'TEXTS'"),
        ("minilm.embed", [text_input("TEXT", ["x", "y"], [1, 2], True)], "400", "shape [1, 2]"),
        ("nope.embed", [text_input("TEXT", ["x"], [1], True)], "404", "'nope.embed' not found"),
        ("embedder.summarize", [text_input("TEXT", ["x"], [1], True)], "422", "summarize"),
        ("broken.embed", [text_input("TEXT", ["x"], [1], True)], "503", "missing.onnx"),
    ]
    for model, inputs, status, message in cases:
        with pytest.raises(triton_http.InferenceServerException) as info:
            v2.infer(model, inputs)
        assert info.value.status() == status, (model, info.value.message())
        assert message in info.value.message(), info.value.message()


# -- status codes and error shapes -------------------------------------------------------------

BINARY_HEADER = (
    b'{"inputs": [{"name": "TEXT", "shape": [1], "datatype": "BYTES",'
    b' "parameters": {"binary_data_size": 9}}]}'
)


@pytest.mark.parametrize(
    "method, path, body, headers, status, message",
    [
        ("POST", "/v1/embeddings", b"{not json", {}, 400, "not JSON"),
        ("POST", "/v1/embeddings", b"[1, 2]", {}, 400, "must be a JSON object"),
        ("POST", "/v1/embeddings", b'{"input": 5}', {}, 400, "input"),
        ("POST", "/v1/embeddings", b'{"input": "x", "encoding_format": "int8"}', {}, 400,
         "encoding_format"),
        ("POST", "/v1/embeddings", b'{"input": "x"}', {"x-request-timeout": "soon"}, 400,
         "x-request-timeout"),
        ("POST", "/v1/embeddings", b'{"input": "x"}', {"content-encoding": "br"}, 400, "br"),
        ("POST", "/v1/embeddings", b'{"input": "x"}', {"content-encoding": "gzip"}, 400,
         "not valid gzip"),
        ("POST", "/v1/summarize", b'{"text": "x", "model": "embedder"}', {}, 422, "summarize"),
        ("POST", "/v1/answer", b'{"question": "", "context": "c"}', {}, 400, "question"),
        ("POST", "/v1/generate", b'{"prompt": "hi"}', {}, 422, "generate"),
        ("POST", "/v1/summarize", b'{"text": "x", "model": "nope"}', {}, 404, "nope"),
        ("GET", "/v1/embeddings", b"", {}, 405, "GET"),
        ("GET", "/v1/nothing", b"", {}, 404, "/v1/nothing"),
        ("POST", "/v2/models/minilm.embed/infer", b'{"inputs": {}}', {}, 400, "inputs"),
        ("POST", "/v2/models/minilm.embed/infer",
         b'{"inputs": [{"name": "TEXT", "shape": [2], "datatype": "BYTES", "data": ["x"]}]}',
         {}, 400, "1 elements in data; shape [2] needs 2"),
        ("POST", "/v2/models/minilm.embed/infer",
         b'{"inputs": [{"name": "TEXT", "shape": [1], "datatype": "BYTES", "data": [7]}]}',
         {}, 400, "must be strings"),
        ("POST", "/v2/models/minilm.embed/infer", BINARY_HEADER + b"abc",
         {"inference-header-content-length": str(len(BINARY_HEADER))}, 400,
         "binary_data_size 9 runs past the 3 bytes"),
        ("POST", "/v2/models/minilm.embed/infer", BINARY_HEADER + b"abc",
         {"inference-header-content-length": "9999"}, 400, "not a length within"),
        ("POST", "/v2/models/minilm/infer",
         b'{"inputs": [{"name": "input_ids", "shape": [1, 1], "datatype": "INT64",'
         b' "data": [1e30]}]}', {}, 400, "must be integers"),
        ("GET", "/v2/models/nope/config", b"", {}, 404, "nope"),
        ("GET", "/v2/models/minilm/versions/7", b"", {}, 404, "no version '7'"),
        ("GET", "/v2/models/broken/ready", b"", {}, 503, "missing.onnx"),
        ("GET", "/v2/nothing", b"", {}, 404, "/v2/nothing"),
    ],
)  # fmt: skip
def test_bad_requests_get_the_contracts_codes_in_their_apis_shape(
    http: Http,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    message: str,
) -> None:
    reply = http.request(method, path, data=body, headers=headers)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    if path.startswith("/v1/"):  # OpenAI's shape
        assert set(error) == {"message", "type", "param", "code"}
        error = error["message"]
    assert isinstance(error, str) and message in error, error


def test_a_body_over_the_limit_is_refused_before_it_is_read(server: ServerProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 999999999999\r\n\r\n{"
        )
        reply = b""
        while b"67108864" not in reply and (chunk := conn.recv(65536)):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400"), reply
    assert b"the most this server accepts is 67108864" in reply


def test_http_requests_are_counted_with_their_protocol(
    server: ServerProcess, http: Http, stub: pb_grpc.TextInferenceStub
) -> None:
    assert http.post("/v1/embeddings", json={"input": "count me"}).status_code == 200
    assert http.post("/v1/embeddings", json={"input": ""}).status_code == 400
    grpc_vectors(stub, ["count me too"])
    samples = {
        (s.labels["task"], s.labels["code"], s.labels["protocol"]): s.value
        for family in text_string_to_metric_families(server.scrape())
        for s in family.samples
        if s.name == "attnserve_requests_total" and s.labels["model"] == "minilm"
    }
    assert samples[("embed", "OK", "http")] >= 1
    assert samples[("embed", "INVALID_ARGUMENT", "http")] >= 1
    assert samples[("embed", "OK", "grpc")] >= 1
    # Series exist at zero for both protocols from the start.
    assert ("answer", "OK", "http") in samples and ("summarize", "OK", "grpc") in samples


async def test_accepted_connections_send_without_nagle() -> None:
    """Each response goes out in more than one write: with Nagle on, a keep-alive request
    waited for the client's delayed ACK (40 ms on Linux). asyncio turns TCP_NODELAY on only
    for sockets that name IPPROTO_TCP, which the HTTP server's bound socket must."""
    import asyncio

    from service.ports import listening_socket

    listener = listening_socket("127.0.0.1", 0, "--http-port")
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = writer.get_extra_info("socket")
        accepted.set_result(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(connected, sock=listener)
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname())
        assert await asyncio.wait_for(accepted, 10) != 0
        writer.close()
