"""Report sections, number formatting, figures, and preset corpora."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import synknow
from synknow import plots_experiments as plots
from synknow.experiments import PRESETS, _io
from synknow.experiments.report import Section, build_report, fmt, markdown_table, write_section
from synknow.experiments.runner import get_preset, prepare_output
from synknow.fit import fit_power_law
from synknow.fsutil import default_file_mode
from synknow.plots import new_figure, save_figure

PNG = b"\x89PNG\r\n\x1a\n"


def _section(**kw) -> Section:
    base = dict(
        experiment="hallucination",
        claim="c",
        setup="s",
        measured="| a |\n|---|\n| 1 |",
        theory="t",
        verdict="agrees",
        verdict_text="v",
        figures=[("f.png", "a figure")],
        files=["x.csv"],
    )
    base.update(kw)
    return Section(**base)


def test_section_rejects_unknown_verdicts() -> None:
    with pytest.raises(ValueError, match="verdict must be one of"):
        _section(verdict="probably")


def test_section_markdown_and_round_trip(tmp_path: Path) -> None:
    s = _section(failures=["hallucination/r: boom"], seconds=3.2)
    md = s.to_markdown(prefix="hallucination/")
    assert md.startswith("## E5 — hallucination")
    assert "![a figure](hallucination/f.png)" in md and "[`x.csv`](hallucination/x.csv)" in md
    assert "**Verdict: agrees.** v" in md and "`hallucination/r: boom`" in md
    write_section(tmp_path, s)
    back = Section.from_dict(json.loads((tmp_path / "section.json").read_text()))
    assert back == s


def test_build_report_collects_sections(tmp_path: Path) -> None:
    prepare_output(tmp_path / "o", get_preset("micro"), resume=False)
    write_section(tmp_path / "o" / "hallucination", _section())
    readme = build_report(tmp_path / "o").read_text()
    assert "Preset **micro**" in readme and "## E5 — hallucination" in readme
    assert "(#e5--hallucination)" in readme  # summary links to the section anchor
    assert "Not run into this directory: data-scaling" in readme


def test_fmt_and_tables() -> None:
    assert fmt(None) == "-" and fmt(float("nan")) == "-"
    assert fmt(12345) == "12,345" and fmt(0.5) == "0.5" and fmt(3.14159) == "3.14"
    assert fmt(2.5e-5) == "2.50e-05" and fmt(1.23e7) == "1.23e+07"
    t = markdown_table(["a", "b"], [[1, "x"], [0.25, None]])
    assert t.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 0.25 | - |"]


def test_strict_json_and_csv(tmp_path: Path) -> None:
    _io.write_json(tmp_path / "a.json", {"x": np.float64("inf"), "y": np.arange(2)})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None, "y": [0, 1]}
    _io.write_csv(tmp_path / "b.csv", [{"a": 1, "b": 0.5}, {"a": 2, "c": float("nan")}])
    assert _io.read_csv(tmp_path / "b.csv") == [
        {"a": "1", "b": "0.5", "c": ""},
        {"a": "2", "b": "", "c": ""},
    ]


def test_every_plot_writes_a_png(tmp_path: Path) -> None:
    x = np.geomspace(10, 1e4, 8)
    fit = fit_power_law(x, 0.5 + 20 * x**-0.6, n_boot=0)
    paths = [
        plots.scaling_plot(
            tmp_path / "s.png",
            [{"x": x, "y": fit.predict(x), "label": "L", "fit": fit}],
            xlabel="n",
            ylabel="bits",
            title="t",
            excess=True,
        ),
        plots.role_curves_plot(
            tmp_path / "r.png",
            [{"title": "p", "x": x, "curves": {"a": x**-0.5}, "reference": {"b": (x, x**-0.4)}}],
            xlabel="n",
            title="t",
        ),
        plots.heatmap_plot(
            tmp_path / "h.png",
            [{"title": "p", "matrix": np.eye(3), "rows": ["0", "1", "2-3"], "columns": [1, 2, 4]}],
            xlabel="step",
            ylabel="bucket",
            title="t",
            cbar="acc",
        ),
        plots.reliability_plot(
            tmp_path / "rel.png",
            [{"label": "m", "confidence": [0.1, 0.5], "accuracy": [0.2, np.nan], "count": [3, 0]}],
            title="t",
        ),
        plots.bucket_bars_plot(
            tmp_path / "b.png", ["0", "1"], [{"title": "acc", "bars": {"m": [0.1, 0.9]}}], title="t"
        ),
        plots.lines_plot(
            tmp_path / "l.png",
            [{"x": [1, 2], "y": [1, 2], "label": "a", "style": "k:"}],
            xlabel="x",
            ylabel="y",
            title="t",
        ),
        plots.structure_function_plot(
            tmp_path / "sf.png",
            np.array([10.0, 100.0, 1000.0]),
            np.array([500.0, 300.0, 250.0]),
            mdl=(100.0, 300.0),
            points=[{"x": 5000.0, "y": 400.0, "label": "m", "x_effective": 50.0}],
            title="t",
        ),
        plots.exponent_plot(
            tmp_path / "e.png",
            [{"alpha": 0.5, "theory": 0.5, "bayes": 0.55, "bayes_ci": (0.5, 0.6), "model": None}],
            title="t",
            tolerance={0.3: 0.25, 0.7: 0.13},
        ),
    ]
    for p in paths:
        assert p.read_bytes().startswith(PNG)
    assert not list(tmp_path.glob(".*.tmp*"))  # atomic writes leave no temp files


@pytest.mark.parametrize("name", ["micro", "cpu-tiny", "cpu-small", "gpu-small"])
def test_procedural_presets_pack_documents_without_padding(name: str) -> None:
    """Equal-length templates make every document the same length, and the training context
    holds a whole number of documents (no padding, same number of windows in every epoch)."""
    p = PRESETS[name]
    for family, context in (
        (p.corpus, p.base.train.context_length),
        (p.data_scaling.corpus or p.corpus, p.data_scaling.train.context_length),
    ):
        corpus = synknow.sample(family.config(p.base.alpha, 1), 200, seed=1)
        lengths = np.diff(np.asarray(corpus.doc_offsets, dtype=np.int64))
        assert lengths.min() == lengths.max()
        assert context % int(lengths[0]) == 0


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_corpora_have_enough_names(name: str) -> None:
    """docs/model.md#configuration requires U >= 100 E[K_N] for the largest corpus each preset
    samples."""
    p = PRESETS[name]
    s = p.data_scaling
    n = max(s.n_train, s.bayes_n_max) + s.n_test
    family = s.corpus or p.corpus
    for alpha in s.alphas:
        cfg = family.config(alpha, 1)
        expected = synknow.theory.expected_entities(n, alpha, cfg.beta)
        assert np.prod(cfg.name_parts) >= 100 * expected, (alpha, expected)


def test_outputs_are_world_readable(tmp_path: Path) -> None:
    a = _io.write_text(tmp_path / "a.txt", "x")
    b = save_figure(new_figure()[0], tmp_path / "b.png")
    for p in (a, b):
        # Ordinary files: 0o666 less the umask (0o644 under the usual 022), not mkstemp's 0o600.
        assert p.stat().st_mode & 0o777 == default_file_mode()
