"""Generate Python gRPC code from proto/ into service/api/protos/.

grpcio-tools writes absolute imports (``from attnserve.v1 import attnserve_pb2``); we
rewrite them to live under ``service.api.protos`` so the generated code needs no sys.path
tricks. ``--check`` regenerates into a temporary folder and fails if the committed copy
differs, so proto/ stays the single source of truth.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "service" / "api" / "protos"
PACKAGE = "service.api.protos"
_IMPORT = re.compile(r"^from ((?:attnserve|inference)(?:\.\w+)*) import (\w+_pb2)", re.MULTILINE)


def generate(out: Path) -> list[Path]:
    protos = sorted(PROTO_DIR.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_DIR}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *[str(p.relative_to(PROTO_DIR)) for p in protos],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generated = sorted(p for p in out.rglob("*") if p.suffix in {".py", ".pyi"})
    for path in generated:
        text = _IMPORT.sub(rf"from {PACKAGE}.\1 import \2", path.read_text())
        path.write_text(text)
    for folder in {out, *(d for p in generated for d in p.relative_to(out).parents)}:
        (out / folder / "__init__.py").touch()
    return generated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the committed code is stale")
    args = parser.parse_args()
    if not args.check:
        shutil.rmtree(OUT_DIR, ignore_errors=True)
        OUT_DIR.mkdir(parents=True)
        generate(OUT_DIR)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh)
        stale = [
            str(p.relative_to(fresh))
            for p in fresh.rglob("*")
            if p.is_file()
            and (
                not (OUT_DIR / p.relative_to(fresh)).exists()
                or not filecmp.cmp(p, OUT_DIR / p.relative_to(fresh), shallow=False)
            )
        ]
    if stale:
        print("generated code is stale; run `make proto`:", *stale, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
