"""The `attnserve` command: serve, export, and client commands.

Every mistake a user can make on the command line ends in one line on stderr that says what
to fix: exit 2 for usage and configuration errors, 1 when the server answers with an error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any, NoReturn

from service import version
from service.client import USAGE_ERROR
from service.config import (
    DEFAULT_BATCH_TOKENS,
    DEFAULT_PADDING_SLACK,
    ConfigError,
    Settings,
    load_settings,
)

# Defaults that depend on the execution provider a model lands on (the field holds None).
_DEFAULT_TEXT = {
    "max_batch_tokens": ", ".join(f"{p} {v}" for p, v in DEFAULT_BATCH_TOKENS.items()),
    "padding_slack": ", ".join(f"{p} {v}" for p, v in DEFAULT_PADDING_SLACK.items()),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (not the usage block, then the error)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: {message} (see {self.prog} --help)\n")


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, got {text!r}") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 86400 s, got {text}")
    return value


def count_or_default(text: str) -> int:
    """0 (the server's default) to 1000, as the server accepts for max_sentences and top_k."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be 0 (the server's default) to 1000, got {value}")
    return value


def layer_number(text: str) -> int:
    """A layer, counted from 1; 0: the last (the server checks it against the model)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be 0 (the last layer) to 1000, got {value}")
    return value


def _default_text(name: str, default: Any) -> str:
    if name in _DEFAULT_TEXT:
        return _DEFAULT_TEXT[name]
    if default is None:
        return "unset"
    if isinstance(default, list):
        return ",".join(default)
    return str(default)


def _serve_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="serve every model in the repository over gRPC")
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        env = f"ATTNSERVE_{name.upper()}"
        options: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,  # unset flags fall through to ATTNSERVE_* and defaults
        }
        if field.annotation is bool:
            options.update(action="store_const", const=True, help=f"{field.description} ({env})")
        else:
            options.update(
                metavar=name.split("_")[-1].upper(),
                help=f"{field.description} (default: {_default_text(name, default)}; {env})",
            )
        serve.add_argument("--" + name.replace("_", "-"), **options)


def _client_parsers(sub: Any) -> None:
    # Where and how to connect: every client command.
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--target", default="localhost:50051", help="server host:port (default: %(default)s)"
    )
    connection.add_argument("--tls-ca", help="PEM CA to verify the server (turns TLS on)")
    connection.add_argument("--tls-cert", help="PEM client certificate (mutual TLS)")
    connection.add_argument("--tls-key", help="PEM client key (mutual TLS)")
    connection.add_argument(
        "--token",
        default=os.environ.get("ATTNSERVE_TOKEN"),
        help="bearer token (env ATTNSERVE_TOKEN); needs TLS unless --allow-insecure-token",
    )
    connection.add_argument(
        "--allow-insecure-token",
        action="store_true",
        help="send --token over plaintext (only where a sidecar terminates TLS)",
    )
    # One call and its reply: every command but loadtest (which has its own deadline).
    one_call = argparse.ArgumentParser(add_help=False, parents=[connection])
    one_call.add_argument(
        "--timeout",
        type=positive_seconds,
        default=60.0,
        help="deadline for the call, in seconds (default: %(default)s)",
    )
    one_call.add_argument("--json", action="store_true", help="print the reply as JSON")
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", default="", help="model name (default: the server's)")
    with_model = [one_call, model]
    # What the model attended to: answer, summarize and embed.
    explain = argparse.ArgumentParser(add_help=False)
    explain.add_argument(
        "--explain",
        action="store_true",
        help="also show which tokens of the text the model attended to",
    )
    explain.add_argument(
        "--explain-method",
        choices=["rollout", "attention"],
        default="",
        help="rollout (the server's default): attention through all layers; attention: one "
        "layer's (implies --explain)",
    )
    explain.add_argument(
        "--explain-layer",
        type=layer_number,
        metavar="N",
        help="with --explain-method attention: the layer, from 1; 0: the last (implies "
        "--explain-method attention)",
    )
    explain.add_argument(
        "--html",
        metavar="FILE",
        help="also write the explanations as a self-contained HTML page (implies --explain)",
    )
    explained = [*with_model, explain]

    p = sub.add_parser("summarize", parents=explained, help="summarize a UTF-8 text file")
    p.add_argument("file", help="the text file (- = stdin)")
    p.add_argument(
        "--max-sentences",
        type=count_or_default,
        default=0,
        help="sentences in the summary (default: 0, the server's default of 3)",
    )
    p = sub.add_parser("answer", parents=explained, help="answer a question from a context")
    p.add_argument("--context", required=True, help="UTF-8 file holding the context (- = stdin)")
    p.add_argument(
        "--top-k",
        type=count_or_default,
        default=0,
        help="answers to return, best first (default: 0, the server's default of 1)",
    )
    p.add_argument("question")
    p = sub.add_parser("embed", parents=explained, help="embed one or more texts")
    p.add_argument("texts", nargs="+")
    p.add_argument("--raw", action="store_true", help="do not L2-normalise")
    p = sub.add_parser("generate", parents=with_model, help="generate text from a prompt")
    p.add_argument("prompt")
    p.add_argument("--max-new-tokens", type=int, default=0, help="0: the model's default")
    p.add_argument("--num-beams", type=int, default=0, help="0: the model's default")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy; above: sampling")
    p.add_argument("--top-p", type=float, default=0.0, help="nucleus sampling (0: off)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (0: a fresh one)")
    p.add_argument("--stop", action="append", default=[], help="a stop string (repeatable)")
    sub.add_parser("models", parents=[one_call], help="list the server's models")
    p = sub.add_parser("health", parents=[one_call], help="gRPC health check (exit 0 if SERVING)")
    p.add_argument(
        "--service",
        default="",
        help="a gRPC service name, e.g. attnserve.v1.TextInference (default: '', the server)",
    )
    p = sub.add_parser(
        "loadtest", parents=[connection, model], help="closed/open-loop load, rate sweeps"
    )
    from service.loadtest.cli import add_arguments

    add_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="attnserve", description=__doc__)
    parser.add_argument("--version", action="version", version=f"attnserve {version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    sub.add_parser("export", help="export a Hugging Face folder (attnserve export --help)")
    _client_parsers(sub)
    return parser


def _serve(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        settings = load_settings(**flags)
    except ConfigError as exc:
        print(f"attnserve: {exc}", file=sys.stderr)
        return USAGE_ERROR
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from service.server import serve

    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:  # found at start: a port in use, an unknown default model
        print(f"attnserve: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["export"]:
        # The exporter imports torch; load it only when asked (the server never does).
        from export.cli import main as export_main

        return export_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "loadtest":
        from service.loadtest.cli import run

        return run(args)
    from service.client import run_client

    return run_client(args)


if __name__ == "__main__":
    raise SystemExit(main())
