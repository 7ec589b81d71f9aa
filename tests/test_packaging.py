"""Boundaries that keep the product honest: no torch on the serving path, proto in sync,
configuration errors named in one line."""

from __future__ import annotations

import subprocess
import sys

from tests.server_process import ROOT


def test_serving_path_never_imports_torch_or_transformers() -> None:
    code = (
        "import pkgutil, importlib, sys, service\n"
        "for m in pkgutil.walk_packages(service.__path__, 'service.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in {'torch', 'transformers'})\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_generated_grpc_code_matches_proto() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--check"], cwd=ROOT, capture_output=True
    )
    assert result.returncode == 0, result.stderr


def test_bad_configuration_stops_with_one_line_naming_it() -> None:
    env_cases = [
        (["--grpc-port", "70000"], "--grpc-port"),
        (["--providers", "cuda,gpu9"], "--providers"),
        (["--max-batch-tokens", "zero"], "--max-batch-tokens"),
    ]
    for flags, named in env_cases:
        result = subprocess.run(
            [sys.executable, "-m", "service", "serve", *flags],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and named in lines[0], result.stderr


def test_environment_variable_is_validated_too() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"ATTNSERVE_MAX_QUEUE_DELAY_MS": "-1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2 and "ATTNSERVE_MAX_QUEUE_DELAY_MS" in result.stderr
