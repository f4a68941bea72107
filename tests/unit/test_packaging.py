"""The package metadata: nothing a build warns about."""

from __future__ import annotations

import tomllib

from tests.helpers import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_is_an_spdx_expression() -> None:
    # A `license = {text = ...}` table makes setuptools (77 and later) warn that the
    # form is deprecated on every build and install.
    license_ = PYPROJECT["project"]["license"]
    assert isinstance(license_, str), license_
    assert "license" not in PYPROJECT["project"].get("dynamic", [])


def test_the_build_backend_understands_an_spdx_license() -> None:
    # setuptools reads `license = "..."` (PEP 639) from version 77 on.
    (requirement,) = [r for r in PYPROJECT["build-system"]["requires"] if "setuptools" in r]
    assert requirement.replace(" ", "") == "setuptools>=77"
