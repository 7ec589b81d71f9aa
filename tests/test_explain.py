"""Explanations from the real server: Embed, Answer and Summarize with explain, each checked
against a reference computation of the same method written here from the explanation
graph's raw probabilities, and the bad inputs."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import yaml
from tokenizers import Tokenizer

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.server_process import ServerProcess

TEXTS = ["The cat sat on the mat.", "Café prices in Zürich rose 3.5% — again!"]
CONTEXT = (
    "The Eiffel Tower is in Paris. It was finished in 1889 for the World's Fair. "
    "The Great Wall of China is thousands of kilometres long."
)


@pytest.fixture(scope="module")
def stub(server: ServerProcess) -> pb_grpc.TextInferenceStub:
    return pb_grpc.TextInferenceStub(server.channel)


def reference(folder: Path, text: str, method: str, layer: int = 0) -> dict[tuple[int, int], float]:
    """The method computed here, independently: raw probabilities from explain.onnx,
    heads averaged, rollout (0.5 A + 0.5 I, rows renormalized, multiplied from the first
    layer up) or one layer, mean over the text's tokens, special tokens out, renormalized."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    encoding = tokenizer.encode(text)
    ids = np.array([encoding.ids], dtype=np.int64)
    session = ort.InferenceSession(str(folder / "explain.onnx"))
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in {i.name for i in session.get_inputs()}:
        feeds["token_type_ids"] = np.zeros_like(ids)
    layers = [out[0].transpose(1, 0, 2).mean(axis=0) for out in session.run(None, feeds)]
    if method == "rollout":
        joint = np.eye(len(encoding.ids))
        for a in layers:
            step = 0.5 * a + 0.5 * np.eye(len(a))
            joint = (step / step.sum(axis=1, keepdims=True)) @ joint
    else:
        joint = layers[(layer or len(layers)) - 1]
    pooled = joint.mean(axis=0)
    keep = {i: span for i, span in enumerate(encoding.offsets) if span[1] > span[0]}
    total = sum(pooled[i] for i in keep)
    return {span: float(pooled[i] / total) for i, span in keep.items()}


def check_weights(explanation: pb.Explanation, text: str) -> None:
    weights = [t.weight for t in explanation.tokens]
    assert explanation.tokens and min(weights) >= 0
    assert sum(weights) == pytest.approx(1.0, abs=1e-5)
    for t in explanation.tokens:
        assert text[t.start : t.end] == t.token and t.end > t.start


@pytest.mark.parametrize(("method", "layer", "label"), [
    ("", 0, "rollout"), ("rollout", 0, "rollout"), ("attention", 0, "attention:6"),
    ("attention", 2, "attention:2"),
])  # fmt: skip
def test_embed_explanations_equal_the_reference(
    stub: pb_grpc.TextInferenceStub, repository: Path, method: str, layer: int, label: str
) -> None:
    reply = stub.Embed(
        pb.EmbedRequest(texts=TEXTS, explain=True, explain_method=method, explain_layer=layer),
        timeout=60,
    )
    assert len(reply.explanations) == len(TEXTS)
    for i, (text, explanation) in enumerate(zip(TEXTS, reply.explanations, strict=True)):
        check_weights(explanation, text)
        assert explanation.method == label and explanation.target == f"embedding of text {i}"
        served = {(t.start, t.end): t.weight for t in explanation.tokens}
        expected = reference(repository / "minilm", text, method or "rollout", layer)
        assert served.keys() == expected.keys()
        assert max(abs(served[k] - expected[k]) for k in served) < 1e-5
    # Without explain, no explanations (and the same embeddings).
    plain = stub.Embed(pb.EmbedRequest(texts=TEXTS), timeout=60)
    assert not plain.explanations
    assert np.allclose(
        [e.values for e in plain.embeddings], [e.values for e in reply.embeddings], atol=1e-6
    )


def test_answer_and_summary_explanations_cover_their_sentences(
    stub: pb_grpc.TextInferenceStub, repository: Path
) -> None:
    question = "When was the Eiffel Tower finished?"
    request = pb.AnswerRequest(question=question, context=CONTEXT, top_k=2, explain=True)
    reply = stub.Answer(request, timeout=60)
    assert len(reply.explanations) == len(reply.answers) == 2
    for i, (answer, explanation) in enumerate(zip(reply.answers, reply.explanations, strict=True)):
        check_weights(explanation, CONTEXT)
        assert explanation.target == f"answer {i} over context"
        assert all(answer.start <= t.start and t.end <= answer.end for t in explanation.tokens)
        # The answer sentence explained on its own, offsets moved into the context.
        expected = reference(repository / "minilm", answer.text, "rollout")
        served = {
            (t.start - answer.start, t.end - answer.start): t.weight for t in explanation.tokens
        }
        assert max(abs(served[k] - expected[k]) for k in expected) < 1e-5

    summary = stub.Summarize(
        pb.SummarizeRequest(text=CONTEXT, max_sentences=2, explain=True), timeout=60
    )
    (explanation,) = summary.explanations
    check_weights(explanation, CONTEXT)
    inside = [
        any(s.start <= t.start and t.end <= s.end for s in summary.sentences)
        for t in explanation.tokens
    ]
    assert all(inside) and explanation.target == "summary sentences over text"


def code_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code()


def test_bad_explain_requests(stub: pb_grpc.TextInferenceStub) -> None:
    bad = [
        pb.EmbedRequest(texts=["a"], explain=True, explain_method="saliency"),
        pb.EmbedRequest(texts=["a"], explain=True, explain_method="attention", explain_layer=7),
        pb.EmbedRequest(texts=["a"], explain=True, explain_method="rollout", explain_layer=2),
    ]
    for request in bad:
        assert code_of(lambda r=request: stub.Embed(r, timeout=10)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )
    stream = stub.SummarizeStream(pb.SummarizeRequest(text=CONTEXT, explain=True), timeout=10)
    assert code_of(lambda: list(stream)) == grpc.StatusCode.INVALID_ARGUMENT
    # Past --max-text-chars, an explained text is refused as any text is.
    long = pb.EmbedRequest(texts=["word " * 5000], explain=True)
    assert code_of(lambda: stub.Embed(long, timeout=10)) == grpc.StatusCode.INVALID_ARGUMENT


def test_a_model_without_an_explanation_graph_says_why(tmp_path: Path, repository: Path) -> None:
    from tests.server_process import link_model

    root = tmp_path / "models"
    link_model(repository / "minilm", root / "minilm", explain=None)
    with ServerProcess(root) as server:
        embed = pb.EmbedRequest(texts=["a"], explain=True)
        stub = pb_grpc.TextInferenceStub(server.channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.Embed(embed, timeout=10)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "no explanation graph" in (caught.value.details() or "")
        assert stub.Embed(pb.EmbedRequest(texts=["a"]), timeout=10).embeddings  # still serves


def test_the_export_checks_the_probabilities_against_transformers(repository: Path) -> None:
    manifest = yaml.safe_load((repository / "minilm" / "model.yaml").read_text())
    explain = manifest["explain"]
    assert explain["passed"] and explain["max_abs_diff"] <= explain["max_abs_diff_limit"] == 1e-5
    assert explain["layers"] == manifest["num_layers"] and explain["file"] in manifest["sha256"]


def test_the_cli_shows_and_writes_what_the_server_explains(
    stub: pb_grpc.TextInferenceStub, server: ServerProcess, tmp_path: Path
) -> None:
    """`attnserve answer --explain --html` against the real server: the terminal shows the
    top tokens, and the page holds every token the server weighed, with its weight."""
    import re
    import subprocess
    import sys

    from tests.server_process import ROOT

    context = tmp_path / "context.txt"
    context.write_text(CONTEXT, encoding="utf-8")
    page = tmp_path / "explain.html"
    question = "When was the Eiffel Tower finished?"
    done = subprocess.run(
        [sys.executable, "-m", "service", "answer", "--context", str(context), question,
         "--html", str(page), "--target", server.target],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    reply = stub.Answer(
        pb.AnswerRequest(question=question, context=CONTEXT, explain=True), timeout=60
    )
    (explanation,) = reply.explanations
    best = max(explanation.tokens, key=lambda t: t.weight)
    assert "method rollout" in done.stdout and f"{best.token} {best.weight:.3f}" in done.stdout
    weights = [float(w) for w in re.findall(r'data-weight="([0-9.e-]+)"', page.read_text())]
    assert sorted(weights) == pytest.approx(sorted(t.weight for t in explanation.tokens), abs=1e-4)


def test_kserve_v2_gives_explanation_when_asked(
    stub: pb_grpc.TextInferenceStub, server: ServerProcess
) -> None:
    import json

    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=server.target)
    tensor = grpcclient.InferInput("TEXT", [len(TEXTS)], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in TEXTS], dtype=object))
    metadata = client.get_model_metadata("minilm.embed", as_json=True)
    assert "EXPLANATION" in [o["name"] for o in metadata["outputs"]]
    plain = client.infer("minilm.embed", [tensor])
    assert plain.as_numpy("EXPLANATION") is None  # only when asked
    asked = client.infer("minilm.embed", [tensor], parameters={"explain": True})
    documents = [json.loads(item) for item in asked.as_numpy("EXPLANATION")]
    v1 = stub.Embed(pb.EmbedRequest(texts=TEXTS, explain=True), timeout=60).explanations
    for document, explanation in zip(documents, v1, strict=True):
        assert document["method"] == explanation.method == "rollout"
        assert [(t["start"], t["end"]) for t in document["tokens"]] == [
            (t.start, t.end) for t in explanation.tokens
        ]
        weights = [t["weight"] for t in document["tokens"]]
        assert weights == pytest.approx([t.weight for t in explanation.tokens], abs=1e-6)
    # Asked for by name without the parameter (as perf_analyzer asks for every declared
    # output): left out, the rest answered; nothing is explained.
    wanted = [grpcclient.InferRequestedOutput(n) for n in ("EMBEDDING", "EXPLANATION")]
    plain = client.infer("minilm.embed", [tensor], outputs=wanted)
    assert plain.as_numpy("EXPLANATION") is None
    assert plain.as_numpy("EMBEDDING").shape == (len(TEXTS), 384)
