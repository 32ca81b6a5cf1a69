"""Every experiment end to end at the micro preset: the files exist, JSON parses, CSV columns are
present, numbers are finite, figures are PNGs, the report links every figure."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from _experiments_testing import CODELENGTH_API, needs_codelength
from synknow.experiments import _io
from synknow.experiments.report import VERDICTS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# experiment -> {csv file: columns that must be present and finite}
EXPECTED = {
    "data-scaling": {
        "data_scaling.csv": ["alpha", "n_docs", "bits_per_token", "syntax_bits", "value_bits"],
    },
    "model-scaling": {
        "model_scaling.csv": [
            "params",
            "params_non_embedding",
            "bits_per_token",
            "facts_known",
            "knowledge_bits",
            "bits_per_param",
        ],
    },
    "acquisition": {
        "acquisition_curves.csv": ["step", "syntax_bits", "name_bits", "value_bits"],
        "acquisition_buckets.csv": ["step", "docs", "bayes_value_accuracy"],
    },
    "finetune": {
        "injection.csv": ["repetitions", "steps", "new_accuracy", "old_accuracy"],
        "forgetting_by_bucket.csv": ["repetitions", "accuracy_before", "accuracy_after"],
        "qa_format_curve.csv": ["step", "format_bits", "answer_accuracy"],
    },
    "hallucination": {
        "hallucination_by_bucket.csv": [
            "tokens",
            "accuracy",
            "confidence",
            "wrong_confident_rate",
            "kl_to_prior_bits",
        ],
        "value_predictions.csv": ["model_bits", "bayes_bits", "model_kl_bits", "bayes_credit"],
    },
    "structure-function": {
        "structure_function.csv": ["stored_entities", "model_bits", "data_bits"],
        "models_on_curve.csv": ["params", "train_bits", "nominal_model_bits"],
    },
}
NEEDS_CODELENGTH = {"data-scaling", "structure-function"}


def _finite_json(x: object) -> None:
    """Strict JSON: every number finite (non-finite values must have become null)."""
    if isinstance(x, dict):
        for v in x.values():
            _finite_json(v)
    elif isinstance(x, list):
        for v in x:
            _finite_json(v)
    elif isinstance(x, float):
        assert math.isfinite(x)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", list(EXPECTED))
def test_experiment_outputs_are_well_formed(micro_run, experiment: str) -> None:
    if experiment in NEEDS_CODELENGTH and not CODELENGTH_API:
        pytest.skip("needs the code-length engine")
    out, summary = micro_run
    d = out / experiment
    assert not (d / "error.txt").exists(), (d / "error.txt").read_text()
    for f in summary.failures:
        assert f.experiment != experiment, str(f)
    section = json.loads((d / "section.json").read_text())
    assert section["verdict"] in VERDICTS and section["verdict"] != "failed"
    for key in ("claim", "setup", "measured", "theory", "verdict_text"):
        assert section[key].strip(), key
    text = (d / "section.md").read_text()
    assert "**Claim (paper).**" in text and "**Verdict:" in text
    fits = json.loads((d / "fits.json").read_text(), parse_constant=pytest.fail)
    _finite_json(fits)
    for name, columns in EXPECTED[experiment].items():
        rows = _io.read_csv(d / name)
        assert rows, name
        for c in columns:
            assert c in rows[0], (name, c)
            for row in rows:
                if row[c] != "":
                    assert math.isfinite(float(row[c])), (name, c, row[c])
    if experiment in ("acquisition", "hallucination", "finetune"):
        csv = {
            "acquisition": "acquisition_buckets.csv",
            "hallucination": "hallucination_by_bucket.csv",
            "finetune": "forgetting_by_bucket.csv",
        }[experiment]
        labels = {r["bucket"] for r in _io.read_csv(d / csv)}
        assert labels and all(re.fullmatch(r"\d+(-\d+)?|all", x) for x in labels), labels
    assert section["figures"], "every experiment draws figures"
    for fig, caption in section["figures"]:
        data = (d / fig).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 2000, fig
        assert caption
    for f in section["files"]:
        assert (d / f).is_file(), f


@pytest.mark.slow
def test_report_embeds_every_figure(micro_run) -> None:
    out, _ = micro_run
    readme = (out / "README.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    pngs = sorted(str(p.relative_to(out)) for p in out.glob("*/*.png"))
    assert sorted(linked) == pngs
    for link in linked:
        assert (out / link).is_file()
    from synknow.experiments.report import TITLES

    for experiment in EXPECTED:
        assert f"## {TITLES[experiment]}" in readme, experiment
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preset"] == "micro"
    assert set(manifest["experiments"]) == set(EXPECTED)
    assert manifest["environment"]["synknow"]


@pytest.mark.slow
def test_base_runs_are_shared_and_finished(micro_run) -> None:
    out, _ = micro_run
    runs = sorted(p.name for p in (out / "shared" / "runs").iterdir())
    # the base sweep, and E2's saturation check (the largest size trained twice as long)
    assert runs == ["base-d16", "base-d8", "e2-double-d16"]
    for r in runs:
        done = json.loads((out / "shared" / "runs" / r / "done.json").read_text())
        records = done["result"]["records"]
        steps = [rec["step"] for rec in records]
        assert steps == sorted(set(steps)) and records[-1]["final"]
        assert steps[-1] == done["result"]["total_steps"]
        # the evaluations are also in the run's JSONL, one line each
        lines = (out / "shared" / "runs" / r / "evals.jsonl").read_text().splitlines()
        assert [json.loads(x)["step"] for x in lines] == steps


@needs_codelength
@pytest.mark.slow
def test_data_scaling_bayes_curve_decreases(micro_run) -> None:
    out, _ = micro_run
    rows = [r for r in _io.read_csv(out / "data-scaling" / "data_scaling.csv")]
    for alpha in {r["alpha"] for r in rows}:
        bayes = [
            float(r["bits_per_token"])
            for r in rows
            if r["alpha"] == alpha and r["learner"] == "bayes"
        ]
        assert len(bayes) >= 4
        # the Bayes learning curve is non-increasing in expectation; on one test split it is
        # strictly decreasing over these prefix lengths (more knowledge is revealed)
        assert bayes[-1] < bayes[0]


def test_expected_table_covers_every_experiment() -> None:
    from synknow.experiments import EXPERIMENTS

    assert set(EXPECTED) == set(EXPERIMENTS)
    assert Path(__file__).parent.joinpath("conftest.py").is_file()


@needs_codelength
@pytest.mark.slow
def test_micro_reports_show_preconditions_and_seed_intervals(micro_run) -> None:
    out, _ = micro_run
    fits = json.loads((out / "data-scaling" / "fits.json").read_text())
    for entry in fits.values():
        bayes = entry["bayes"]
        assert len(bayes["per_corpus"]) == 3  # micro: 3 corpora per alpha
        assert bayes["interval_method"].startswith("bootstrap over 3 corpora")
    for name in ("data-scaling", "model-scaling"):
        section = json.loads((out / name / "section.json").read_text())
        assert section["verdict"] == "not tested"  # micro can test nothing
        assert section["preconditions"] and not all(p["met"] for p in section["preconditions"])
        assert (
            "| precondition | measured | requirement | met |"
            in (out / name / "section.md").read_text()
        )
    e2 = json.loads((out / "model-scaling" / "section.json").read_text())
    assert any(p["name"].startswith("capacity binds") for p in e2["preconditions"])
