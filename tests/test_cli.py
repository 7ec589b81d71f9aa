"""The client commands as a user runs them: every mistake is one line with the right exit code.

Exit 2: something to fix on the command line (a flag, a file). Exit 1: the server said no.
"""

from __future__ import annotations

import codecs
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server_process import ROOT, ServerProcess

ARTICLE = ROOT / "docs" / "examples" / "article.txt"


def attnserve(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ATTNSERVE_")}
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, input=stdin,
    )  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("texts")
    text = ARTICLE.read_text(encoding="utf-8")
    (folder / "latin1.txt").write_bytes("Café au lait, s'il vous plaît.".encode("latin-1"))
    (folder / "utf16-no-bom.txt").write_bytes(text.encode("utf-16-le"))
    (folder / "utf16.txt").write_bytes(text.encode("utf-16"))  # with its byte-order mark
    (folder / "bom.txt").write_bytes(codecs.BOM_UTF8 + text.encode())
    (folder / "a-directory").mkdir()
    return folder


@pytest.mark.parametrize(
    "name, says",
    [
        ("latin1.txt", "is not UTF-8 text (invalid byte 0xe9 at offset 3)"),
        ("utf16-no-bom.txt", "NUL bytes"),
        ("missing.txt", "no such file"),
        ("a-directory", "is a directory"),
    ],
)
def test_a_file_that_is_not_utf8_text_is_one_line(files: Path, name: str, says: str) -> None:
    path = str(files / name)
    # No server is running at the target: the file is checked before any call is made.
    for args in (["summarize", path], ["answer", "--context", path, "Who?"]):
        line = one_line(attnserve(*args, "--target", "127.0.0.1:9"), 2)
        assert line.startswith(f"attnserve {args[0]}: ") and says in line


def test_a_bom_is_dropped_and_utf16_with_a_bom_is_read(server: ServerProcess, files: Path) -> None:
    replies = []
    for name in ("bom.txt", "utf16.txt"):
        result = attnserve("summarize", str(files / name), "--target", server.target, "--json")
        assert result.returncode == 0, result.stderr
        replies.append(json.loads(result.stdout))
    plain = attnserve("summarize", "-", "--target", server.target, "--json",
                      stdin=ARTICLE.read_text(encoding="utf-8"))  # fmt: skip
    assert replies[0] == replies[1] == json.loads(plain.stdout)
    text = ARTICLE.read_text(encoding="utf-8")
    for span in replies[0]["sentences"]:  # offsets count the text's characters, not the BOM
        assert text[span.get("start", 0) : span["end"]] == span["text"]


@pytest.mark.parametrize(
    "args, says",
    [
        (["summarize", "x.txt", "--max-sentences", "-1"], "--max-sentences: must be 0"),
        (["answer", "--context", "x.txt", "q", "--top-k", "-3"], "--top-k: must be 0"),
        (["answer", "--context", "x.txt", "q", "--top-k", "1001"], "to 1000, got 1001"),
        (["embed", "x", "--timeout", "0"], "--timeout: must be more than 0"),
        (["embed", "x", "--timeout", "-1"], "--timeout: must be more than 0"),
        (["embed", "x", "--timeout", "soon"], "must be a number of seconds"),
        (["models", "--model", "x"], "unrecognized arguments: --model"),
        (["health", "--model", "x"], "unrecognized arguments: --model"),
        (["embed", "x", "--token", "t"], "--token needs TLS"),
        (["embed", "x", "--tls-ca", "/nonexistent/ca.pem"], "--tls-ca /nonexistent/ca.pem"),
        (["loadtest", "--token", "t", "--duration", "1"], "--token needs TLS"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    assert says in one_line(attnserve(*args, "--target", "127.0.0.1:9"), 2)


def test_a_deadline_that_passes_says_it_was_the_clients(server: ServerProcess) -> None:
    line = one_line(attnserve("embed", "x", "--timeout", "0.0001", "--target", server.target), 1)
    assert line.startswith("DEADLINE_EXCEEDED: ")
    assert "--timeout 0.0001 s" in line and "client's deadline" in line


def test_no_server_at_the_target_says_so() -> None:
    line = one_line(attnserve("health", "--target", "127.0.0.1:9"), 1)
    assert line.startswith("UNAVAILABLE: ") and "is attnserve running at --target" in line


def test_health_of_an_unknown_service_names_the_services(server: ServerProcess) -> None:
    line = one_line(attnserve("health", "--service", "minilm", "--target", server.target), 1)
    assert line.startswith("NOT_FOUND: ") and "'minilm'" in line
    assert "attnserve.v1.TextInference" in line
    assert attnserve("health", "--service", "attnserve.v1.TextInference",
                     "--target", server.target).stdout == "SERVING\n"  # fmt: skip


def test_plain_embed_output_says_which_texts_were_truncated(server: ServerProcess) -> None:
    long = " ".join(["attention"] * 400)  # past the 256-token window
    result = attnserve("embed", "short", long, "--target", server.target)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "truncated" not in lines[1] and "(truncated" in lines[2]
    assert "1 of 2 text(s) were longer than the model's window" in lines[3]


def help_of(command: str) -> str:
    return " ".join(attnserve(command, "--help").stdout.split())  # argparse wraps lines


def test_help_shows_defaults_and_what_zero_means() -> None:
    embed = help_of("embed")
    assert "(default: localhost:50051)" in embed and "(default: 60.0)" in embed
    assert "(default: 0, the server's default of 3)" in help_of("summarize")
    assert "(default: 0, the server's default of 1)" in help_of("answer")
    serve = help_of("serve")
    assert "(default None" not in serve and "per provider" not in serve
    budgets = "cpu 512, openvino 512, cuda 16384, tensorrt 16384"
    assert f"(default: {budgets}; ATTNSERVE_MAX_BATCH_TOKENS)" in serve
    assert "(default: unset; ATTNSERVE_AUTH_TOKEN)" in serve


def test_version() -> None:
    result = attnserve("--version")
    assert result.returncode == 0 and result.stdout.startswith("attnserve 0.")


def test_a_request_larger_than_the_whole_queue_is_not_told_to_retry(repository: Path) -> None:
    proc = ServerProcess(repository, "--max-queued-tokens", "16")
    try:
        proc.wait_serving()
        line = one_line(attnserve("summarize", str(ARTICLE), "--target", proc.target), 1)
        assert line.startswith("INVALID_ARGUMENT: this request is ")
        assert "more than model minilm's whole queue holds (16 tokens" in line
        assert "--max-queued-tokens" in line and "retry later" not in line
        small = attnserve("embed", "Hi.", "--target", proc.target)  # 3 tokens: still served
        assert small.returncode == 0, small.stderr
        metrics = proc.scrape()
        assert 'code="INVALID_ARGUMENT",model="minilm",protocol="grpc",task="summarize"' in metrics
    finally:
        proc.stop()
