"""Print pyproject.toml's pin for the named packages (the image reads pins, never repeats them).

    python deploy/docker/pyproject_pin.py torch        ->  torch==2.13.0

Used by the Dockerfiles to install torch from the PyTorch CPU index at exactly the version
pyproject.toml pins; everything else installs through the extras (`pip install ".[cpu]"`).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def pins(pyproject: Path) -> dict[str, str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    found = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", requirement.strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(3)
    return found


def main(argv: list[str]) -> int:
    pinned = pins(
        Path(argv[0]) if argv[:1] and argv[0].endswith(".toml") else Path("pyproject.toml")
    )
    names = [a for a in argv if not a.endswith(".toml")]
    missing = [n for n in names if n.lower() not in pinned]
    if missing:
        print(
            f"pyproject_pin: not pinned with == in pyproject.toml: {', '.join(missing)}",
            file=sys.stderr,
        )
        return 1
    for name in names:
        print(f"{name}=={pinned[name.lower()]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
