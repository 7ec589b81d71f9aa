"""Just enough of a Dockerfile parser for the checks in docker.py: stages, instructions and
the `pip install` arguments of their RUN lines."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field


def normalise(name: str) -> str:
    """A package name as pip compares it (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(slots=True)
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass(slots=True)
class Stage:
    name: str
    base: str
    instructions: list[Instruction] = field(default_factory=list)


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    logical: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append((start, buffer + stripped))
        buffer = ""
    for number, line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "ARG" and not stages:
            name, _, default = rest.strip().partition("=")
            args[name] = default
        elif keyword == "FROM":
            parts = rest.split()
            parts = [p for p in parts if not p.startswith("--")]
            name = parts[2] if len(parts) >= 3 and parts[1].lower() == "as" else str(len(stages))
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            stages.append(Stage(name, base))
        elif stages:
            stages[-1].instructions.append(Instruction(number, keyword, rest.strip()))
    return args, stages


def pip_installs(command: str) -> Iterator[list[str]]:
    """The argument lists of each `pip install` in a shell command."""
    for segment in re.split(r"&&|\|\||;|\|", command):
        try:
            words = shlex.split(segment)
        except ValueError:
            words = segment.split()
        for i, word in enumerate(words[:-1]):
            if (word.endswith("pip") or word.endswith("pip3") or word == "pip") and words[
                i + 1
            ] == "install":
                yield words[i + 2 :]
            elif word == "-m" and words[i + 1] == "pip" and words[i + 2 : i + 3] == ["install"]:
                yield words[i + 3 :]


def extras_of(word: str) -> list[str]:
    """The extras a `pip install` argument names: `.[cpu,export]` -> cpu, export."""
    return re.findall(r"[\w-]+", word.partition("[")[2])


@dataclass(slots=True)
class Build:
    """A Dockerfile's stages, each followed back through the stages it is built FROM."""

    stages: list[Stage]
    by_name: dict[str, Stage] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {s.name: s for s in self.stages}

    def chain(self, stage: Stage) -> list[Stage]:
        """The stage and its ancestors (bounded: a FROM cycle must not hang the check)."""
        result = [stage]
        while result[-1].base in self.by_name and len(result) < 50:
            result.append(self.by_name[result[-1].base])
        return result

    def installs(self, stage: Stage) -> list[str]:
        """What `pip install` gets in the stage and its ancestors (options left out)."""
        return [
            word
            for s in self.chain(stage)
            for ins in s.instructions
            if ins.keyword == "RUN"
            for args in pip_installs(ins.args)
            for word in args
            if not word.startswith("-")
        ]

    def has_torch(self, stage: Stage) -> bool:
        return any(
            "export" in extras_of(w)
            or normalise(w).startswith("torch")
            or w.endswith(".txt")  # a pin file: only torch is installed that way
            for w in self.installs(stage)
        )

    def instructions(self, stages: list[Stage], *keywords: str) -> list[Instruction]:
        """The stages' instructions of these kinds, in order."""
        return [ins for s in stages for ins in s.instructions if ins.keyword in keywords]
