"""Release metadata: the two packages' versions and the [train] pin agree; `make wheel` needs no
development environment (no torch); the crate is publishable (readme present)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _toml(path: str) -> dict:
    return tomllib.loads((ROOT / path).read_text(encoding="utf-8"))


def test_versions_and_the_kernels_pin_agree() -> None:
    version = _toml("Cargo.toml")["workspace"]["package"]["version"]
    assert _toml("kernels/pyproject.toml")["project"]["version"] == version
    extras = _toml("pyproject.toml")["project"]["optional-dependencies"]
    assert f"synknow-kernels=={version}" in extras["train"]
    assert any(d.startswith("pyarrow") for d in extras["export"])


def test_make_wheel_needs_no_development_environment() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    target = re.search(r"^wheel:(.*)\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert target is not None
    prerequisites, recipe = target.group(1).split("##")[0], target.group(2)
    assert "$(STAMP)" not in prerequisites  # the dev venv (torch, CUDA) is not built for a wheel
    assert "requirements-dev" not in recipe and "torch" not in recipe
    assert "--compatibility manylinux2014 --zig" in makefile
    assert "maturin sdist" in recipe


def test_crate_metadata_for_publishing() -> None:
    package = _toml("rust/synknow-core/Cargo.toml")["package"]
    for key in ("description", "readme", "documentation", "keywords", "categories"):
        assert package.get(key), key
    assert (ROOT / "rust/synknow-core" / package["readme"]).is_file()
    assert (ROOT / "LICENSE").is_file()


def test_release_workflow_builds_every_platform_and_both_packages() -> None:
    text = (ROOT / ".github/workflows/release.yml").read_text(encoding="utf-8")
    for needed in (
        "PyO3/maturin-action",
        "target: x86_64",
        "aarch64",
        "macos-14",
        "windows-latest",
        "command: sdist",
        "./kernels",
        'manylinux: "2014"',
    ):
        assert needed in text, needed
