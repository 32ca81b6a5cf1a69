"""The generate, inspect and demo commands, run in-process through ``synknow.cli.main``."""

from pathlib import Path

import numpy as np
import pytest
import synknow
from synknow.cli import main


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"synknow {command}: error: ")
    return err[0]


def test_generate_writes_the_same_corpus_as_sample(tmp_path: Path, capsys) -> None:
    out = tmp_path / "c"
    args = ["generate", "--docs", "700", "--seed", "4", "--out", str(out), "--quiet"]
    rc = main([*args, "--set", "alpha=0.5", "--set", "beta=2", "--shard-docs", "100"])
    assert rc == 0
    assert "wrote" in capsys.readouterr().out
    loaded = synknow.load_corpus(out, verify=True)
    expected = synknow.sample(synknow.presets.bios(alpha=0.5, beta=2.0, seed=4), 700)
    assert loaded.config == expected.config
    assert np.array_equal(loaded.tokens, expected.tokens)
    assert np.array_equal(loaded.doc_entity, expected.doc_entity)


def test_generate_from_a_toml_config(tmp_path: Path, capsys) -> None:
    cfg = synknow.presets.procedural(n_attributes=3, seed=9)
    (tmp_path / "cfg.toml").write_text(cfg.to_toml())
    out = tmp_path / "p"
    args = ["generate", "--config", str(tmp_path / "cfg.toml"), "--docs", "50", "--out", str(out)]
    assert main([*args, "--threads", "1", "--quiet"]) == 0
    assert synknow.load_corpus(out).config == cfg


def test_generate_progress_bar(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bar"
    assert main(["generate", "--docs", "300", "--out", str(out), "--shard-docs", "100"]) == 0
    assert "generate" in capsys.readouterr().err  # tqdm writes to stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--set", "alpha=1.5"], "invalid config field 'alpha'"),
        (["--set", "alpah=0.5"], "unknown config field"),
        (["--set", "alpha"], "must look like key=value"),
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--preset", "bios", "--config", "x.toml"], "either --preset or --config"),
        (["--config", "missing.toml"], "config file not found"),
        (["--threads", "0"], "--threads must be >= 1"),
        (["--shard-docs", "0"], "--shard-docs must be >= 1"),
        (["--seed", "-3"], "--seed must be >= 0"),
    ],
)
def test_generate_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys, extra: list[str], message: str
) -> None:
    rc = main(["generate", "--docs", "10", "--out", str(tmp_path / "o"), *extra])
    assert rc == 2
    assert message in _one_line_error(capsys, "generate")
    assert not (tmp_path / "o").exists()


def test_generate_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "c"
    assert main(["generate", "--docs", "20", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["generate", "--docs", "30", "--out", str(out), "--quiet"]) == 2
    assert "--overwrite" in _one_line_error(capsys, "generate")
    assert main(["generate", "--docs", "30", "--out", str(out), "--quiet", "--overwrite"]) == 0
    assert synknow.load_corpus(out).n_docs == 30


def test_generate_zero_docs_is_an_error(tmp_path: Path, capsys) -> None:
    assert main(["generate", "--docs", "0", "--out", str(tmp_path / "z")]) == 2
    assert "--docs must be >= 1" in _one_line_error(capsys, "generate")


def test_inspect_prints_statistics_and_documents(tmp_path: Path, capsys) -> None:
    corpus = synknow.sample(synknow.presets.bios(seed=1), 3000)
    corpus.save(tmp_path / "c")
    rc = main(["inspect", str(tmp_path / "c"), "--docs", "2", "--plots", str(tmp_path / "figs")])
    assert rc == 0
    out = capsys.readouterr().out
    for text in (
        "documents: 3,000",
        f"entities K: {corpus.n_entities:,}",
        "Heaps exponent: fitted",
        "theory alpha = 0.7",
        "Zipf exponent",
        "1/alpha = 1.429",
        "tokens by role: special 6,000",
        "document 0 (entity 0",
        corpus.decode(1),
    ):
        assert text in out, text
    assert "document 2 " not in out
    for name in ("heaps.png", "zipf.png", "counts_of_counts.png"):
        data = (tmp_path / "figs" / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_inspect_alpha_zero_and_tiny_corpora(tmp_path: Path, capsys) -> None:
    synknow.sample(synknow.presets.bios(alpha=0.0, beta=3.0), 400).save(tmp_path / "dp")
    assert main(["inspect", str(tmp_path / "dp"), "--plots", str(tmp_path / "f")]) == 0
    out = capsys.readouterr().out
    assert "Heaps exponent" in out and "Zipf exponent" not in out
    assert (tmp_path / "f" / "heaps.png").exists() and not (tmp_path / "f" / "zipf.png").exists()
    synknow.sample(synknow.presets.bios(), 1).save(tmp_path / "one")
    assert main(["inspect", str(tmp_path / "one")]) == 0
    assert "too few for the Heaps and Zipf fits" in capsys.readouterr().out


def test_inspect_errors(tmp_path: Path, capsys) -> None:
    assert main(["inspect", str(tmp_path / "missing")]) == 2
    assert "corpus directory not found" in _one_line_error(capsys, "inspect")
    synknow.sample(synknow.presets.bios(), 50).save(tmp_path / "c")
    (tmp_path / "c" / "roles.npy").unlink()
    assert main(["inspect", str(tmp_path / "c")]) == 2
    assert "roles.npy is missing" in _one_line_error(capsys, "inspect")
    assert main(["inspect", str(tmp_path / "c"), "--docs", "-1"]) == 2
    _one_line_error(capsys, "inspect")


def test_demo_writes_report_with_figures(tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    assert (
        main(["demo", "--out", str(out), "--docs", "5000", "--seed", "2", "--experiments", "none"])
        == 0
    )
    printed = capsys.readouterr().out
    assert "Heaps exponent" in printed and "report:" in printed
    readme = (out / "README.md").read_text()
    for text in ("# synknow demo report", "| entities K_N |", "Heaps exponent", "Zipf exponent"):
        assert text in readme, text
    for name in ("heaps.png", "zipf.png", "counts_of_counts.png"):
        assert f"]({name})" in readme
        assert (out / name).read_bytes().startswith(b"\x89PNG")


def test_demo_sections_compose(tmp_path: Path) -> None:
    from synknow.commands.demo import DEFAULT_SECTIONS, DemoContext, run_demo

    seen: list[int] = []

    def extra(ctx: DemoContext) -> str:
        assert ctx.corpus is not None and "corpus" in ctx.results
        seen.append(ctx.corpus.n_docs)
        return "## Extra section\n"

    readme = run_demo(tmp_path / "r", docs=300, sections=(*DEFAULT_SECTIONS, extra), echo=str)
    assert seen == [300]
    assert readme.read_text().rstrip().endswith("## Extra section")


def test_demo_bad_input(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path / "r"), "--docs", "1"]) == 2
    assert "docs must be >= 2" in _one_line_error(capsys, "demo")
