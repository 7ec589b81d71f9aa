"""`attnserve export` / `python -m export`: arguments, dispatch by task, errors → exit codes.

Exit codes: 0 exported; 1 bad input or a failed check (fusion, parity); 2 bad usage,
including an option the task does not support yet.
"""

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from export.errors import ExportError
from export.source import open_source
from service.model_format import KIND_TASKS, SPAN_QA, SUMMARIZATION, TEXT_GENERATION

TASKS = tuple(KIND_TASKS)  # each model kind model.yaml records is one export task
DEFAULT_OPSET = 14


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attnserve export",
        description="Export a local Hugging Face model folder to an attnserve model directory "
        "(fused ONNX graph, tokenizer.json, config.json, model.yaml).",
    )
    parser.add_argument("src", type=Path, metavar="SRC_DIR", help="local Hugging Face folder")
    parser.add_argument("--task", required=True, choices=TASKS, help="what the model is for")
    parser.add_argument("--out", required=True, type=Path, help="model directory to write")
    parser.add_argument("--name", help="model name (default: the --out folder's name)")
    parser.add_argument("--int8", action="store_true", help="dynamic int8 quantization")
    parser.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help="ONNX opset of encoder graphs (%(default)s); summarization and text-generation "
        "graphs are always 24",
    )
    parser.add_argument(
        "--allow-unfused",
        action="store_true",
        help="write the model even if some attention blocks were not fused (recorded in "
        "model.yaml as fully_fused: false)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _export(args)
    except ExportError as error:
        print(f"attnserve export: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("attnserve export: interrupted", file=sys.stderr)
        return 130
    return 0


def _export(args: argparse.Namespace) -> None:
    if args.int8 and args.task == SPAN_QA:
        raise ExportError(f"--int8 is not supported for {args.task} yet", exit_code=2)
    source = open_source(args.src)
    out: Path = args.out.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out exists and is not a folder: {out}")
    if out == source.path or out in source.path.parents:
        raise ExportError(f"--out {out} would overwrite the source folder {source.path}")
    # Local folders only: transformers must never reach for the model hub.
    os.environ["HF_HUB_OFFLINE"] = "1"
    # Imported here, not at the top: it pulls in torch, and input errors should come at once.
    if args.task == SPAN_QA:
        from export import question_answering

        question_answering.export(
            source,
            out,
            name=args.name or out.name,
            opset=args.opset,
            allow_unfused=args.allow_unfused,
        )
        return
    if args.task == TEXT_GENERATION:
        from export import text_generation

        text_generation.export(source, out, name=args.name or out.name, int8=args.int8)
        return
    if args.task == SUMMARIZATION:
        from export import summarization

        summarization.export(source, out, name=args.name or out.name, int8=args.int8)
        return
    from export import feature_extraction

    feature_extraction.export(
        source,
        out,
        name=args.name or out.name,
        opset=args.opset,
        int8=args.int8,
        allow_unfused=args.allow_unfused,
    )
