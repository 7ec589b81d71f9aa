"""The README stays true: every setting is documented, every make target it names exists."""

from __future__ import annotations

import re

import yaml

from service.config import Settings
from service.metrics import Metrics
from tests.server_process import ROOT, require_default_model


def test_every_setting_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"ATTNSERVE_{name.upper()}" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"


def test_make_targets_named_in_the_readme_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z-]+):", makefile, flags=re.MULTILINE))
    named = set(re.findall(r"`make ([a-z-]+)", readme))
    assert named <= targets, named - targets


def test_every_metric_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    names = [family.name for family in Metrics().registry.collect()]
    missing = [name for name in names if name not in readme]
    assert names and not missing, f"README's metrics list lacks {missing}"


def test_the_readmes_model_figures_are_what_model_yaml_records() -> None:
    # The README states a bound and a count; the measured figures live in model.yaml.
    manifest = yaml.safe_load((require_default_model() / "model.yaml").read_text())
    readme = (ROOT / "README.md").read_text()
    found = re.search(
        r"(\d+) fused `Attention` nodes, parity with PyTorch within ([0-9.e-]+)", readme
    )
    assert found, "the Quick tour no longer states the default model's fusion and parity"
    assert int(found[1]) == manifest["fused_ops"]["Attention"]
    assert manifest["parity"]["max_abs_diff"] < float(found[2])
