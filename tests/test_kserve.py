"""KServe V2 over gRPC against the real server, through the real tritonclient[grpc].

Every result is compared with attnserve.v1's answer for the same input; the bad requests
get the contract's status codes, with messages that name the input at fault.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.service_pb2 as triton_pb
import tritonclient.grpc.service_pb2_grpc as triton_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from tokenizers import Tokenizer

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.server_process import ROOT, ServerProcess

TEXTS = ["A man is eating food.", "The tower is 330 m tall, about the height of a building."]
CONTEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company built it from 1887 to 1889. "
    "The tower is 330 m (1,083 ft) tall, about the height of an 81-storey building. "
    "Photosynthesis, by contrast, is how plants turn light into chemical energy 🌱."
)
QUESTIONS = ["How tall is the tower?", "How do plants make energy?"]


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=server.target)


@pytest.fixture(scope="module")
def v1(server: ServerProcess) -> pb_grpc.TextInferenceStub:
    return pb_grpc.TextInferenceStub(server.channel)


def text_input(name: str, values: list[str] | list[bytes]) -> triton.InferInput:
    data = np.array([v.encode() if isinstance(v, str) else v for v in values], dtype=object)
    tensor = triton.InferInput(name, [len(values)], "BYTES")
    tensor.set_data_from_numpy(data)
    return tensor


def int_input(name: str, array: np.ndarray, datatype: str = "INT64") -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    return tensor


def token_ids(repository: Path, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """input_ids and attention_mask [N, T], right-padded with 0, as a client would build them."""
    tokenizer = Tokenizer.from_file(str(repository / "minilm" / "tokenizer.json"))
    tokenizer.no_padding()
    rows = [e.ids for e in tokenizer.encode_batch(texts)]
    ids = np.zeros((len(rows), max(map(len, rows))), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    return ids, (ids != 0).astype(np.int64)


# -- liveness, readiness, metadata, config --------------------------------------------------


def test_live_and_ready(client: triton.InferenceServerClient, server: ServerProcess) -> None:
    assert client.is_server_live() and client.is_server_ready()
    for name in ("minilm", "minilm.embed", "minilm.answer", "minilm.summarize", "embedder.embed"):
        assert client.is_model_ready(name), name
    assert client.is_model_ready("minilm", "1")
    for name in ("broken.embed", "broken", "nope", "embedder.summarize", "minilm.translate"):
        assert not client.is_model_ready(name), name
    assert not client.is_model_ready("minilm", "2")
    health = health_pb2_grpc.HealthStub(server.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_server_metadata(client: triton.InferenceServerClient) -> None:
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "attnserve" and meta["version"] == "0.1.0"
    assert {"model_configuration", "statistics"} <= set(meta["extensions"])


@pytest.mark.parametrize(
    "model, inputs, outputs",
    [
        (
            "minilm",
            [("input_ids", "INT64", [-1, -1]), ("attention_mask", "INT64", [-1, -1]),
             ("token_type_ids", "INT64", [-1, -1])],
            [("last_hidden_state", "FP32", [-1, -1, 384])],
        ),
        # EXPLANATION: given when a request's parameter explain is true (test_explain.py).
        # Text inputs: [N, 1], Triton's batched string (dims [1]); [N] is accepted too.
        ("minilm.embed", [("TEXT", "BYTES", [-1, 1])],
         [("EMBEDDING", "FP32", [-1, 384]), ("EXPLANATION", "BYTES", [-1])]),
        (
            "minilm.answer",
            [("QUESTION", "BYTES", [-1, 1]), ("CONTEXT", "BYTES", [-1, 1])],
            [("ANSWER", "BYTES", [-1]), ("SCORE", "FP32", [-1]), ("EXPLANATION", "BYTES", [-1])],
        ),
        ("minilm.summarize", [("TEXT", "BYTES", [-1, 1])],
         [("SUMMARY", "BYTES", [-1]), ("EXPLANATION", "BYTES", [-1])]),
    ],
)  # fmt: skip
def test_model_metadata(
    client: triton.InferenceServerClient,
    model: str,
    inputs: list[tuple[str, str, list[int]]],
    outputs: list[tuple[str, str, list[int]]],
) -> None:
    meta = client.get_model_metadata(model)
    assert meta.name == model and list(meta.versions) == ["1"]
    assert meta.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == inputs
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == outputs


def test_model_config(client: triton.InferenceServerClient) -> None:
    config = client.get_model_config("minilm").config
    assert config.name == "minilm" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 64  # --max-texts in conftest
    assert [(i.name, list(i.dims), i.optional) for i in config.input] == [
        ("input_ids", [-1], False),
        ("attention_mask", [-1], False),
        ("token_type_ids", [-1], True),
    ]
    assert all(i.data_type == 9 for i in config.input)  # TYPE_INT64
    assert [(o.name, o.data_type, list(o.dims)) for o in config.output] == [
        ("last_hidden_state", 11, [-1, 384])  # TYPE_FP32
    ]
    embed = client.get_model_config("minilm.embed", as_json=True)["config"]
    assert embed["input"] == [{"name": "TEXT", "data_type": "TYPE_STRING", "dims": ["1"]}]
    assert embed["output"] == [
        {"name": "EMBEDDING", "data_type": "TYPE_FP32", "dims": ["384"]},
        {"name": "EXPLANATION", "data_type": "TYPE_STRING"},  # when a request asks to explain
    ]
    assert "dynamic_batching" in embed and embed["instance_group"][0]["kind"] == "KIND_CPU"


# -- model repository (Triton extension) ---------------------------------------------------

MINILM = ["minilm", "minilm.embed", "minilm.summarize", "minilm.answer"]  # model.yaml's order
BROKEN = ["broken", "broken.embed", "broken.summarize", "broken.answer"]
READY_NAMES = ["embedder", "embedder.embed", *MINILM]


def test_repository_index_lists_every_view(client: triton.InferenceServerClient) -> None:
    index = client.get_model_repository_index()
    states = {m.name: (m.version, m.state) for m in index.models}
    assert len(states) == len(index.models)  # each name once
    assert states == {
        **{name: ("1", "UNAVAILABLE") for name in BROKEN},
        **{name: ("1", "READY") for name in READY_NAMES},
    }
    for model in index.models:
        # The index agrees with ModelReady, and lists what ModelMetadata answers for.
        assert client.is_model_ready(model.name) == (model.state == "READY"), model.name
        if model.state == "READY":
            assert model.reason == ""
            assert client.get_model_metadata(model.name).name == model.name
        else:
            assert model.name.startswith("broken") and "missing.onnx" in model.reason
            with pytest.raises(triton.InferenceServerException) as info:
                client.get_model_metadata(model.name)
            assert info.value.status() == "StatusCode.UNAVAILABLE"


def test_repository_index_as_json(client: triton.InferenceServerClient) -> None:
    models = client.get_model_repository_index(as_json=True)["models"]
    by_name = {m["name"]: m for m in models}
    assert by_name["minilm.answer"] == {"name": "minilm.answer", "version": "1", "state": "READY"}
    broken = by_name["broken.embed"]
    assert broken["state"] == "UNAVAILABLE" and broken["version"] == "1"
    assert "missing.onnx" in broken["reason"]
    assert sorted(by_name) == sorted([*BROKEN, *READY_NAMES])


def test_repository_index_ready_only(server: ServerProcess) -> None:
    # tritonclient's get_model_repository_index() does not send `ready`; its own stub does.
    stub = triton_grpc.GRPCInferenceServiceStub(server.channel)
    ready = stub.RepositoryIndex(triton_pb.RepositoryIndexRequest(ready=True), timeout=10)
    assert [(m.name, m.state, m.reason) for m in ready.models] == [
        (name, "READY", "") for name in READY_NAMES
    ]
    every = stub.RepositoryIndex(triton_pb.RepositoryIndexRequest(ready=False), timeout=10)
    assert [m.name for m in every.models] == [*BROKEN, *READY_NAMES]
    with pytest.raises(grpc.RpcError) as info:
        stub.RepositoryIndex(triton_pb.RepositoryIndexRequest(repository_name="x"), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "repository_name 'x'" in str(info.value.details())


def test_model_control_is_refused_clearly(client: triton.InferenceServerClient) -> None:
    for call, action in ((client.load_model, "load"), (client.unload_model, "unload")):
        with pytest.raises(triton.InferenceServerException) as info:
            call("minilm")
        assert info.value.status() == "StatusCode.UNIMPLEMENTED"
        message = str(info.value.message())
        assert f"cannot {action} model 'minilm'" in message and "static" in message
    assert client.is_model_ready("minilm")  # and nothing was unloaded


# -- inference equals attnserve.v1 ------------------------------------------------------


def test_embed_equals_v1(
    client: triton.InferenceServerClient, v1: pb_grpc.TextInferenceStub
) -> None:
    result = client.infer("minilm.embed", [text_input("TEXT", TEXTS)], request_id="req-7")
    got = result.as_numpy("EMBEDDING")
    want = np.array(
        [e.values for e in v1.Embed(pb.EmbedRequest(texts=TEXTS, normalize=True)).embeddings]
    )
    assert got.dtype == np.float32 and got.shape == (2, 384)
    assert np.allclose(got, want, atol=1e-5)
    response = result.get_response()
    assert response.id == "req-7" and response.model_name == "minilm.embed"
    assert response.model_version == "1"
    raw = client.infer(
        "minilm.embed", [text_input("TEXT", TEXTS)], parameters={"normalize": False}
    ).as_numpy("EMBEDDING")
    want_raw = v1.Embed(pb.EmbedRequest(texts=TEXTS, normalize=False)).embeddings
    assert np.allclose(raw, np.array([e.values for e in want_raw]), atol=1e-5)


def test_answer_equals_v1(
    client: triton.InferenceServerClient, v1: pb_grpc.TextInferenceStub
) -> None:
    inputs = [text_input("QUESTION", QUESTIONS), text_input("CONTEXT", [CONTEXT, CONTEXT])]
    result = client.infer("minilm.answer", inputs)
    answers = [a.decode() for a in result.as_numpy("ANSWER")]
    scores = result.as_numpy("SCORE")
    for question, got, score in zip(QUESTIONS, answers, scores, strict=True):
        best = v1.Answer(pb.AnswerRequest(question=question, context=CONTEXT, top_k=1)).answers[0]
        assert got == best.text and score == pytest.approx(best.score, abs=1e-5)
    assert "330 m" in answers[0] and "Photosynthesis" in answers[1]


def test_summarize_equals_v1(
    client: triton.InferenceServerClient, v1: pb_grpc.TextInferenceStub
) -> None:
    texts = [CONTEXT, "One sentence only. And a second one about something else."]
    result = client.infer("minilm.summarize", [text_input("TEXT", texts)])
    got = [s.decode() for s in result.as_numpy("SUMMARY")]
    assert got == [v1.Summarize(pb.SummarizeRequest(text=t)).summary for t in texts]
    two = (
        client.infer(
            "minilm.summarize", [text_input("TEXT", [CONTEXT])], parameters={"max_sentences": 2}
        )
        .as_numpy("SUMMARY")[0]
        .decode()
    )
    assert two == v1.Summarize(pb.SummarizeRequest(text=CONTEXT, max_sentences=2)).summary


def test_bare_model_mean_pool_equals_v1_embed(
    client: triton.InferenceServerClient, v1: pb_grpc.TextInferenceStub, repository: Path
) -> None:
    ids, mask = token_ids(repository, TEXTS)
    inputs = [
        int_input("input_ids", ids),
        int_input("attention_mask", mask),
        int_input("token_type_ids", np.zeros_like(ids)),
    ]
    states = client.infer("minilm", inputs).as_numpy("last_hidden_state")
    assert states.dtype == np.float32 and states.shape == (*ids.shape, 384)
    assert not states[mask == 0].any()  # padded positions are zeros
    pooled = (states * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
    want = v1.Embed(pb.EmbedRequest(texts=TEXTS, normalize=False)).embeddings
    assert np.allclose(pooled, np.array([e.values for e in want]), atol=1e-5)
    # token_type_ids is optional; asking for the output by name gives the same.
    again = client.infer(
        "minilm", inputs[:2], outputs=[triton.InferRequestedOutput("last_hidden_state")]
    ).as_numpy("last_hidden_state")
    assert np.allclose(again, states, atol=1e-5)


def test_requested_outputs_come_in_the_asked_order(client: triton.InferenceServerClient) -> None:
    inputs = [text_input("QUESTION", QUESTIONS[:1]), text_input("CONTEXT", [CONTEXT])]
    wanted = [triton.InferRequestedOutput("SCORE"), triton.InferRequestedOutput("ANSWER")]
    response = client.infer("minilm.answer", inputs, outputs=wanted).get_response()
    assert [o.name for o in response.outputs] == ["SCORE", "ANSWER"]
    only = client.infer("minilm.answer", inputs, outputs=wanted[:1]).get_response()
    assert [o.name for o in only.outputs] == ["SCORE"]


def test_common_and_unknown_parameters_are_accepted(client: triton.InferenceServerClient) -> None:
    result = client.infer(
        "minilm.embed",
        [text_input("TEXT", ["parameters"])],
        priority=3,
        timeout=10_000_000,  # microseconds
        parameters={"made_up": "x", "another": 7, "flag": True},
    )
    assert result.as_numpy("EMBEDDING").shape == (1, 384)


def test_our_stubs_with_typed_contents(
    server: ServerProcess, v1: pb_grpc.TextInferenceStub, repository: Path
) -> None:
    ids, _ = token_ids(repository, TEXTS[:1])
    run = subprocess.run(
        [sys.executable, "-m", "tests.kserve_typed_client", server.target, TEXTS[0],
         json.dumps(ids.tolist())],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    out = json.loads(run.stdout)
    assert out["live"] and out["ready"] and out["embed_id"] == "typed-1"
    want = v1.Embed(pb.EmbedRequest(texts=TEXTS[:1], normalize=True)).embeddings[0].values
    assert out["embed_shape"] == [1, 384] and np.allclose(out["embedding"], want, atol=1e-5)
    states = np.array(out["hidden"], dtype=np.float32).reshape(out["hidden_shape"])
    plain = v1.Embed(pb.EmbedRequest(texts=TEXTS[:1], normalize=False)).embeddings[0].values
    assert np.allclose(states[0].mean(axis=0), plain, atol=1e-5)
    assert out["both"].startswith("INVALID_ARGUMENT") and "TEXT" in out["both"]
    assert out["cut"].startswith("INVALID_ARGUMENT") and "TEXT" in out["cut"]


# -- bad requests ---------------------------------------------------------------------------


def fp32_text() -> list[triton.InferInput]:
    return [int_input("TEXT", np.array([1.0], dtype=np.float32), "FP32")]


def text_2d() -> list[triton.InferInput]:
    tensor = triton.InferInput("TEXT", [1, 2], "BYTES")
    tensor.set_data_from_numpy(np.array([[b"a", b"b"]], dtype=object))
    return [tensor]


def bare(
    ids: list[list[int]], mask: list[list[int]], dtype: str = "INT64"
) -> list[triton.InferInput]:
    np_type = np.int64 if dtype == "INT64" else np.int32
    return [
        int_input("input_ids", np.array(ids, dtype=np_type), dtype),
        int_input("attention_mask", np.array(mask, dtype=np_type), dtype),
    ]


BAD: list[tuple[str, str, Callable[[], list[triton.InferInput]], str, str]] = [
    ("wrong datatype", "minilm.embed", fp32_text, "INVALID_ARGUMENT", "'TEXT' must be BYTES"),
    ("wrong shape", "minilm.embed", text_2d, "INVALID_ARGUMENT", "'TEXT' has shape [1, 2]"),
    ("missing input", "minilm.answer", lambda: [text_input("QUESTION", ["q?"])],
     "INVALID_ARGUMENT", "'CONTEXT' is missing"),
    ("unequal pairs", "minilm.answer",
     lambda: [text_input("QUESTION", ["a?", "b?"]), text_input("CONTEXT", ["c."])],
     "INVALID_ARGUMENT", "QUESTION"),
    ("unknown input", "minilm.embed", lambda: [text_input("TXT", ["x"])],
     "INVALID_ARGUMENT", "'TXT'"),
    ("empty element", "minilm.embed", lambda: [text_input("TEXT", ["fine", ""])],
     "INVALID_ARGUMENT", "TEXT[1] is empty"),
    ("no elements", "minilm.summarize", lambda: [text_input("TEXT", [])],
     "INVALID_ARGUMENT", "TEXT is empty"),
    ("not UTF-8", "minilm.summarize", lambda: [text_input("TEXT", [b"\xff\xfe"])],
     "INVALID_ARGUMENT", "TEXT[0] is not valid UTF-8"),
    ("too many texts", "minilm.embed", lambda: [text_input("TEXT", ["x"] * 65)],
     "INVALID_ARGUMENT", "TEXT has 65"),
    ("bare INT32", "minilm", lambda: bare([[101, 102]], [[1, 1]], "INT32"),
     "INVALID_ARGUMENT", "'input_ids' must be INT64"),
    ("bare 1-D", "minilm", lambda: [int_input("input_ids", np.array([101, 102])),
                                    int_input("attention_mask", np.array([1, 1]))],
     "INVALID_ARGUMENT", "'input_ids' has shape [2]"),
    ("bare shapes differ", "minilm",
     lambda: [int_input("input_ids", np.array([[101, 102]])),
              int_input("attention_mask", np.array([[1, 1, 0]]))],
     "INVALID_ARGUMENT", "'attention_mask' has shape"),
    ("bare mask all zeros", "minilm", lambda: bare([[101, 102]], [[0, 0]]),
     "INVALID_ARGUMENT", "row 0 is all zeros"),
    ("bare id past vocab", "minilm", lambda: bare([[101, 10**6]], [[1, 1]]),
     "INVALID_ARGUMENT", "'input_ids' holds ids outside"),
    ("bare type id past table", "minilm",
     lambda: [*bare([[101, 102]], [[1, 1]]), int_input("token_type_ids", np.array([[0, 5]]))],
     "INVALID_ARGUMENT", "'token_type_ids'"),
    ("bare too long", "minilm", lambda: bare([[101] * 300], [[1] * 300]),
     "INVALID_ARGUMENT", "'input_ids' has 300 tokens"),
    ("bare missing mask", "minilm", lambda: bare([[101, 102]], [[1, 1]])[:1],
     "INVALID_ARGUMENT", "'attention_mask' is missing"),
    ("unknown model", "nope.embed", lambda: [text_input("TEXT", ["x"])], "NOT_FOUND", "nope"),
    ("unknown task", "minilm.translate", lambda: [text_input("TEXT", ["x"])], "NOT_FOUND", ""),
    ("task it cannot do", "embedder.summarize", lambda: [text_input("TEXT", ["x."])],
     "FAILED_PRECONDITION", "cannot summarize"),
    ("not ready", "broken.embed", lambda: [text_input("TEXT", ["x"])],
     "UNAVAILABLE", "missing.onnx"),
]  # fmt: skip


@pytest.mark.parametrize(
    "model, make_inputs, code, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_requests(
    client: triton.InferenceServerClient,
    model: str,
    make_inputs: Callable[[], list[triton.InferInput]],
    code: str,
    message: str,
) -> None:
    with pytest.raises(triton.InferenceServerException) as info:
        client.infer(model, make_inputs())
    assert info.value.status() == f"StatusCode.{code}", info.value.message()
    assert message in info.value.message()


def test_other_bad_requests(client: triton.InferenceServerClient) -> None:
    def status(call: Callable[[], object]) -> str:
        with pytest.raises(triton.InferenceServerException) as info:
            call()
        return str(info.value.status())

    texts = [text_input("TEXT", ["x"])]
    assert status(lambda: client.infer("minilm.embed", texts, model_version="2")).endswith(
        "NOT_FOUND"
    )
    unknown_output = [triton.InferRequestedOutput("VECTOR")]
    assert status(lambda: client.infer("minilm.embed", texts, outputs=unknown_output)).endswith(
        "INVALID_ARGUMENT"
    )
    assert status(
        lambda: client.infer("minilm.embed", texts, parameters={"normalize": "yes"})
    ).endswith("INVALID_ARGUMENT")
    assert status(lambda: client.get_model_metadata("nope")).endswith("NOT_FOUND")
    assert status(lambda: client.get_model_config("broken.embed")).endswith("UNAVAILABLE")
    assert status(lambda: client.get_model_metadata("embedder.answer")).endswith(
        "FAILED_PRECONDITION"
    )


# -- counted like attnserve.v1 ------------------------------------------------------------


def test_statistics_and_metrics_count_v2_requests(
    client: triton.InferenceServerClient, server: ServerProcess
) -> None:
    def stats(name: str) -> dict[str, Any]:
        reply = client.get_inference_statistics(name, as_json=True)
        return dict(reply["model_stats"][0])

    def count(s: dict[str, Any], kind: str) -> int:
        return int(s["inference_stats"].get(kind, {}).get("count", 0))

    before = stats("minilm.summarize")
    client.infer("minilm.summarize", [text_input("TEXT", ["One. Two.", "Three. Four."])])
    with pytest.raises(triton.InferenceServerException):
        client.infer("minilm.summarize", [text_input("TEXT", [""])])
    after = stats("minilm.summarize")
    assert after["name"] == "minilm.summarize" and after["version"] == "1"
    assert count(after, "success") == count(before, "success") + 1
    assert count(after, "fail") == count(before, "fail") + 1
    assert int(after["inference_stats"]["success"]["ns"]) > 0
    assert int(after["last_inference"]) > 0
    assert int(after["inference_count"]) >= 2
    every = client.get_inference_statistics("", as_json=True)["model_stats"]
    assert {"minilm", "minilm.embed", "minilm.answer", "embedder.embed"} <= {
        s["name"] for s in every
    }

    families = text_string_to_metric_families(server.scrape())
    samples = {
        (s.name, s.labels.get("model"), s.labels.get("task"), s.labels.get("code")): s.value
        for f in families
        for s in f.samples
    }
    assert samples[("attnserve_requests_total", "minilm", "infer", "OK")] >= 1
    assert samples[("attnserve_requests_total", "minilm", "summarize", "INVALID_ARGUMENT")] >= 1
    assert samples[("attnserve_requests_total", "unknown", "embed", "NOT_FOUND")] >= 1
    assert samples[("attnserve_input_tokens_total", "minilm", "infer", None)] > 0
