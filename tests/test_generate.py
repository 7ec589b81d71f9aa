"""Decoder-only generation end to end: tiny random GPT-2 and Llama-shaped (grouped-query,
tied embeddings, BOS, chat template) causal LMs built from configs, exported with `attnserve
export --task text-generation`, served by a real server that prefills prompts in chunks of
7 tokens, and compared token for token with transformers' generate()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import requests
import tritonclient.grpc as grpcclient
import yaml
from google.protobuf import json_format

from harness.tiny_causal import build_gpt2, build_llama, build_qwen2, sentences
from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from tests.drafts import Shifted, one_at_a_time
from tests.server_process import ROOT, ServerProcess

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports transformers

# qwen2: Llama-shaped, with biases on the query, key and value projections.
MODELS = {"gpt2": build_gpt2, "llama": build_llama, "qwen2": build_qwen2}
PREFILL = 7  # --prefill-tokens: most prompts take several chunks
PROMPTS = sentences(8, seed=11, min_words=2, max_words=40)  # mixed lengths, one batch
NEW = 12
INT8_MODEL = "gpt2-int8"
LLAMA_FUSED = {"Attention": 2, "RMSNormalization": 5, "RotaryEmbedding": 4}


@pytest.fixture(scope="session")
def causal_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("causal-src")
    return {name: build(root / name) for name, build in MODELS.items()}


@pytest.fixture(scope="session")
def causal_repository(
    causal_sources: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    root = tmp_path_factory.mktemp("causal-repo") / "models"
    exports = [*((n, s, []) for n, s in causal_sources.items())]
    exports.append((INT8_MODEL, causal_sources["gpt2"], ["--int8"]))  # served in int8
    for name, source, options in exports:
        done = subprocess.run(
            [sys.executable, "-m", "export", str(source), "--task", "text-generation",
             "--out", str(root / name), *options],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    return root


@pytest.fixture(scope="module")
def causal_server(causal_repository: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        causal_repository, "--default-model", "gpt2", "--prefill-tokens", str(PREFILL)
    )
    try:
        server.wait_serving()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def stub(causal_server: ServerProcess) -> pb_grpc.TextInferenceStub:
    return pb_grpc.TextInferenceStub(causal_server.channel)


class Reference:
    """transformers on the source folder: tokenizer(prompt) and generate()."""

    def __init__(self, source: Path) -> None:
        from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

        # The folder's tokenizer.json as saved: transformers 5's AutoTokenizer builds Qwen2's
        # own BPE for model_type qwen2, whatever tokenizer the folder holds (a real Qwen2
        # folder holds that one; the tiny one here a word-level vocabulary).
        self.tokenizer = PreTrainedTokenizerFast.from_pretrained(str(source))
        self.model = AutoModelForCausalLM.from_pretrained(str(source)).eval()

    def generate(self, ids: list[int], **options: Any) -> list[int]:
        import torch

        with torch.inference_mode():
            out = self.model.generate(
                input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids)), **options
            )
        return [int(t) for t in out[0, len(ids) :]]

    def ids(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt)["input_ids"])

    def text(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))


@pytest.fixture(scope="module")
def references(causal_sources: dict[str, Path]) -> dict[str, Reference]:
    return {name: Reference(source) for name, source in causal_sources.items()}


def test_export_fuses_every_attention_and_records_the_model(causal_repository: Path) -> None:
    for name, architecture, fused in (
        ("gpt2", "GPT2LMHeadModel", {"Attention": 2}),
        # Every RMSNorm one op (two per layer and the last), every rotary one (query, key).
        ("llama", "LlamaForCausalLM", LLAMA_FUSED),
        ("qwen2", "Qwen2ForCausalLM", LLAMA_FUSED),
    ):
        manifest = yaml.safe_load((causal_repository / name / "model.yaml").read_text())
        assert manifest["export_task"] == "text-generation"
        assert manifest["tasks"] == ["generate", "summarize"]
        assert manifest["architecture"] == architecture
        assert manifest["fused_ops"] == fused and manifest["fully_fused"]
        assert manifest["unfused_ops"]["Softmax"] == 0
        parity = manifest["parity"]
        assert parity["passed"] and parity["max_abs_diff"] <= 1e-4
        assert parity["greedy_identical"] == parity["prompts"] and parity["prefill_chunk"] > 1
        assert manifest["inputs"][:2] == ["input_ids", "position_ids"]
    llama = yaml.safe_load((causal_repository / "llama" / "model.yaml").read_text())
    assert (llama["num_heads"], llama["num_kv_heads"], llama["tied_embeddings"]) == (4, 2, True)
    assert llama["summary_prompt"]["origin"] == "chat_template"
    gpt2 = yaml.safe_load((causal_repository / "gpt2" / "model.yaml").read_text())
    assert gpt2["summary_prompt"] == {
        "template": "{text}\n\nTL;DR:", "add_special_tokens": True, "origin": "default"
    }  # fmt: skip


def test_the_int8_variant_holds_its_floor_and_is_served(
    causal_repository: Path, stub: pb_grpc.TextInferenceStub
) -> None:
    manifest = yaml.safe_load((causal_repository / INT8_MODEL / "model.yaml").read_text())
    assert manifest["precision"] == "int8" and set(manifest["variants"]) == {"fp32", "int8"}
    int8 = manifest["variants"]["int8"]
    assert int8["file"] == "decoder_model.int8.onnx" and int8["quantization"]
    assert int8["parity"]["passed"] and int8["parity"]["min_cosine"] >= 0.99
    assert int8["parity"]["min_cosine_limit"] == 0.99
    import onnx

    # Every matrix product is int8, the tied LM head included (it reads the embedding table
    # through a Transpose, which the quantizer would leave fp32).
    graph = onnx.load(str(causal_repository / INT8_MODEL / int8["file"])).graph
    assert not [node.name for node in graph.node if node.op_type in ("MatMul", "Gemm")]
    models = {m.name: m for m in stub.ListModels(pb.ListModelsRequest(), timeout=5).models}
    assert models[INT8_MODEL].precision == "int8" and models["gpt2"].precision == "fp32"
    request = pb.GenerateRequest(prompt=PROMPTS[0], model=INT8_MODEL, max_new_tokens=NEW)
    assert len(stub.Generate(request, timeout=30).token_ids) >= 1


def test_the_graph_keeps_grouped_query_attention_grouped(causal_repository: Path) -> None:
    import onnx

    graph = onnx.load(str(causal_repository / "llama" / "decoder_model.onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("Attention") == 2 and ops.count("TensorScatter") == 4
    assert "Expand" not in ops  # keys and values are not repeated per query head
    # One matrix product for the query, key and value projections, one for the MLP's gate
    # and up projections, one for its down projection, one for the attention output, per
    # layer; and the LM head.
    assert ops.count("MatMul") == 2 * 4 + 1


@pytest.mark.parametrize("name", list(MODELS))
def test_concurrent_greedy_equals_generate(
    name: str, stub: pb_grpc.TextInferenceStub, references: dict[str, Reference]
) -> None:
    reference = references[name]

    def served(prompt: str) -> pb.GenerateResponse:
        request = pb.GenerateRequest(prompt=prompt, model=name, max_new_tokens=NEW)
        return stub.Generate(request, timeout=60)

    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        replies = list(pool.map(served, PROMPTS))
    for prompt, reply in zip(PROMPTS, replies, strict=True):
        ids = reference.ids(prompt)
        want = reference.generate(ids, max_new_tokens=NEW, do_sample=False)
        assert list(reply.token_ids) == want, prompt
        assert reply.text == reference.text(want) and reply.prompt_tokens == len(ids)
        eos = reference.model.generation_config.eos_token_id
        assert reply.finish_reason == ("eos" if want[-1] == eos else "length")
    if name == "llama":  # its tokenizer adds BOS, as tokenizer(prompt) does
        assert reference.ids(PROMPTS[0])[0] == reference.tokenizer.bos_token_id


@pytest.mark.parametrize("name", list(MODELS))
def test_concurrent_beam_search_equals_generate(
    name: str, stub: pb_grpc.TextInferenceStub, references: dict[str, Reference]
) -> None:
    reference = references[name]
    prompts = PROMPTS[:4]

    def served(prompt: str) -> pb.GenerateResponse:
        request = pb.GenerateRequest(prompt=prompt, model=name, max_new_tokens=NEW, num_beams=3)
        return stub.Generate(request, timeout=60)

    with ThreadPoolExecutor(len(prompts)) as pool:
        replies = list(pool.map(served, prompts))
    for prompt, reply in zip(prompts, replies, strict=True):
        want = reference.generate(
            reference.ids(prompt), max_new_tokens=NEW, num_beams=3, do_sample=False
        )
        assert list(reply.token_ids) == want, prompt


def test_stream_joins_to_generate_and_ends_with_its_reason(stub: pb_grpc.TextInferenceStub) -> None:
    for name in MODELS:
        request = pb.GenerateRequest(prompt=PROMPTS[3], model=name, max_new_tokens=NEW)
        whole = stub.Generate(request, timeout=60)
        chunks = list(stub.GenerateStream(request, timeout=60))
        assert "".join(c.text for c in chunks) == whole.text
        assert len(chunks) > 2 and [c.done for c in chunks] == [False] * (len(chunks) - 1) + [True]
        assert chunks[-1].finish_reason == whole.finish_reason and chunks[-1].model == name


def test_generate_over_http_equals_grpc(
    causal_server: ServerProcess, stub: pb_grpc.TextInferenceStub
) -> None:
    request = pb.GenerateRequest(prompt=PROMPTS[2], model="llama", max_new_tokens=NEW)
    want = json_format.MessageToDict(
        stub.Generate(request, timeout=60), always_print_fields_with_no_presence=True
    )
    body = {"prompt": PROMPTS[2], "model": "llama", "maxNewTokens": NEW}
    url = causal_server.http_url
    reply = requests.post(f"{url}/v1/generate", json=body, timeout=60)
    assert reply.status_code == 200 and reply.json() == want
    streamed = requests.post(f"{url}/v1/generate_stream", json=body, timeout=60)
    chunks = [json.loads(line) for line in streamed.text.splitlines()]
    assert "".join(c["text"] for c in chunks) == want["text"]
    assert chunks[-1]["done"] and chunks[-1]["finishReason"] == want["finishReason"]
    bad = requests.post(f"{url}/v1/generate_stream", json={**body, "temperature": -1}, timeout=60)
    assert bad.status_code == 400 and "temperature" in bad.json()["error"]["message"]


def test_stop_strings_end_the_text_before_them(stub: pb_grpc.TextInferenceStub) -> None:
    base = pb.GenerateRequest(prompt=PROMPTS[2], model="llama", max_new_tokens=NEW)
    whole = stub.Generate(base, timeout=60)
    words = whole.text.split(" ")
    stop = words[len(words) // 2]
    cut = whole.text.index(stop)
    request = pb.GenerateRequest(prompt=PROMPTS[2], model="llama", max_new_tokens=NEW, stop=[stop])
    stopped = stub.Generate(request, timeout=60)
    assert (stopped.text, stopped.finish_reason) == (whole.text[:cut], "stop")
    # Generation stopped there: fewer tokens, the last one completing the stop string.
    assert len(stopped.token_ids) < len(whole.token_ids)
    assert list(stopped.token_ids) == list(whole.token_ids[: len(stopped.token_ids)])
    chunks = list(stub.GenerateStream(request, timeout=60))
    assert "".join(c.text for c in chunks) == stopped.text
    assert chunks[-1].finish_reason == "stop"
    beams = stub.Generate(
        pb.GenerateRequest(prompt=PROMPTS[2], model="llama", max_new_tokens=NEW, num_beams=2,
                           stop=["zzz-never"]),
        timeout=60,
    )  # fmt: skip
    assert beams.finish_reason in ("length", "eos")


def test_sampling_is_reproducible_for_a_seed(stub: pb_grpc.TextInferenceStub) -> None:
    def sample(seed: int, **options: Any) -> list[int]:
        request = pb.GenerateRequest(
            prompt=PROMPTS[1], model="gpt2", max_new_tokens=NEW, seed=seed, **options
        )
        return list(stub.Generate(request, timeout=60).token_ids)

    hot = {"temperature": 5.0}  # a flat distribution: seeds disagree
    assert sample(7, **hot) == sample(7, **hot)
    assert len({tuple(sample(seed, **hot)) for seed in range(1, 5)}) > 1
    # top_p keeps the smallest set reaching it: tiny, only the best token is left: greedy.
    greedy = list(
        stub.Generate(
            pb.GenerateRequest(prompt=PROMPTS[1], model="gpt2", max_new_tokens=NEW), timeout=60
        ).token_ids
    )
    assert sample(3, temperature=1.0, top_p=1e-6) == greedy


def test_summarize_on_a_causal_lm_uses_its_prompt(
    stub: pb_grpc.TextInferenceStub, references: dict[str, Reference], causal_repository: Path
) -> None:
    text = PROMPTS[4]
    for name in MODELS:
        reference = references[name]
        reply = stub.Summarize(
            pb.SummarizeRequest(text=text, model=name, max_new_tokens=8), timeout=60
        )
        prompt = yaml.safe_load((causal_repository / name / "model.yaml").read_text())[
            "summary_prompt"
        ]
        rendered = prompt["template"].replace("{text}", text)
        if name == "llama":  # the chat template, as apply_chat_template renders it
            chat = reference.tokenizer.apply_chat_template(
                [{"role": "user", "content": "Summarize the following text.\n\n" + text}],
                tokenize=False,
                add_generation_prompt=True,
            )
            assert rendered == chat
        ids = reference.tokenizer(rendered, add_special_tokens=prompt["add_special_tokens"])
        want = reference.generate(list(ids["input_ids"]), max_new_tokens=8, do_sample=False)
        assert list(reply.token_ids) == want and reply.summary == reference.text(want)


def test_a_long_prompt_never_stalls_running_sequences(causal_repository: Path) -> None:
    """The batch loop, driven directly: while a 100-token prompt goes in, in chunks of at
    most PREFILL tokens, the running sequence gets a token on every call."""
    from service import model_format
    from service.causal.batch import CausalBatch
    from service.causal.graphs import CausalGraphs
    from service.runtime.precision import Route
    from service.seq2seq.batch import Job
    from service.seq2seq.search import Greedy, SearchSettings

    spec = model_format.read(causal_repository / "gpt2").causal
    assert spec is not None
    graphs = CausalGraphs("gpt2", causal_repository / "gpt2", spec, Route("fp32", ("cpu",), ()), 1)
    settings = SearchSettings(0, (10_000,), 60, 1, 1.0, False, 0, 0, None, None)  # no EOS

    def job(prompt: list[int]) -> Job:
        search = Greedy(settings, prompt)
        return Job(np.array(prompt, np.int64), search, None, 0.0, None)  # type: ignore[arg-type]

    batch = CausalBatch(graphs, prefill_tokens=PREFILL)
    running = job([5, 6, 7])
    assert [t for _, t in batch.step([running], []).tokens]  # a short prompt: one call
    long = job(list(np.arange(100) % 40 + 3))
    calls = 0
    joining = [long]
    while True:
        report = batch.step(joining, [])
        joining = []
        calls += 1
        assert report.prefilled <= PREFILL
        assert set(report.copied) <= {"grow"}  # written in place; only doubling moves rows
        if any(j is long for j, _ in report.tokens):
            break
        assert [j for j, _ in report.tokens] == [running]  # a token every call
    assert calls == -(-100 // PREFILL)  # the last chunk's call gives its first token
    assert len(running.search.result()) == calls + 1


def test_bad_requests(stub: pb_grpc.TextInferenceStub) -> None:
    long = " ".join(["kaa"] * 200)  # past the 128-token context window
    cases = {
        "context window": pb.GenerateRequest(prompt=long, model="gpt2"),
        "temperature": pb.GenerateRequest(prompt="kaa", temperature=-1.0),
        "temperature ": pb.GenerateRequest(prompt="kaa", temperature=101.0),
        "temperature  ": pb.GenerateRequest(prompt="kaa", temperature=float("nan")),
        "top_p": pb.GenerateRequest(prompt="kaa", temperature=1.0, top_p=1.5),
        "top_p ": pb.GenerateRequest(prompt="kaa", top_p=0.5),  # no temperature
        "num_beams 1": pb.GenerateRequest(prompt="kaa", temperature=1.0, num_beams=2),
        "max_new_tokens": pb.GenerateRequest(prompt="kaa", max_new_tokens=500),
        "prompt is empty": pb.GenerateRequest(prompt="  "),
        "stop string": pb.GenerateRequest(prompt="kaa", stop=[""]),
        "num_beams must": pb.GenerateRequest(prompt="kaa", num_beams=99),
    }
    for words, request in cases.items():
        with pytest.raises(grpc.RpcError) as info:
            stub.Generate(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, words
        assert words.strip() in (info.value.details() or ""), info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.Embed(pb.EmbedRequest(texts=["kaa"], model="gpt2"), timeout=10)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # the server still serves
    assert stub.Generate(pb.GenerateRequest(prompt="kaa", max_new_tokens=2), timeout=10).text


def test_kserve_v2_generate(causal_server: ServerProcess, stub: pb_grpc.TextInferenceStub) -> None:
    client = grpcclient.InferenceServerClient(url=causal_server.target)
    assert client.is_model_ready("llama.generate") and not client.is_model_ready("llama")
    prompt = grpcclient.InferInput("PROMPT", [2], "BYTES")
    prompt.set_data_from_numpy(np.array([p.encode() for p in PROMPTS[:2]], dtype=object))
    result = client.infer("llama.generate", [prompt], parameters={"max_new_tokens": 5})
    for text, reason, source in zip(
        result.as_numpy("TEXT"), result.as_numpy("FINISH_REASON"), PROMPTS[:2], strict=True
    ):
        v1 = stub.Generate(
            pb.GenerateRequest(prompt=source, model="llama", max_new_tokens=5), timeout=30
        )
        assert (text.decode(), reason.decode()) == (v1.text, v1.finish_reason)


def test_cli_generate(causal_server: ServerProcess, stub: pb_grpc.TextInferenceStub) -> None:
    target = ["--target", causal_server.target, "--model", "llama"]
    done = subprocess.run(
        [sys.executable, "-m", "service", "generate", PROMPTS[0], *target, "--max-new-tokens",
         "6", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    reply = json.loads(done.stdout)
    v1 = stub.Generate(
        pb.GenerateRequest(prompt=PROMPTS[0], model="llama", max_new_tokens=6), timeout=30
    )
    assert reply["text"] == v1.text and reply["finishReason"] == v1.finish_reason
    bad = subprocess.run(
        [sys.executable, "-m", "service", "generate", "kaa", *target, "--temperature", "-2"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr
    assert "temperature" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def draft_tokens(server: ServerProcess, model: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {
        s.labels["outcome"]: s.value
        for f in text_string_to_metric_families(server.scrape())
        if f.name == "attnserve_draft_tokens"
        for s in f.samples
        if s.name.endswith("_total") and s.labels["model"] == model
    }


@pytest.mark.parametrize("name", list(MODELS))
def test_a_request_alone_decodes_speculatively_with_the_same_tokens(
    name: str,
    causal_repository: Path,
    causal_server: ServerProcess,
    stub: pb_grpc.TextInferenceStub,
    references: dict[str, Reference],
) -> None:
    """One request at a time: the int8 variant drafts, the fp32 graph checks; the tokens are
    generate()'s all the same, and drafts were taken. Whether the int8 variant ever disagrees
    with fp32 on these prompts depends on the CPU's kernels (CI saw none turned down on one
    machine), so turned-down drafts are proven in process, with a draft that is always
    wrong. A model whose int8 variant fell below its floor (the tiny Qwen2) drafts by lookups
    alone."""
    reference = references[name]
    manifest = yaml.safe_load((causal_repository / name / "model.yaml").read_text())
    before = draft_tokens(causal_server, name)
    for prompt in PROMPTS:
        request = pb.GenerateRequest(prompt=prompt, model=name, max_new_tokens=3 * NEW)
        reply = stub.Generate(request, timeout=60)
        want = reference.generate(reference.ids(prompt), max_new_tokens=3 * NEW, do_sample=False)
        assert list(reply.token_ids) == want, prompt
    after = draft_tokens(causal_server, name)
    if "int8" not in manifest["variants"]:
        return  # rounds are lookups alone (their share depends on what the prompts repeat)
    assert after["accepted"] > before["accepted"]


def test_speculative_rounds_give_the_plain_tokens_whatever_the_draft(
    causal_repository: Path,
) -> None:
    """The batch loop, driven directly, over long prompts and 40 new tokens: with the
    fp32 graph drafting for itself (every draft taken), with drafts always wrong (none; and
    weighed against plain steps, paused), and with the int8 variant caught up a few tokens a
    call, the tokens are those of plain one-token steps; another request's turn resets the
    draft."""
    from service import model_format
    from service.causal.batch import CausalBatch
    from service.causal.graphs import CausalGraphs
    from service.runtime.precision import Route
    from service.seq2seq.batch import Job
    from service.seq2seq.search import Greedy, SearchSettings
    from service.seq2seq.speculation import Speculator

    folder = causal_repository / "llama"
    manifest = model_format.read(folder)
    fp32, int8 = (manifest.running(p).causal for p in ("fp32", "int8"))
    assert fp32 is not None and int8 is not None
    graphs = CausalGraphs("llama", folder, fp32, Route("fp32", ("cpu",), ()), 1)
    drafter = CausalGraphs("draft", folder, int8, Route("int8", ("cpu",), ()), 1)
    settings = SearchSettings(0, (10_000,), 40, 1, 1.0, False, 0, 0, None, None)  # no EOS
    prompts = [list(np.arange(n) % 37 + 3) for n in (23, 9, 31)]

    def generated(speculator: Speculator | None) -> tuple[list[list[int]], int, int]:
        searches = [Greedy(settings, prompt) for prompt in prompts]
        jobs = [
            Job(np.array(p, np.int64), s, None, 0.0, None)  # type: ignore[arg-type]
            for p, s in zip(prompts, searches, strict=True)
        ]
        drafted, accepted = one_at_a_time(CausalBatch(graphs, PREFILL, speculator), jobs)
        return [search.result() for search in searches], drafted, accepted

    plain, drafted, _ = generated(None)
    assert drafted == 0 and all(len(tokens) == 40 for tokens in plain)
    own, drafted, accepted = generated(Speculator(graphs, 6, weigh=False))
    assert own == plain and accepted == drafted > 40
    wrong, always, accepted = generated(Speculator(Shifted(drafter), 6, weigh=False))
    assert wrong == plain and always > 0 and accepted == 0
    # Weighed against plain steps, rounds that never pay pause: far fewer drafts.
    weighed, drafted, _ = generated(Speculator(Shifted(drafter), 6))
    assert weighed == plain and drafted < always / 2
    # Caught up 5 tokens a call: the prompts take several calls before the first round.
    quantized, drafted, accepted = generated(Speculator(drafter, 6, catch_up=5))
    assert quantized == plain and 0 < accepted <= drafted
    # Lookups (these prompts repeat a run of 37): alone, and before an always-wrong draft.
    looked, drafted, accepted = generated(Speculator(None, 6, weigh=False, lookup=3))
    assert looked == plain and 0 < accepted <= drafted
    both, drafted, accepted = generated(Speculator(Shifted(drafter), 6, weigh=False, lookup=3))
    assert both == plain and 0 < accepted < drafted


def test_lookup_drafts_what_followed_the_latest_tokens_before() -> None:
    from service.seq2seq.speculation import looked_up

    def drafted(context: list[int], count: int = 4) -> list[int]:
        return looked_up(np.array(context, np.int64), 3, count)

    assert drafted([5, 6, 7, 8, 5, 6]) == [7, 8, 5, 6]  # [5, 6] recurs
    assert drafted([1, 2, 9, 1, 2, 8, 1, 2], 2) == [8, 1]  # the latest occurrence
    assert drafted([0, 1, 2, 7, 5, 1, 2, 8, 0, 1, 2]) == [7, 5, 1, 2]  # the longest run first
    assert drafted([4, 1, 4]) == [] and drafted([1, 2, 3]) == [] and drafted([7]) == []
