"""Which variant runs where: the choice per machine (detection faked), forced precisions and
their one-line refusals, the engine's fallback check, the row split, and a real server
running each variant the default model holds."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton

from service.api.protos.attnserve.v1 import attnserve_pb2 as pb
from service.api.protos.attnserve.v1 import attnserve_pb2_grpc as pb_grpc
from service.config import load_settings
from service.model_format import Manifest, VariantSpec
from service.runtime.engine import Engine, EngineError, run_bound, session_options
from service.runtime.machine import Machine, cpu_flags, detect
from service.runtime.precision import PrecisionError, Route, choose
from service.runtime.split import split_run
from tests.server_process import ROOT, ServerProcess, require_default_model

AVX2 = frozenset({"avx2", "fma"})
ZEN4 = AVX2 | {"avx512f", "avx512_bf16", "avx512_vnni"}
CPU_ONLY = Machine(AVX2, frozenset({"cpu"}))
BF16_CPU = Machine(ZEN4, frozenset({"openvino", "cpu"}))
BF16_WITHOUT_OPENVINO = Machine(ZEN4, frozenset({"cpu"}))
GPU = Machine(AVX2, frozenset({"tensorrt", "cuda", "cpu"}))
ALL = ("fp32", "bf16", "fp16", "int8")


def manifest(held: tuple[str, ...] = ALL, preferred: str = "fp32") -> Manifest:
    """The default model's manifest holding the variants `held`."""
    real = Manifest.read(require_default_model())
    files = {"fp32": "model.onnx", "bf16": "model.onnx"}
    variants = {
        p: VariantSpec(p, files.get(p, f"model.{p}.onnx"), 8 if p == "int8" else 0) for p in held
    }
    skipped = {p: "below its floor: min cosine 0.98" for p in ALL if p not in held}
    return replace(real, precision=preferred, variants=variants, skipped_variants=skipped)


def routes(machine: Machine, held: tuple[str, ...] = ALL, **flags: object) -> list[Route]:
    return choose(
        manifest(held, str(flags.pop("preferred", "fp32"))), machine, load_settings(**flags)
    )


def test_auto_on_a_cpu_without_bf16_units_runs_fp32_and_says_why_not_the_others() -> None:
    chosen = routes(CPU_ONLY)
    assert [r.precision for r in chosen] == ["fp32"]
    assert chosen[0].providers == ("cpu",)
    assert "fp16 passed over: no CUDA" in chosen[0].reason
    assert "bf16 passed over: this CPU has no bf16 units" in chosen[0].reason


def test_auto_on_a_cpu_with_bf16_units_runs_bf16_through_openvino_then_fp32() -> None:
    chosen = routes(BF16_CPU)
    assert [r.precision for r in chosen] == ["bf16", "fp32"]
    bf16 = chosen[0]
    assert bf16.providers == ("openvino",) and bf16.fast_on == ("openvino",)
    # fp32 never goes through OpenVINO: it is no faster there than the CPU provider.
    assert chosen[1].providers == ("cpu",)


def test_auto_without_the_openvino_build_passes_bf16_over() -> None:
    chosen = routes(BF16_WITHOUT_OPENVINO)
    assert [r.precision for r in chosen] == ["fp32"]
    assert "openvino package is not installed" in chosen[0].reason


def test_auto_on_a_gpu_runs_fp16_on_tensorrt_with_an_engine_cache(tmp_path: Path) -> None:
    chosen = routes(GPU, trt_cache_dir=tmp_path)
    assert [r.precision for r in chosen] == ["fp16", "fp32"]
    fp16 = chosen[0]
    assert fp16.providers == ("tensorrt", "cuda", "cpu")
    assert fp16.fast_on == ("tensorrt", "cuda")  # a session that fell back to CPU moves on
    trt = fp16.options["tensorrt"]
    assert trt["trt_fp16_enable"] == "True" and trt["trt_engine_cache_enable"] == "True"
    assert trt["trt_engine_cache_path"] == str(tmp_path / "minilm" / "fp16")
    assert trt["trt_profile_max_shapes"].startswith("input_ids:64x256")
    assert chosen[1].options["tensorrt"]["trt_fp16_enable"] == "False"


def test_providers_flag_keeps_a_gpu_machine_on_the_cpu() -> None:
    chosen = routes(GPU, providers="cpu")
    assert [(r.precision, r.providers) for r in chosen] == [("fp32", ("cpu",))]


def test_a_folder_exported_with_int8_runs_int8_under_auto() -> None:
    chosen = routes(CPU_ONLY, preferred="int8")
    assert [r.precision for r in chosen] == ["int8", "fp32"]
    assert "exported with --int8" in chosen[0].reason


def test_auto_never_picks_int8_for_a_folder_that_prefers_fp32() -> None:
    assert "int8" not in [r.precision for m in (CPU_ONLY, BF16_CPU, GPU) for r in routes(m)]


def test_forced_precisions() -> None:
    assert [r.precision for r in routes(CPU_ONLY, precision="int8")] == ["int8"]
    fp16 = routes(CPU_ONLY, precision="fp16")
    assert fp16[0].providers == ("cpu",) and "no faster than fp32" in fp16[0].reason
    assert routes(BF16_CPU, precision="bf16")[0].providers == ("openvino",)


@pytest.mark.parametrize(
    ("machine", "flags", "held", "expected"),
    [
        (CPU_ONLY, {"precision": "bf16"}, ALL, "this CPU has no bf16 units"),
        (BF16_WITHOUT_OPENVINO, {"precision": "bf16"}, ALL, "openvino package is not installed"),
        (BF16_CPU, {"precision": "bf16", "providers": "cpu"}, ALL, "leaves out openvino"),
        (CPU_ONLY, {"precision": "int8", "providers": "cuda"}, ALL, "leaves out cpu"),
        (CPU_ONLY, {"precision": "int8"}, ("fp32",), "has no int8 variant (below its floor"),
    ],
)
def test_an_impossible_precision_is_refused(
    machine: Machine, flags: dict[str, str], held: tuple[str, ...], expected: str
) -> None:
    with pytest.raises(PrecisionError) as raised:
        routes(machine, held, **flags)
    message = str(raised.value)
    assert expected in message and "minilm" in message and "\n" not in message


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16 amx_bf16\n\n")
    assert Machine(cpu_flags(cpuinfo), frozenset()).bf16_units
    assert cpu_flags(tmp_path / "absent") == frozenset()
    machine = detect()
    assert "cpu" in machine.providers and machine.bf16_units == bool(
        {"avx512_bf16", "amx_bf16"} & machine.cpu_flags
    )


def test_the_engine_refuses_a_route_whose_session_fell_back() -> None:
    graph = require_default_model() / "model.onnx"
    # What onnxruntime-gpu does without its libraries: the session runs, on the CPU.
    route = Route("fp16", ("cpu",), fast_on=("cuda", "tensorrt"))
    with pytest.raises(EngineError, match="fell back to cpu"):
        Engine("m", graph, route, 1, lambda provider: 1)


def test_openvino_runs_the_fused_graph_and_refuses_a_bf16_it_cannot_compile() -> None:
    graph = require_default_model() / "model.onnx"
    ids = np.array([[101, 7592, 2088, 1010, 2088, 102]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    feeds["token_type_ids"] = np.zeros_like(ids)
    route = Route("fp32", ("openvino",), fast_on=("openvino",))
    engine = Engine("m", graph, route, 2, lambda provider: 1)
    assert engine.provider == "openvino" and engine.precision == "fp32"
    cpu = Engine("m", graph, Route("fp32", ("cpu",), ()), 2, lambda provider: 1)
    np.testing.assert_allclose(engine.run(feeds)[0], cpu.run(feeds)[0], atol=1e-4)

    # KServe's metadata of the bare graph reads names, types and ranks from either runtime.
    def described(e: Engine) -> list[tuple[str, str, int]]:
        return [(o.name, o.type, len(o.shape)) for o in e.outputs()]

    assert described(engine) == described(cpu) == [("last_hidden_state", "tensor(float)", 3)]
    bf16 = Route("bf16", ("openvino",), fast_on=("openvino",))
    if detect().bf16_units:
        assert Engine("m", graph, bf16, 2, lambda provider: 1).precision == "bf16"
    else:  # OpenVINO takes the hint and compiles f32: the engine says no
        with pytest.raises(EngineError, match="OpenVINO compiled f32 where bf16 was asked for"):
            Engine("m", graph, bf16, 2, lambda provider: 1)


def test_a_tokenizer_past_the_embedding_table_is_refused_on_either_runtime(
    tmp_path: Path,
) -> None:
    # OpenVINO's Gather returns zeros for an id past its table where onnxruntime's raises:
    # on OpenVINO the table's rows are read from the graph instead of from a failing run.
    from tokenizers import Tokenizer, models, pre_tokenizers

    from service.tasks.loading import ModelLoadError, _check_vocabulary
    from service.tasks.tokenizer import TextTokenizer

    folder = require_default_model()
    graph = folder / "model.onnx"
    openvino = Engine("m", graph, Route("fp32", ("openvino",), ("openvino",)), 1, lambda p: 1)
    cpu = Engine("m", graph, Route("fp32", ("cpu",), ()), 1, lambda provider: 1)
    assert openvino.vocab_rows() == 30_522 and cpu.vocab_rows() is None
    vocab = {f"w{i}": i for i in range(50_000)} | {"[UNK]": 50_000}
    foreign = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    foreign.pre_tokenizer = pre_tokenizers.Whitespace()
    foreign.save(str(tmp_path / "tokenizer.json"))
    own = TextTokenizer(folder / "tokenizer.json", 32)
    for engine in (openvino, cpu):
        _check_vocabulary(engine, own)
        with pytest.raises(ModelLoadError, match=r"does not fit the model \(vocabulary of 50001\)"):
            _check_vocabulary(engine, TextTokenizer(tmp_path / "tokenizer.json", 32))


def test_io_binding_gives_what_a_plain_run_gives() -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(require_default_model() / "model.onnx"), session_options(1), ["CPUExecutionProvider"]
    )
    ids = np.array([[101, 7592, 2088, 102, 0]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64)}
    feeds["token_type_ids"] = np.zeros_like(ids)
    names = [o.name for o in session.get_outputs()]
    bound = run_bound(session, feeds, names, "cpu")
    np.testing.assert_array_equal(bound[0], session.run(names, feeds)[0])


def test_split_run_sends_short_rows_to_one_graph_and_keeps_row_order() -> None:
    mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=np.int64)
    feeds = {"input_ids": mask * 7, "attention_mask": mask}
    seen: dict[str, tuple[int, ...]] = {}

    def graph(tag: str, value: float):  # type: ignore[no-untyped-def]
        def run(f: Mapping[str, np.ndarray]) -> list[np.ndarray]:
            seen[tag] = f["attention_mask"].shape
            return [np.full((*f["attention_mask"].shape, 2), value, dtype=np.float32)]

        return run

    (out,) = split_run(feeds, 3, graph("short", 1.0), graph("long", 2.0))
    assert seen == {"short": (2, 3), "long": (1, 5)}  # each part trimmed to its longest
    assert out.shape == (3, 5, 2)
    assert out[0, :3].min() == 1.0 and out[2, :3].min() == 1.0 and out[1].min() == 2.0
    assert out[0, 3:].max() == 0.0  # padding beyond a part's width is zero
    (alone,) = split_run(feeds, 0, graph("short", 1.0), graph("long", 2.0))
    assert alone.shape == (3, 5, 2) and alone.min() == 2.0


# --- a real server on each variant of the default model ----------------------------------


def model_info(target: str) -> pb.ModelInfo:
    with grpc.insecure_channel(target) as channel:
        reply = pb_grpc.TextInferenceStub(channel).ListModels(pb.ListModelsRequest())
    return next(m for m in reply.models if m.name == "minilm")


def embed(target: str, texts: list[str]) -> np.ndarray:
    with grpc.insecure_channel(target) as channel:
        reply = pb_grpc.TextInferenceStub(channel).Embed(pb.EmbedRequest(texts=texts))
    return np.array([list(e.values) for e in reply.embeddings])


SHORT = "OK."  # 4 tokens: the int8 variant runs it on the fp32 graph
LONG = "Attention layers let every token look at every other token in the same sequence."


@pytest.fixture(scope="module")
def held() -> dict[str, VariantSpec]:
    return Manifest.read(require_default_model()).variants


def test_the_default_model_holds_fp32_fp16_and_int8(held: dict[str, VariantSpec]) -> None:
    assert {"fp32", "fp16", "int8"} <= set(held)
    assert held["fp32"].file == "model.onnx" and held["int8"].fp32_rows_up_to > 0


def test_each_forced_precision_runs_and_says_so(tmp_path: Path) -> None:
    repository = tmp_path / "models"
    repository.mkdir()
    (repository / "minilm").symlink_to(require_default_model())
    vectors = {}
    for precision in ("fp32", "fp16", "int8"):
        with ServerProcess(repository, "--precision", precision) as server:
            info = model_info(server.target)
            assert info.precision == precision and info.providers[0] == "cpu"
            assert f"model minilm runs {precision}: forced by --precision" in server.log()
            # KServe's ModelConfig (as tritonclient reads it) says the same.
            client = triton.InferenceServerClient(server.target)
            parameters = client.get_model_config("minilm.embed").config.parameters
            assert parameters["precision"].string_value == precision
            assert parameters["providers"].string_value.split(",")[0] == "cpu"
            vectors[precision] = embed(server.target, [SHORT, LONG])
    # Rows of a few tokens run on the fp32 graph under int8: bit for bit fp32's.
    np.testing.assert_allclose(vectors["int8"][0], vectors["fp32"][0], atol=1e-6)
    for precision, floor in (("fp16", 0.9999), ("int8", 0.99)):
        cosine = (vectors[precision] * vectors["fp32"]).sum(axis=1)
        assert cosine.min() >= floor, (precision, cosine)


def test_auto_runs_what_this_machine_supports(tmp_path: Path) -> None:
    repository = tmp_path / "models"
    repository.mkdir()
    (repository / "minilm").symlink_to(require_default_model())
    machine = detect()
    expected = "bf16" if machine.bf16_units and "openvino" in machine.providers else "fp32"
    with ServerProcess(repository) as server:
        assert model_info(server.target).precision == expected
        assert f"model minilm runs {expected}: auto:" in server.log()


def serve_refused(*flags: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--grpc-port", "0", "--metrics-port", "0",
         "--http-port", "0", *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("attnserve: "), result.stderr
    return lines[0]


def test_an_impossible_precision_stops_the_server_in_one_line() -> None:
    if not detect().bf16_units:
        line = serve_refused("--precision", "bf16")
        assert "--precision bf16" in line and "bf16 units" in line
    line = serve_refused("--precision", "fp8")
    assert "--precision / ATTNSERVE_PRECISION" in line and "'fp8'" in line


def test_gpu_check_without_a_gpu_says_so_and_fails(tmp_path: Path) -> None:
    if detect().gpu:
        pytest.skip("a GPU provider is here: make gpu-check runs for real")
    out = tmp_path / "gpu.md"
    result = subprocess.run(
        [sys.executable, "-m", "scripts.gpu_check", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    text = out.read_text()
    assert "**Not run on a GPU yet.**" in text and "onnxruntime: " in text
