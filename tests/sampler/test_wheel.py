"""The abi3 wheel installs into a fresh virtual environment without Rust and works: sample,
save and load, exact code lengths, and the CLI, from a directory that cannot see the source tree.

The wheel is ``$SYNKNOW_WHEEL`` when set (e.g. one that ``make wheel`` wrote into ``dist/``),
else built here with maturin: ``manylinux2014`` through zig when the ``ziglang`` package is
installed beside maturin (as ``make wheel`` does), the host's glibc tag otherwise."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The release profile strips debug info; with it the extension was 14 MB.
MAX_EXTENSION_BYTES = 8 * 2**20


def _maturin() -> str | None:
    here = Path(sys.executable).parent / "maturin"
    return str(here) if here.exists() else shutil.which("maturin")


def _has_zig(maturin: str) -> bool:
    # maturin finds zig through the `ziglang` package of its own interpreter.
    python = Path(maturin).parent / "python"
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-m", "ziglang", "version"], capture_output=True, timeout=60
    )
    return probe.returncode == 0


def _wheel(tmp_path: Path) -> Path:
    if os.environ.get("SYNKNOW_WHEEL"):
        return Path(os.environ["SYNKNOW_WHEEL"])
    maturin = _maturin()
    if maturin is None:
        pytest.skip("maturin is not installed (pip install maturin) - cannot build the wheel")
    dist = tmp_path / "dist"
    args = [maturin, "build", "--release", "-o", str(dist)]
    zig = sys.platform == "linux" and _has_zig(maturin)
    if zig:
        args += ["--compatibility", "manylinux2014", "--zig"]
    build = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stderr[-3000:]
    wheels = sorted(dist.glob("synknow-*.whl"))
    assert len(wheels) == 1, wheels
    if zig:  # glibc 2.17: what old clusters accept
        assert "manylinux2014" in wheels[0].name or "manylinux_2_17" in wheels[0].name, wheels
    return wheels[0]


@pytest.mark.slow
def test_wheel_installs_and_samples(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    assert "abi3" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        for needed in ("synknow/__init__.py", "synknow/py.typed", "synknow/_core.pyi"):
            assert needed in names, needed
        ext = [
            i
            for i in z.infolist()
            if i.filename.startswith("synknow/_core") and i.filename.endswith((".so", ".pyd"))
        ]
        assert len(ext) == 1, names
        assert ext[0].file_size < MAX_EXTENSION_BYTES, ext[0].file_size
        assert any(
            n.endswith(".dist-info/licenses/LICENSE") or n.endswith("LICENSE") for n in names
        )

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    # numpy and tqdm (the wheel's only dependencies) come from this interpreter's site-packages,
    # added as plain paths: the .pth files there (editable installs of the source tree) are not
    # processed, so the wheel's synknow is the only one importable.
    import numpy
    import tqdm

    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    deps = {str(Path(m.__file__).resolve().parents[1]) for m in (numpy, tqdm)}
    (Path(site) / "host-deps.pth").write_text("\n".join(sorted(deps)) + "\n")

    code = f"""
import pathlib, shutil, synknow
assert pathlib.Path(synknow.__file__).is_relative_to({str(venv)!r}), synknow.__file__
assert shutil.which("cargo") is None and shutil.which("rustc") is None
c = synknow.sample(synknow.presets.bios(), 500, seed=3, threads=2)
assert c.n_docs == 500 and c.tokens.dtype.name == "uint16"
c.save({str(tmp_path / "corpus")!r})
d = synknow.load_corpus({str(tmp_path / "corpus")!r}, verify=True)
assert (d.tokens == c.tokens).all()
cl = synknow.code_lengths(d, progress=False)
closed = synknow.closed_form_total(d)
assert abs(cl.total - closed) <= 1e-9 * closed, (cl.total, closed)
print("ok", synknow.__version__, c.n_tokens, round(cl.total, 1))
"""
    # No Rust and no source tree: PATH has only the venv and the system directories, the
    # working directory is empty, PYTHONPATH is unset.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(bindir), "/usr/bin", "/bin"])
    run = subprocess.run(
        [str(python), "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.startswith("ok ")
    cli = subprocess.run(
        [str(bindir / "synknow"), "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "export" in cli.stdout and "generate" in cli.stdout
