"""The `attnserve` command: serve, export, and client commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from service.config import ConfigError, Settings, load_settings


def _serve_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="serve every model in the repository over gRPC")
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, list):
            default = ",".join(default)
        serve.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=argparse.SUPPRESS,  # unset flags fall through to ATTNSERVE_* and defaults
            metavar=name.split("_")[-1].upper(),
            help=f"{field.description} (default {default}; env ATTNSERVE_{name.upper()})",
        )


def _client_parsers(sub: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--target", default="localhost:50051", help="server host:port")
    common.add_argument("--model", default="", help="model name (default: the server's)")
    common.add_argument("--timeout", type=float, default=60.0, help="deadline in seconds")
    common.add_argument("--json", action="store_true", help="print the reply as JSON")
    common.add_argument("--tls-ca", help="PEM CA to verify the server (turns TLS on)")
    common.add_argument("--tls-cert", help="PEM client certificate (mutual TLS)")
    common.add_argument("--tls-key", help="PEM client key (mutual TLS)")
    common.add_argument(
        "--token",
        default=os.environ.get("ATTNSERVE_TOKEN"),
        help="bearer token (env ATTNSERVE_TOKEN)",
    )
    p = sub.add_parser("summarize", parents=[common], help="summarize a text file (- = stdin)")
    p.add_argument("file")
    p.add_argument("--max-sentences", type=int, default=0)
    p = sub.add_parser("answer", parents=[common], help="answer a question from a context")
    p.add_argument("--context", required=True, help="file holding the context (- = stdin)")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("question")
    p = sub.add_parser("embed", parents=[common], help="embed one or more texts")
    p.add_argument("texts", nargs="+")
    p.add_argument("--raw", action="store_true", help="do not L2-normalise")
    sub.add_parser("models", parents=[common], help="list the server's models")
    p = sub.add_parser("health", parents=[common], help="gRPC health check (exit 0 if SERVING)")
    p.add_argument("--service", default="", help="service name ('' = the whole server)")
    p = sub.add_parser("loadtest", parents=[common], help="closed/open-loop load, rate sweeps")
    from service.loadtest.cli import add_arguments

    add_arguments(p)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["export"]:
        # The exporter imports torch; load it only when asked (the server never does).
        from export.cli import main as export_main

        return export_main(argv[1:])
    parser = argparse.ArgumentParser(prog="attnserve", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    sub.add_parser("export", help="export a Hugging Face folder (attnserve export --help)")
    _client_parsers(sub)
    args = parser.parse_args(argv)
    if args.command == "serve":
        flags = {k: v for k, v in vars(args).items() if k != "command"}
        try:
            settings = load_settings(**flags)
        except ConfigError as exc:
            print(f"attnserve: {exc}", file=sys.stderr)
            return 2
        logging.basicConfig(
            level=settings.log_level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        from service.server import serve

        asyncio.run(serve(settings))
        return 0
    if args.command == "loadtest":
        from service.loadtest.cli import run

        return run(args)
    from service.client import run_client

    return run_client(args)


if __name__ == "__main__":
    raise SystemExit(main())
