"""The real server over a real gRPC channel: answers from the real weights, and the
contract's error table."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.server_process import ServerProcess

CONTEXT = (
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company built it from 1887 to 1889. "
    'Locally nicknamed "La dame de fer" (French for "Iron Lady"), it was the centerpiece '
    "of the 1889 World's Fair. The tower is 330 m (1,083 ft) tall, about the height of an "
    "81-storey building. Dr. Smith saw it in Jan. 2020 — with approx. 3.5 million others. "
    "Photosynthesis, by contrast, is how plants turn light into chemical energy 🌱."
)


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> pb_grpc.TextInferenceStub:
    return pb_grpc.TextInferenceStub(server.channel)


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value.code()  # type: ignore[no-any-return]


def test_health_serving_for_every_service(server: ServerProcess) -> None:
    health = health_pb2_grpc.HealthStub(server.channel)
    for service in ("", "attnserve.v1.TextInference"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_list_models_reports_ready_and_broken(stub: pb_grpc.TextInferenceStub) -> None:
    reply = stub.ListModels(pb.ListModelsRequest(), timeout=5)
    models = {m.name: m for m in reply.models}
    assert reply.default_model == "minilm"
    assert set(models) == {"minilm", "embedder", "broken"}
    m = models["minilm"]
    assert m.ready and m.architecture == "BertModel" and m.max_sequence_length == 256
    # bf16 (CPUs with the units) runs on OpenVINO's runtime; fp32 on onnxruntime's CPU.
    providers = ["openvino"] if m.precision == "bf16" else ["cpu"]
    assert list(m.tasks) == ["embed", "summarize", "answer"] and list(m.providers) == providers
    assert m.dimensions == 384
    assert not models["broken"].ready and "missing.onnx" in models["broken"].error


def test_embed_is_normalised_and_semantic(stub: pb_grpc.TextInferenceStub) -> None:
    texts = ["A man is eating food.", "A man is eating a meal.", "The stock market fell."]
    reply = stub.Embed(pb.EmbedRequest(texts=texts, normalize=True), timeout=10)
    vectors = np.array([e.values for e in reply.embeddings])
    assert reply.model == "minilm" and reply.dimensions == 384 and vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > 0.7 > similarity[0, 2]


def test_embed_alone_equals_embed_in_a_batch(stub: pb_grpc.TextInferenceStub) -> None:
    # Padding must not leak into the result: one text alone and among longer ones agree.
    text = "Short one."
    alone = stub.Embed(pb.EmbedRequest(texts=[text]), timeout=10).embeddings[0].values
    mixed = stub.Embed(pb.EmbedRequest(texts=[CONTEXT, text]), timeout=10).embeddings[1].values
    assert np.allclose(alone, mixed, atol=1e-4)


def test_embed_reports_truncation(stub: pb_grpc.TextInferenceStub) -> None:
    long_text = "word " * 600
    reply = stub.Embed(pb.EmbedRequest(texts=["fine", long_text]), timeout=10)
    assert list(reply.truncated_texts) == [1]


def test_answer_picks_the_sentence_with_exact_offsets(stub: pb_grpc.TextInferenceStub) -> None:
    reply = stub.Answer(
        pb.AnswerRequest(question="How tall is the tower?", context=CONTEXT, top_k=2), timeout=10
    )
    assert len(reply.answers) == 2
    best = reply.answers[0]
    assert "330 m" in best.text
    assert CONTEXT[best.start : best.end] == best.text
    assert reply.answers[0].score >= reply.answers[1].score
    plants = stub.Answer(
        pb.AnswerRequest(question="How do plants make energy?", context=CONTEXT), timeout=10
    )
    assert len(plants.answers) == 1 and "Photosynthesis" in plants.answers[0].text
    assert CONTEXT[plants.answers[0].start : plants.answers[0].end].endswith("🌱.")


def test_summarize_in_document_order_with_offsets(stub: pb_grpc.TextInferenceStub) -> None:
    reply = stub.Summarize(pb.SummarizeRequest(text=CONTEXT, max_sentences=2), timeout=10)
    assert len(reply.sentences) == 2
    starts = [s.start for s in reply.sentences]
    assert starts == sorted(starts)
    for s in reply.sentences:
        assert CONTEXT[s.start : s.end] == s.text
    assert reply.summary == " ".join(s.text for s in reply.sentences)
    assert all("Photosynthesis" not in s.text for s in reply.sentences)  # the odd one out
    default = stub.Summarize(pb.SummarizeRequest(text=CONTEXT), timeout=10)
    assert len(default.sentences) == 3


def test_summarize_long_text_is_split_not_cut(stub: pb_grpc.TextInferenceStub) -> None:
    # ~40 sentences, far beyond one 256-token window: every sentence is scored.
    text = " ".join(f"Sentence number {i} talks about topic {i % 7}." for i in range(40))
    reply = stub.Summarize(pb.SummarizeRequest(text=text, max_sentences=5), timeout=30)
    assert len(reply.sentences) == 5 and reply.truncated_sentences == 0
    assert all(text[s.start : s.end] == s.text for s in reply.sentences)


def test_explicit_model_name_and_embed_only_model(stub: pb_grpc.TextInferenceStub) -> None:
    reply = stub.Embed(pb.EmbedRequest(texts=["hi"], model="embedder"), timeout=10)
    assert reply.model == "embedder"


# -- the error table ---------------------------------------------------------------------

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "rpc, request_",
    [
        ("Embed", pb.EmbedRequest()),
        ("Embed", pb.EmbedRequest(texts=["ok", ""])),
        ("Embed", pb.EmbedRequest(texts=["   \n\t"])),
        ("Embed", pb.EmbedRequest(texts=["x"] * 65)),
        ("Embed", pb.EmbedRequest(texts=["x" * 20001])),
        ("Summarize", pb.SummarizeRequest(text="")),
        ("Summarize", pb.SummarizeRequest(text=" \u200b "[:2])),
        ("Summarize", pb.SummarizeRequest(text="Fine text.", max_sentences=1001)),
        ("Summarize", pb.SummarizeRequest(text="y" * 20001)),
        ("Answer", pb.AnswerRequest(question="", context="Some context.")),
        ("Answer", pb.AnswerRequest(question="What?", context="")),
        ("Answer", pb.AnswerRequest(question="What?", context="Ctx.", top_k=4_000_000_000)),
    ],
)
def test_invalid_argument(stub: pb_grpc.TextInferenceStub, rpc: str, request_: object) -> None:
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, rpc)(request_, timeout=10)
    assert info.value.code() == INVALID
    assert info.value.details()  # the message says what to fix


def test_unknown_model_is_not_found(stub: pb_grpc.TextInferenceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Embed(pb.EmbedRequest(texts=["x"], model="nope"), timeout=5)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in info.value.details() and "minilm" in info.value.details()


def test_task_the_model_cannot_do_is_failed_precondition(
    stub: pb_grpc.TextInferenceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Summarize(pb.SummarizeRequest(text="Hello there.", model="embedder"), timeout=5)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_model_that_failed_to_load_is_unavailable(stub: pb_grpc.TextInferenceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Embed(pb.EmbedRequest(texts=["x"], model="broken"), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "missing.onnx" in info.value.details()


def test_server_survives_bad_requests(stub: pb_grpc.TextInferenceStub) -> None:
    reply = stub.Embed(pb.EmbedRequest(texts=["still here"]), timeout=10)
    assert reply.dimensions == 384
