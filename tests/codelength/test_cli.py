"""``synknow codelength`` and ``synknow bayes-curve`` end to end on a small corpus directory."""

from __future__ import annotations

import json

import numpy as np
import pytest
import synknow
from synknow.cli import main
from synknow.commands.bayes_curve import parse_checkpoints


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("cli") / "corpus"
    synknow.generate(synknow.presets.bios(alpha=0.5), 3000, path, seed=3, progress=False)
    return path


def test_codelength_command(corpus_dir, tmp_path, capsys) -> None:
    out = tmp_path / "cl.json"
    assert main(["codelength", str(corpus_dir), "--quiet", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    corpus = synknow.load_corpus(corpus_dir)
    cl = synknow.code_lengths(corpus, progress=False)
    assert f"total: {cl.total:,.3f} bits" in text
    for role in ("syntax", "name", "value"):
        assert any(line.startswith(role) for line in text.splitlines())
    assert f"bits/document: {cl.bits_per_doc:.4f}" in text
    summary = json.loads(out.read_text())
    assert summary["total_bits"] == pytest.approx(cl.total, rel=1e-12)
    assert summary["closed_form_relative_difference"] < 1e-9
    assert main(["codelength", str(corpus_dir), "--quiet", "--docs", "100"]) == 0
    first = synknow.closed_form_per_doc(corpus, 100).sum()
    assert f"total: {first:,.3f} bits" in capsys.readouterr().out


def test_bayes_curve_command(corpus_dir, tmp_path, capsys) -> None:
    out = tmp_path / "curve"
    args = ["bayes-curve", str(corpus_dir), "--train", "2500", "--quiet", "--out", str(out)]
    assert main([*args, "--checkpoints", "log:8:10"]) == 0
    text = capsys.readouterr().out
    assert "gamma =" in text and "theory 1 - alpha = 0.500" in text
    table = np.genfromtxt(out / "bayes_curve.csv", delimiter=",", names=True)
    np.testing.assert_array_equal(table["n_train"], parse_checkpoints(["log:8:10"], 2500))
    assert (out / "bayes_curve_buckets.csv").stat().st_size > 0
    assert (out / "bayes_curve.png").stat().st_size > 10_000
    assert main([*args, "--checkpoints", "10", "100", "1_000", "--no-plot"]) == 0
    table = np.genfromtxt(out / "bayes_curve.csv", delimiter=",", names=True)
    assert table["n_train"].tolist() == [10, 100, 1000]


@pytest.mark.parametrize(
    "argv,message",
    [
        (["bayes-curve", "{dir}", "--train", "2500", "--checkpoints", "10", "5"], "increasing"),
        (["bayes-curve", "{dir}", "--train", "2500", "--checkpoints", "log:x"], "log:K"),
        (["bayes-curve", "{dir}", "--train", "2990", "--test", "20"], "exceeds"),
        (["bayes-curve", "{dir}", "--train", "2500", "--checkpoints", "9000"], "out of range"),
        (["codelength", "{dir}", "--docs", "0"], "--docs"),
        (["codelength", "{dir}/missing"], "not found"),
    ],
)
def test_errors_are_one_line(corpus_dir, capsys, argv, message) -> None:
    argv = [a.replace("{dir}", str(corpus_dir)) for a in argv]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_figures_leave_pyplot_alone(tmp_path) -> None:
    """Every figure of synknow.plots (corpus, code length, experiments) is drawn without pyplot
    and without a global backend switch (the experiments' figures used both)."""
    import subprocess
    import sys

    script = f"""
import sys
import numpy as np
import matplotlib
import synknow
from synknow import plots, plots_codelength
from synknow import plots_experiments as experiments
before = dict.__getitem__(matplotlib.rcParams, "backend")  # get_backend() would resolve it
corpus = synknow.sample(synknow.presets.bios(), 3000, seed=1)
out = {str(tmp_path)!r}
plots.heaps_plot(corpus, out + "/heaps.png")
curve = synknow.bayes_curve(corpus, 2500, [10, 100, 1000, 2500], progress=False)
plots_codelength.bayes_curve_plot(curve, out + "/curve.png")
x = np.array([1.0, 10.0, 100.0])
experiments.lines_plot(out + "/lines.png", [dict(x=x, y=x, label="l")], xlabel="x",
                       ylabel="y", title="t")
experiments.heatmap_plot(out + "/heat.png", [dict(title="p", matrix=np.eye(2), rows=[0, 1],
                         columns=[0, 1])], xlabel="x", ylabel="y", title="t", cbar="c")
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
assert dict.__getitem__(matplotlib.rcParams, "backend") == before, "the backend was switched"
"""
    env_run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert env_run.returncode == 0, env_run.stderr[-2000:]
    for name in ("heaps", "curve", "lines", "heat"):
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_missing_matplotlib_is_one_line(corpus_dir, tmp_path, capsys, monkeypatch) -> None:
    """Without matplotlib a figure request names the fix; the CLI prints it as one line."""
    import sys

    from synknow import plots

    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: import fails
    args = ["bayes-curve", str(corpus_dir), "--train", "2000", "--quiet", "--out", str(tmp_path)]
    assert main([*args, "--checkpoints", "10", "100", "1000", "2000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("synknow bayes-curve: error: ") and "synknow[plot]" in err
    assert len(err.splitlines()) == 1
    with pytest.raises(plots.MatplotlibMissingError, match=r"synknow\[plot\]"):
        plots.new_figure()
