"""The abi3 wheel installs on its own (no dependencies, into a bare target directory) and works:
import it in a fresh interpreter that cannot see the source tree, sample, save and load."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _maturin() -> str | None:
    here = Path(sys.executable).parent / "maturin"
    return str(here) if here.exists() else shutil.which("maturin")


@pytest.mark.slow
def test_wheel_installs_and_samples(tmp_path: Path) -> None:
    maturin = _maturin()
    if maturin is None:
        pytest.skip("maturin is not installed (pip install maturin) - cannot build the wheel")
    dist = tmp_path / "dist"
    build = subprocess.run(
        [maturin, "build", "--release", "-o", str(dist)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    wheels = sorted(dist.glob("synknow-*.whl"))
    assert len(wheels) == 1, wheels
    wheel = wheels[0]
    assert "abi3" in wheel.name, wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("synknow/__init__.py", "synknow/py.typed", "synknow/_core.pyi"):
        assert needed in names, needed
    assert any(n.startswith("synknow/_core") and n.endswith(".so") for n in names), names

    target = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    code = f"""
import pathlib, synknow
assert pathlib.Path(synknow.__file__).is_relative_to({str(target)!r}), synknow.__file__
c = synknow.sample(synknow.presets.bios(), 500, seed=3, threads=2)
assert c.n_docs == 500 and c.tokens.dtype.name == "uint16"
c.save({str(tmp_path / "corpus")!r})
d = synknow.load_corpus({str(tmp_path / "corpus")!r}, verify=True)
assert (d.tokens == c.tokens).all()
print("ok", synknow.__version__, c.n_tokens, c.decode(0)[:40])
"""
    # Only the wheel's directory (plus the interpreter's own site-packages, for numpy/tqdm) is
    # importable: the source tree is neither on the path nor the working directory.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("ok ")
