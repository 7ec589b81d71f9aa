"""Span question answering end to end: tiny random BERT, DistilBERT, RoBERTa and ELECTRA QA
models are exported with `attnserve export --task question-answering`, served by one real
server, and every served answer is compared with the transformers pipeline's (tests/
harness/qa_reference.py) on the same PyTorch model: text, code-point offsets and score."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as grpcclient
import yaml
from tokenizers import Tokenizer

from harness import qa_models
from harness.minilm import minilm_source
from harness.qa_cases import ARCHITECTURES, CASES_PER_MODEL, WORDS, Case, cases, expected
from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.server_process import ROOT, ServerProcess

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports transformers

EXPORT_ALL = """
import sys
from export.cli import main
for pair in sys.argv[1:]:
    source, out = pair.split("\\n")
    if main([source, "--task", "question-answering", "--out", out]):
        sys.exit(1)
"""


@dataclass(frozen=True)
class SpanModels:
    sources: dict[str, Path]  # Hugging Face folders, for the reference
    repository: Path  # their exports, for the server


@pytest.fixture(scope="session")
def span_models(tmp_path_factory: pytest.TempPathFactory) -> SpanModels:
    """The four tiny sources, exported into one model repository."""
    wordpiece = minilm_source()
    sources = tmp_path_factory.mktemp("qa-sources")
    repository = tmp_path_factory.mktemp("qa-repo") / "models"
    built = {
        name: qa_models.build(name, sources / name, wordpiece, seed=index)
        for index, name in enumerate(ARCHITECTURES)
    }
    # One process for the four exports (torch is imported once), through the CLI's main().
    result = subprocess.run(
        [sys.executable, "-c", EXPORT_ALL, *(f"{built[n]}\n{repository / n}" for n in built)],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    return SpanModels(built, repository)


@pytest.fixture(scope="session")
def span_server(span_models: SpanModels) -> Iterator[ServerProcess]:
    # fp32, as the transformers pipeline the answers are held to (on CPUs with bf16 units
    # `auto` would serve bf16, whose scores differ from fp32's by about 0.1%).
    server = ServerProcess(span_models.repository, "--default-model", "bert", "--precision", "fp32")
    try:
        server.wait_serving()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stub(span_server: ServerProcess) -> pb_grpc.TextInferenceStub:
    return pb_grpc.TextInferenceStub(span_server.channel)


def served(stub: pb_grpc.TextInferenceStub, model: str, case: Case) -> list[dict[str, Any]]:
    reply = stub.Answer(
        pb.AnswerRequest(
            question=case.question,
            context=case.context,
            model=model,
            top_k=case.top_k,
            doc_stride=case.doc_stride,
            max_answer_length=case.max_answer_length,
            allow_no_answer=case.allow_no_answer,
        ),
        timeout=30,
    )
    assert reply.model == model
    return [
        {"answer": a.text, "start": a.start, "end": a.end, "score": a.score} for a in reply.answers
    ]


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_answers_equal_the_transformers_pipeline(
    architecture: str, span_models: SpanModels, stub: pb_grpc.TextInferenceStub
) -> None:
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    source = span_models.sources[architecture]
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    model = AutoModelForQuestionAnswering.from_pretrained(str(source)).eval()
    overflowing = non_ascii_offsets = no_answer = 0
    for case in cases(seed=len(architecture)):
        want = expected(model, tokenizer, case)
        got = served(stub, architecture, case)
        assert [(a["answer"], a["start"], a["end"]) for a in got] == [
            (a["answer"], a["start"], a["end"]) for a in want
        ], case
        assert [a["score"] for a in got] == pytest.approx([a["score"] for a in want], rel=1e-3)
        for answer in got:
            assert case.context[answer["start"] : answer["end"]] == answer["answer"]
            prefix = case.context[: answer["start"]]
            non_ascii_offsets += len(prefix.encode()) != len(prefix)
        windows = tokenizer(
            case.question, case.context, truncation="only_second",
            max_length=qa_models.MAX_LENGTH, stride=case.doc_stride or 48,
            return_overflowing_tokens=True,
        )["input_ids"]  # fmt: skip
        overflowing += len(windows) > 1
        no_answer += case.allow_no_answer and not got
    assert overflowing >= CASES_PER_MODEL // 2
    # Code points, not bytes: answers that start after é, emoji or 東京 are placed right.
    assert non_ascii_offsets >= 5


def test_manifest_records_fusion_and_decoding(span_models: SpanModels) -> None:
    for name, architecture in ARCHITECTURES.items():
        manifest = yaml.safe_load((span_models.repository / name / "model.yaml").read_text())
        assert manifest["export_task"] == "question-answering"
        assert (manifest["tasks"], manifest["architecture"]) == (["answer"], architecture)
        assert manifest["outputs"] == ["start_logits", "end_logits"]
        assert manifest["max_sequence_length"] == qa_models.MAX_LENGTH
        decoding = manifest["question_answering"]
        assert (decoding["doc_stride"], decoding["max_answer_length"]) == (48, 15)
        assert manifest["fused_ops"]["Attention"] == 2 and manifest["unfused_ops"]["Softmax"] == 0
        assert manifest["parity"]["passed"] and manifest["parity"]["max_abs_diff"] <= 1e-4
        embeddings_fused = manifest["fused_ops"].get("EmbedLayerNormalization", 0) == 1
        assert embeddings_fused == (name != "roberta")
        assert bool(manifest["fusion_notes"]) == (name == "roberta")
        # fp16 is kept only with PyTorch's best answer on every pair, batched and alone.
        fp16 = manifest["variants"].get("fp16")
        if fp16 is None:
            assert manifest["skipped_variants"]["fp16"].startswith("below its floor"), name
        else:
            parity = fp16["parity"]
            assert parity["identical_answers"] == parity["sentences"] and parity["passed"]
            assert fp16["fused_ops"]["Attention"] == 2
        assert "int8" not in manifest["variants"]
        explain = manifest["explain"]  # attention probabilities within 1e-5 of transformers'
        assert explain["passed"] and explain["max_abs_diff"] <= 1e-5 and explain["layers"] == 2


def test_list_models_reports_answer_only(stub: pb_grpc.TextInferenceStub) -> None:
    models = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=5).models}
    assert set(models) == set(ARCHITECTURES)
    for name, architecture in ARCHITECTURES.items():
        info = models[name]
        assert info.ready, info.error
        assert (list(info.tasks), info.architecture) == (["answer"], architecture)
        assert (info.max_sequence_length, info.dimensions) == (qa_models.MAX_LENGTH, 0)


@pytest.mark.parametrize(
    "request_",
    [
        pb.EmbedRequest(texts=["hello"], model="roberta"),
        pb.SummarizeRequest(text="One sentence. Another one.", model="electra"),
    ],
)
def test_other_tasks_are_failed_precondition(
    stub: pb_grpc.TextInferenceStub, request_: Any
) -> None:
    rpc = stub.Embed if isinstance(request_, pb.EmbedRequest) else stub.Summarize
    with pytest.raises(grpc.RpcError) as info:
        rpc(request_, timeout=5)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "answer" in info.value.details()


LONG_CONTEXT = " ".join(WORDS * 8)


@pytest.mark.parametrize(
    "options",
    [
        {"max_answer_length": qa_models.MAX_LENGTH + 1},
        {"max_answer_length": 4_000_000_000},
        {"doc_stride": qa_models.MAX_LENGTH},
        {"top_k": 1001},
        # 60 question tokens leave 33 per window: a stride of 40 cannot move.
        {"question": "who " * 60, "doc_stride": 40},
        {"question": "who " * 100},  # no room for the context at all
        {"question": " \u200b"},
        {"context": ""},
    ],
)
def test_bad_options_are_invalid_argument(
    stub: pb_grpc.TextInferenceStub, options: dict[str, Any]
) -> None:
    request = {"question": "who built it?", "context": LONG_CONTEXT, "model": "distilbert"}
    with pytest.raises(grpc.RpcError) as info:
        stub.Answer(pb.AnswerRequest(**{**request, **options}), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details()


def reference(folder: Path, question: str, context: str, answer: pb.Span, method: str) -> Weights:
    """The method computed here from explain.onnx's raw probabilities on the one window of
    (question, context): heads averaged, rollout (0.5 A + 0.5 I, rows renormalized, from
    the first layer up) or the last layer, the mean of the rows of the context tokens that
    cover the answer, over the context's tokens, renormalized."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    encoding = tokenizer.encode(question, context)
    assert len(encoding.ids) <= qa_models.MAX_LENGTH  # one window
    ids = np.array([encoding.ids], dtype=np.int64)
    session = ort.InferenceSession(str(folder / "explain.onnx"))
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in {i.name for i in session.get_inputs()}:
        feeds["token_type_ids"] = np.array([encoding.type_ids], dtype=np.int64)
    layers = [out[0].transpose(1, 0, 2).mean(axis=0) for out in session.run(None, feeds)]
    joint = layers[-1]
    if method == "rollout":
        joint = np.eye(len(encoding.ids))
        for a in layers:
            step = 0.5 * a + 0.5 * np.eye(len(a))
            joint = (step / step.sum(axis=1, keepdims=True)) @ joint
    context_tokens = [i for i, s in enumerate(encoding.sequence_ids) if s == 1]
    rows = [
        i for i in context_tokens
        if encoding.offsets[i][0] < answer.end and encoding.offsets[i][1] > answer.start
    ]  # fmt: skip
    pooled = joint[rows].mean(axis=0)
    keep = {
        i: encoding.offsets[i]
        for i in context_tokens
        if encoding.offsets[i][1] > encoding.offsets[i][0]
    }
    total = sum(pooled[i] for i in keep)
    return {span: float(pooled[i] / total) for i, span in keep.items()}


Weights = dict[tuple[int, int], float]


def check_explanation(explanation: pb.Explanation, context: str, target: str) -> Weights:
    assert explanation.target == target and explanation.tokens
    weights = [t.weight for t in explanation.tokens]
    assert min(weights) >= 0 and sum(weights) == pytest.approx(1.0, abs=1e-5)
    for t in explanation.tokens:
        assert context[t.start : t.end] == t.token and t.end > t.start
    return {(t.start, t.end): t.weight for t in explanation.tokens}


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
@pytest.mark.parametrize(("method", "label"), [("", "rollout"), ("attention", "attention:2")])
def test_span_answer_explanations_equal_the_reference(
    architecture: str,
    method: str,
    label: str,
    span_models: SpanModels,
    stub: pb_grpc.TextInferenceStub,
) -> None:
    # Contexts that fit one window (every third case), two answers each.
    for case in cases(seed=11)[::3][:3]:
        request = pb.AnswerRequest(
            question=case.question, context=case.context, model=architecture, top_k=2,
            explain=True, explain_method=method,
        )  # fmt: skip
        reply = stub.Answer(request, timeout=60)
        assert len(reply.explanations) == len(reply.answers) > 0
        for i, (answer, explanation) in enumerate(
            zip(reply.answers, reply.explanations, strict=True)
        ):
            assert explanation.method == label
            served_weights = check_explanation(
                explanation, case.context, f"answer {i} over context"
            )
            folder = span_models.repository / architecture
            expected_weights = reference(
                folder, case.question, case.context, answer, method or "rollout"
            )
            assert served_weights.keys() == expected_weights.keys()
            assert max(abs(served_weights[k] - expected_weights[k]) for k in served_weights) < 1e-5
        # Without explain, the same answers and no explanations.
        plain = stub.Answer(pb.AnswerRequest(
            question=case.question, context=case.context, model=architecture, top_k=2
        ), timeout=60)  # fmt: skip
        assert not plain.explanations and list(plain.answers) == list(reply.answers)


def test_span_explanations_over_a_long_context_stay_in_it(stub: pb_grpc.TextInferenceStub) -> None:
    # Many windows: each answer is explained over the context tokens of its own window.
    request = pb.AnswerRequest(
        question="who built the tower?", context=LONG_CONTEXT, top_k=3, explain=True
    )
    reply = stub.Answer(request, timeout=60)
    assert len(reply.explanations) == len(reply.answers) == 3
    for i, explanation in enumerate(reply.explanations):
        weights = check_explanation(explanation, LONG_CONTEXT, f"answer {i} over context")
        # One window of MAX_LENGTH tokens, the question's left out.
        assert len(weights) < qa_models.MAX_LENGTH


def test_server_still_answers(stub: pb_grpc.TextInferenceStub) -> None:
    reply = stub.Answer(pb.AnswerRequest(question="who?", context=LONG_CONTEXT), timeout=10)
    assert reply.model == "bert" and len(reply.answers) == 1


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_kserve_v2_answer_equals_v1(
    architecture: str, stub: pb_grpc.TextInferenceStub, span_server: ServerProcess
) -> None:
    case = cases(seed=5)[0]
    client = grpcclient.InferenceServerClient(url=span_server.target)
    inputs = []
    for name, value in (("QUESTION", case.question), ("CONTEXT", case.context)):
        tensor = grpcclient.InferInput(name, [1], "BYTES")
        tensor.set_data_from_numpy(np.array([value.encode()], dtype=object))
        inputs.append(tensor)
    result = client.infer(f"{architecture}.answer", inputs)
    request = pb.AnswerRequest(question=case.question, context=case.context, model=architecture)
    v1 = stub.Answer(request, timeout=30).answers
    assert result.as_numpy("ANSWER")[0].decode() == (v1[0].text if v1 else "")
    # asked for, the best answer's explanation, as attnserve.v1 gives it
    explained = client.infer(f"{architecture}.answer", inputs, parameters={"explain": True})
    (document,) = explained.as_numpy("EXPLANATION")
    explanation = stub.Answer(
        pb.AnswerRequest(
            question=case.question, context=case.context, model=architecture, explain=True
        ),
        timeout=30,
    ).explanations
    tokens = json.loads(document)["tokens"]
    want = [(t.start, t.end) for t in explanation[0].tokens] if explanation else []
    assert [(t["start"], t["end"]) for t in tokens] == want
    # the bare graph gives the span logits, one per token
    meta = client.get_model_metadata(architecture)
    assert [o.name for o in meta.outputs] == ["start_logits", "end_logits"]
