"""Configuration and argument limits: values that used to hang, abort the interpreter, or fail
with a message naming no field (each case below did one of these before it was fixed).

Hang- and abort-prone cases run in a fresh interpreter with a generous timeout, so that a
regression fails the test instead of hanging or killing the test run; the timeout only guards
against a hang and never measures speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import synknow
from synknow import _core, presets

# A hang shows up as the timeout; a healthy run takes a second or two.
_HANG_GUARD_S = 120


def _run(code: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=_HANG_GUARD_S,
        cwd="/tmp",
    )


def test_tiny_template_prior_draws_a_valid_theta_without_hanging() -> None:
    """With a tiny gamma almost every gamma variate underflows to 0 and the Dirichlet draw used
    to redraw until one did not: about a million redraws (14 s) at 1e-10, forever at 1e-20 (no
    53-bit uniform survives the power 1e20), and Ctrl-C could not stop it. It now normalises in
    log space, from one set of draws: theta is (in effect) one-hot."""
    out = _run(
        """
import synknow
from synknow import _core, presets
for gamma in (1e-10, 1e-20):
    cfg = presets.bios(template_prior=gamma)
    theta = _core.theta(cfg.to_json())
    assert all(abs(sum(row) - 1.0) < 1e-12 and max(row) > 1 - 1e-6 for row in theta), theta
print("docs", synknow.sample(cfg, 200, seed=1).n_docs)
"""
    )
    assert out.returncode == 0, out.stderr
    assert "docs 200" in out.stdout


def test_template_priors_across_the_valid_range_give_distributions() -> None:
    out = _run(
        """
from synknow import _core, presets
for gamma in (1e-100, 1e-10, 1e10, 1e100):
    theta = _core.theta(presets.bios(template_prior=gamma).to_json())
    assert all(abs(sum(row) - 1.0) < 1e-12 and min(row) >= 0.0 for row in theta), gamma
print("ok")
"""
    )
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


@pytest.mark.parametrize("gamma", [1e308, 1e101, 1e-101, 5e-324])
def test_template_prior_outside_the_range_is_named(gamma: float) -> None:
    """1e308 used to hang (the gamma variates' sum overflowed and the draw retried forever)."""
    with pytest.raises(ValueError, match=r"'template_prior'.*1e-100"):
        presets.bios(template_prior=gamma)


def test_beta_above_its_bound_is_named() -> None:
    with pytest.raises(ValueError, match=r"'beta'.*<= 1e300"):
        presets.bios(beta=1e308)
    assert presets.bios(beta=1e300).beta == 1e300


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name_parts": (10**9,)}, "name_parts"),
        ({"name_parts": (2**24,)}, "name_parts"),
        ({"pool_sizes": (2**25, 80, 120, 48, 160)}, "pool_sizes"),
        ({"preset": "procedural", "syntax_vocab": 2**32 - 1}, "syntax_vocab"),
    ],
)
def test_oversized_vocabulary_fails_before_allocating(overrides, field) -> None:
    """name_parts = [1000000000] used to build 10^9 display strings (24 GB) and abort; a
    syntax_vocab of 2^32 - 1 aborted while validating. Each runs in a fresh interpreter, so a
    regression fails here instead of killing the test run."""
    _expect_value_error(overrides, rf"'{field}'.*vocabulary overflow.*16777216")


def _expect_value_error(overrides: dict, pattern: str) -> None:
    out = _run(
        f"""
import json, re, sys
from synknow import presets
try:
    presets.bios(**json.load(sys.stdin))
except ValueError as e:
    assert re.search({pattern!r}, str(e)), str(e)
    print("refused")
""",
        stdin=json.dumps(overrides),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "refused" in out.stdout


def test_oversized_vocabulary_from_the_cli_is_a_one_line_error(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "synknow",
            "generate",
            "--docs",
            "10",
            "--out",
            str(tmp_path / "c"),
            "--set",
            "name_parts=[1000000000]",
        ],
        capture_output=True,
        text=True,
        timeout=_HANG_GUARD_S,
    )
    assert out.returncode != 0
    assert "name_parts" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert out.returncode > 0, "killed by a signal"
    assert not (tmp_path / "c").exists()


def _procedural_attributes(n: int, **more) -> dict:
    return {"preset": "procedural", "n_attributes": n, "attribute_pool": (0,) * n, **more}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        # 60,000 value priors over a pool of 2000: 1.2e8 entries.
        (
            _procedural_attributes(60_000, pool_sizes=(2000,), templates_per_attribute=1),
            "pool_sizes",
        ),
        # 6e7 templates.
        (_procedural_attributes(1000, templates_per_attribute=60_000), "templates_per_attribute"),
    ],
)
def test_oversized_tables_fail_before_allocating(overrides, field) -> None:
    _expect_value_error(overrides, rf"'{field}'.*limit")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"template_length": (1,)}, "template_length"),
        ({"syntax_vocab": 2**32}, "syntax_vocab"),
        ({"attrs_per_doc": 2**64}, "attrs_per_doc"),
    ],
)
def test_values_the_rust_types_cannot_hold_name_the_field(overrides, field) -> None:
    """These used to surface serde's message ("invalid length 1, expected an array of length
    2"), which names no field."""
    with pytest.raises(ValueError, match=f"'{field}'"):
        presets.bios(**overrides)


_BAD_THREADS = [0, -1, 1025, 10**30, 2.0, True, "2"]


@pytest.fixture(scope="module")
def small() -> synknow.Corpus:
    return synknow.sample(presets.bios(seed=3), 300)


@pytest.mark.parametrize("threads", _BAD_THREADS)
def test_every_binding_checks_threads_the_same_way(small, threads, tmp_path: Path) -> None:
    """code_lengths(threads=0) used to be accepted and threads=-1 raised OverflowError, while
    sample(threads=0) was rejected: one rule now, a ValueError naming ``threads``."""
    cfg = small.config.to_json()
    tokens, offsets = np.asarray(small.tokens), np.asarray(small.doc_offsets)
    calls = {
        "sample": lambda: _core.sample(cfg, 10, threads),
        "generate_to_dir": lambda: _core.generate_to_dir(cfg, 10, str(tmp_path / "g"), 5, threads),
        "code_lengths": lambda: _core.code_lengths(cfg, tokens, offsets, False, threads),
        "bayes_curve": lambda: _core.bayes_curve(cfg, tokens, offsets, 200, 100, [10], threads),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"threads must be an integer in 1\.\.=1024") as info:
            call()
        assert "threads" in str(info.value), name
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("threads", [0, -1, 1025])
def test_python_entry_points_reject_bad_threads(small, threads) -> None:
    with pytest.raises(ValueError, match="threads"):
        synknow.code_lengths(small, threads=threads, progress=False)
    with pytest.raises(ValueError, match="threads"):
        synknow.bayes_curve(small, 200, [10], threads=threads, progress=False)
    with pytest.raises(ValueError, match="threads"):
        synknow.sample(presets.bios(), 10, threads=threads)


def test_counts_are_value_errors_naming_the_argument() -> None:
    cfg = presets.bios().to_json()
    for bad in (-1, 2**64, 1.5, True):
        with pytest.raises(ValueError, match="n_docs must be an integer"):
            _core.sample(cfg, bad)
    with pytest.raises(ValueError, match="shard_docs must be an integer"):
        _core.generate_to_dir(cfg, 10, "/nonexistent/x", -5)


# ---- errors crossing the Rust boundary ----------------------------------------------------------


def test_one_corpus_error_class_for_both_layers() -> None:
    """The Rust extension creates the class; the Python loader raises the same one, and existing
    ``except ValueError`` code keeps catching it."""
    assert synknow.CorpusError is _core.CorpusError
    assert issubclass(synknow.CorpusError, ValueError)
    assert synknow.CorpusError.__module__ == "synknow._core"


def test_ctrl_c_in_a_long_call_is_a_keyboard_interrupt(small, tmp_path: Path) -> None:
    """A cancelled computation ends in KeyboardInterrupt, never in an error about the corpus."""

    def ctrl_c(done: int, total: int) -> None:
        raise KeyboardInterrupt

    cfg = small.config.to_json()
    tokens, offsets = np.asarray(small.tokens), np.asarray(small.doc_offsets)
    with pytest.raises(KeyboardInterrupt):
        _core.code_lengths(cfg, tokens, offsets, False, None, ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        _core.bayes_curve(cfg, tokens, offsets, 200, 100, [10, 200], None, ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        _core.generate_to_dir(cfg, 10, str(tmp_path / "g"), 5, None, False, ctrl_c)
    assert not (tmp_path / "g").exists()
