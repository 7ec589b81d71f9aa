"""The README stays true: every setting is documented, every make target it names exists."""

from __future__ import annotations

import re

from service.config import Settings
from tests.server_process import ROOT


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
