"""Which of a model's variants runs, on which providers: one rule per precision.

A model folder holds several variants of its graph (model.yaml `variants`: fp32, the parity
reference, and each of bf16, fp16, int8 that held its floor at export). `--precision auto`
takes, per model, the first variant of AUTO_ORDER that the folder holds and this machine
runs fast; a forced precision takes that variant or stops the server with one line.

Auto never trades away more than fp32 rounding (cosine 0.9999): int8 (floor 0.99) runs when
forced, or when the folder was exported with `--int8` (its `precision` says int8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from service.config import ConfigError, Settings
from service.model_format import Manifest
from service.runtime.machine import Machine

# Fastest first, among the variants held to fp32's 0.9999.
AUTO_ORDER = ("fp16", "bf16", "fp32")
GPU_PROVIDERS = ("tensorrt", "cuda")


class PrecisionError(ConfigError):
    """A forced --precision that a model or this machine cannot run."""


@dataclass(frozen=True)
class Route:
    """How one variant runs: the providers onnxruntime is given, in order, with their
    options; `fast_on`: the providers that, when a session really runs on one, make this
    route worth taking (anything else is a silent fallback); `reason`: for the log line."""

    precision: str
    providers: tuple[str, ...]
    fast_on: tuple[str, ...]
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    reason: str = ""


Check = Callable[[Machine, Sequence[str]], "str | None"]


@dataclass(frozen=True)
class Rule:
    """What a precision needs: the providers that run it, fastest first; `unable` says why
    this machine cannot run it at all, `slow` why it would be no faster than fp32 here
    (None: it can, it is); `fast_on`: the providers a session must really run on for auto
    to keep it (empty: any)."""

    providers: tuple[str, ...]
    unable: Check
    slow: Check
    fast_on: tuple[str, ...] = ()


def _usable(rule: Rule, machine: Machine, allowed: Sequence[str]) -> tuple[str, ...]:
    """The rule's providers that --providers allows and onnxruntime lists, in --providers
    order."""
    return tuple(p for p in allowed if p in rule.providers and p in machine.providers)


def _nothing_stops_it(machine: Machine, allowed: Sequence[str]) -> str | None:
    return None


def _cpu_left_out(machine: Machine, allowed: Sequence[str]) -> str | None:
    return None if "cpu" in allowed else "--providers leaves out cpu, which runs it"


def _no_gpu(machine: Machine, allowed: Sequence[str]) -> str | None:
    if any(p in allowed and p in machine.providers for p in GPU_PROVIDERS):
        return None
    return "no CUDA or TensorRT provider here, and on the CPU provider fp16 is no faster than fp32"


def _no_bf16(machine: Machine, allowed: Sequence[str]) -> str | None:
    # Without bf16 units OpenVINO compiles fp32 under a bf16 hint: never call that bf16.
    if not machine.bf16_units:
        return "this CPU has no bf16 units (neither avx512_bf16 nor amx_bf16 in its flags)"
    if "openvino" not in allowed:
        return "--providers leaves out openvino, which runs bf16 on CPUs"
    if "openvino" not in machine.providers:
        return (
            "the openvino package is not installed (make install adds it on CPUs with bf16 units)"
        )
    return None


RULES: dict[str, Rule] = {
    # OpenVINO runs fp32 no faster than the CPU provider (docs/precision.md): not for fp32.
    "fp32": Rule(("tensorrt", "cuda", "cpu"), unable=_nothing_stops_it, slow=_nothing_stops_it),
    # The CPU provider has fp16 kernels for every fused op: fp16 runs there (the export's
    # parity check does), only not faster.
    "fp16": Rule(
        ("tensorrt", "cuda", "cpu"), unable=_nothing_stops_it, slow=_no_gpu, fast_on=GPU_PROVIDERS
    ),
    "bf16": Rule(("openvino",), unable=_no_bf16, slow=_no_bf16, fast_on=("openvino",)),
    # Dynamic int8 (MatMulInteger, DynamicQuantizeLinear) is a CPU provider recipe.
    "int8": Rule(("cpu",), unable=_cpu_left_out, slow=_nothing_stops_it, fast_on=("cpu",)),
}


def choose(manifest: Manifest, machine: Machine, settings: Settings) -> list[Route]:
    """The routes to try for this model, in order: the first whose session really runs on
    one of its `fast_on` providers serves. PrecisionError for a forced precision the model
    does not hold or this machine cannot run."""
    wanted, allowed, held = settings.precision, settings.providers, manifest.variants
    if wanted != "auto":
        rule = RULES[wanted]
        why = _why_not(rule, machine, allowed, fast=False)
        if why:
            raise PrecisionError(f"--precision {wanted} for model {manifest.name!r}: {why}")
        if wanted not in held:
            missing = manifest.skipped_variants.get(wanted, "its export did not make one")
            raise PrecisionError(
                f"--precision {wanted}: model {manifest.name!r} has no {wanted} variant "
                f"({missing}; it has {', '.join(held)})"
            )
        slow = rule.slow(machine, allowed)
        reason = "forced by --precision" + (f"; note: {slow}" if slow else "")
        return [_route(wanted, manifest, machine, settings, reason, forced=True)]

    order = (["int8"] if manifest.precision == "int8" else []) + list(AUTO_ORDER)
    routes, passed = [], []
    for precision in (p for p in order if p in held):
        why = _why_not(RULES[precision], machine, allowed, fast=True)
        if why:
            passed.append(f"{precision} passed over: {why}")
            continue
        if precision == "int8":
            reason = "the folder was exported with --int8"
        elif passed or len(held) > 1:
            reason = "the fastest variant held to cosine 0.9999 of fp32 that runs here"
        else:
            reason = "the only variant the folder holds"
        reason = "; ".join([f"auto: {reason}", *passed])
        routes.append(_route(precision, manifest, machine, settings, reason))
    if not routes:
        raise PrecisionError(
            f"model {manifest.name!r}: none of its variants ({', '.join(held)}) runs here: "
            + "; ".join(passed)
        )
    return routes


def _why_not(rule: Rule, machine: Machine, allowed: Sequence[str], *, fast: bool) -> str | None:
    """Why this machine cannot run the rule's precision (`fast`: or would gain nothing)."""
    why = rule.unable(machine, allowed) or (rule.slow(machine, allowed) if fast else None)
    if why is None and not _usable(rule, machine, allowed):
        why = (
            f"none of its providers ({', '.join(rule.providers)}) is both allowed by "
            "--providers and available here"
        )
    return why


def _route(
    precision: str,
    manifest: Manifest,
    machine: Machine,
    settings: Settings,
    reason: str,
    forced: bool = False,
) -> Route:
    rule = RULES[precision]
    providers = _usable(rule, machine, settings.providers)
    options: dict[str, dict[str, str]] = {}
    if "tensorrt" in providers:
        options["tensorrt"] = tensorrt_options(
            manifest, precision, settings.trt_cache_dir, settings.max_batch_size
        )
    if "cuda" in providers:
        options["cuda"] = {"device_id": "0"}
    # Forced, whatever really runs is what was asked for; auto moves on from a fallback.
    fast_on = providers if forced or not rule.fast_on else rule.fast_on
    return Route(precision, providers, fast_on, options, reason)


def tensorrt_options(
    manifest: Manifest, precision: str, trt_cache: Path, rows: int
) -> dict[str, str]:
    """TensorRT builds an engine per shape profile, minutes for a large model: cache engines
    (and timings) on disk, and give one profile from a single short row to the longest
    batch, so that no request shape triggers a rebuild."""
    cache = trt_cache / manifest.name / precision
    length = manifest.max_sequence_length

    def shapes(batch: int, sequence: int) -> str:
        return ",".join(f"{name}:{batch}x{sequence}" for name in manifest.inputs)

    return {
        "trt_fp16_enable": "True" if precision == "fp16" else "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
        "trt_profile_min_shapes": shapes(1, 1),
        "trt_profile_opt_shapes": shapes(8, min(128, length)),
        "trt_profile_max_shapes": shapes(rows, length),
    }
