"""The Hugging Face bridge: a fast tokenizer whose ids are synknow's (text round-trips to the same
ids), and synknow.evaluate_model / `synknow eval --hf` on tiny randomly initialised models
built here (no downloads: HF_HUB_OFFLINE=1 and local_files_only)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import synknow
from synknow.cli import main
from synknow.extras import EXTRAS, MissingDependencyError
from synknow.tokens import BOS, EOS, PAD

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PRESETS = {"bios": synknow.presets.bios(), "procedural": synknow.presets.procedural()}


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing here may reach the Hub; models and tokenizers are built or saved locally.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _need(module: str) -> Any:
    return pytest.importorskip(module, reason=f"{module} is not installed (synknow[hf])")


@pytest.fixture(scope="module", params=sorted(PRESETS))
def corpus(request: pytest.FixtureRequest) -> synknow.Corpus:
    return synknow.sample(PRESETS[request.param], 400, seed=11)


@pytest.fixture(scope="module")
def bios_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hf") / "bios"
    synknow.sample(PRESETS["bios"], 300, seed=5).save(path)
    return path


def _tiny_gpt2(vocab_size: int, *, n_positions: int = 128, seed: int = 0) -> Any:
    torch = _need("torch")
    transformers = _need("transformers")
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        n_layer=1,
        n_head=2,
        n_embd=16,
        n_positions=n_positions,
        vocab_size=vocab_size,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    return transformers.GPT2LMHeadModel(config)  # in training mode, as a fresh model is


# ---- tokenizer -------------------------------------------------------------------------------


def test_tokenizer_round_trips_every_document(corpus: synknow.Corpus) -> None:
    _need("tokenizers")
    _need("transformers")
    tok = corpus.vocab.to_hf_tokenizer()
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (PAD, BOS, EOS)
    assert len(tok) == len(corpus.vocab)
    assert tok.convert_ids_to_tokens(list(range(len(corpus.vocab)))) == corpus.vocab.strings
    texts = [corpus.decode(i) for i in range(corpus.n_docs)]
    encoded = tok(texts)["input_ids"]
    for i, (text, ids) in enumerate(zip(texts, encoded, strict=True)):
        assert ids == corpus.document(i).tolist(), i  # BOS ... EOS included
        assert tok.decode(ids, skip_special_tokens=True) == text, i
    # Text of several documents, as they follow in the corpus, is their concatenation.
    assert (
        tok(texts[0], texts[1])["input_ids"] == corpus.tokens[: int(corpus.doc_offsets[2])].tolist()
    )


def test_multi_word_display_strings_are_one_token() -> None:
    _need("tokenizers")
    _need("transformers")
    corpus = synknow.sample(PRESETS["bios"], 400, seed=11)
    vocab = corpus.vocab
    multi = [i for i, s in enumerate(vocab.strings) if " " in s]
    assert multi, "the bios vocabulary has multi-word values (University of ...)"
    in_docs = np.isin(corpus.tokens, multi)
    assert in_docs.any(), "and the test corpus uses them"
    tok = vocab.to_hf_tokenizer()
    for i in multi:
        text = f"{vocab.strings[i]}. {vocab.strings[i]}'s"
        assert tok(text, add_special_tokens=False)["input_ids"] == [
            i,
            vocab.ids["."],
            i,
            vocab.ids["'s"],
        ]


def test_tokenizer_saves_and_reloads(tmp_path: Path) -> None:
    transformers = _need("transformers")
    corpus = synknow.sample(PRESETS["bios"], 50, seed=2)
    corpus.vocab.to_hf_tokenizer().save_pretrained(tmp_path / "tok")
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "tok", local_files_only=True)
    for i in range(corpus.n_docs):
        ids = tok(corpus.decode(i))["input_ids"]
        assert ids == corpus.document(i).tolist()
        assert tok.decode(ids, skip_special_tokens=True) == corpus.decode(i)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s[4], r"ids 4 and 5 share the display string"),
        (lambda s: "", r"display string '' \(id 5\) is read back as ids \[\]"),
        # The rendering itself rewrites " ." as "."; so the string never appears in text.
        (lambda s: s[4] + " .", r"display string '\w+ \.' \(id 5\) is read back as ids \[4, 3\]"),
        (lambda s: "zzz .", r"display string 'zzz \.' \(id 5\) cannot be read back"),
    ],
)
def test_unrepresentable_vocabulary_is_refused(change: Any, message: str) -> None:
    _need("tokenizers")
    _need("transformers")
    vocab = synknow.sample(PRESETS["procedural"], 5, seed=1).vocab
    strings = list(vocab.strings)
    strings[5] = change(strings)
    with pytest.raises(ValueError, match=message) as e:
        synknow.Vocab(strings, vocab.info).to_hf_tokenizer()
    assert "\n" not in str(e.value)


# ---- optional dependencies ---------------------------------------------------------------------


def test_hf_extra_is_declared() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {d.split(">")[0].split("=")[0] for d in extras["hf"]}
    assert {"tokenizers", "transformers"} <= names
    assert EXTRAS["tokenizers"] == EXTRAS["transformers"] == "hf"
    dev = (ROOT / "requirements-dev.txt").read_text().split()
    assert any(w.startswith("tokenizers>=") for w in dev)
    assert any(w.startswith("transformers>=") for w in dev)


@pytest.mark.parametrize("module", ["tokenizers", "transformers"])
def test_tokenizer_without_the_hf_extra_says_which(
    module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` fails as if not installed
    vocab = synknow.sample(PRESETS["bios"], 5, seed=1).vocab
    with pytest.raises(MissingDependencyError) as e:
        vocab.to_hf_tokenizer()
    assert str(e.value) == f"to_hf_tokenizer needs {module}: pip install 'synknow[hf]'"


def test_cli_without_transformers_is_one_line(
    bios_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    _need("torch")
    monkeypatch.setitem(sys.modules, "transformers", None)
    assert main(["eval", "--hf", str(tmp_path), str(bios_dir)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "synknow eval: error: a Hugging Face model needs transformers: pip install 'synknow[hf]'"
    ]


# ---- evaluate_model ------------------------------------------------------------------------------


def test_uniform_logits_score_log2_v_on_every_role(corpus: synknow.Corpus) -> None:
    torch = _need("torch")
    v = len(corpus.vocab)
    result = synknow.evaluate_model(
        lambda ids: torch.zeros(*ids.shape, v), corpus, n_test=40, batch_size=7, bayes=False
    )
    log2v = math.log2(v)
    # Float64 statistics: log_softmax of equal logits is -log V up to a few ulps.
    close = {"rel": 1e-12}
    assert result.loss_bits == pytest.approx(log2v, **close)
    for name in ("syntax", "name", "value"):
        assert result.roles[name].bits == pytest.approx(log2v, **close)
    # `special` counts BOS (given, 0 bits) and EOS (predicted): half of log2 V on average.
    assert result.roles["special"].bits == pytest.approx(log2v / 2, **close)
    assert result.roles["special"].tokens == 2 * result.n_test_docs
    for label, bucket in result.buckets.items():
        assert bucket.bits == pytest.approx(
            log2v * (bucket.tokens - bucket.docs) / bucket.tokens, **close
        )
        assert result.value_buckets[label].bits == pytest.approx(log2v, **close)
    # Every id ties for the maximum: a value is "known" with credit 1/V.
    assert result.report["value"]["accuracy"] == pytest.approx(1 / v, **close)
    assert result.report["value"]["entropy_bits"] == pytest.approx(log2v, **close)


def test_bayes_predictive_as_logits_scores_the_bayes_reference(corpus: synknow.Corpus) -> None:
    """The model that states the Bayes predictive distribution scores exactly the Bayes code
    lengths: evaluate_model's per-token scoring against the reference (an independent path:
    the learning-curve engine). One test document, so that its predictive given everything
    before it is the predictive given the training prefix."""
    torch = _need("torch")
    from synknow.codelength import predictive_distribution

    start, stop = (int(x) for x in corpus.doc_offsets[-2:])
    document = torch.from_numpy(corpus.tokens[start:stop].astype(np.int64))

    def bayes_model(ids: Any) -> Any:
        assert ids.shape == (1, stop - start) and torch.equal(ids[0], document)
        predictive = torch.from_numpy(predictive_distribution(corpus, range(start + 1, stop)))
        rows = torch.cat([predictive, torch.full((1, predictive.shape[1]), 1.0)])
        return torch.log(rows)[None]  # -inf where the predictive is 0

    result = synknow.evaluate_model(bayes_model, corpus, n_test=1)
    # Float64 logs of float64 probabilities against float64 code lengths: rounding only.
    close = {"rel": 1e-9, "abs": 1e-12}
    assert result.bayes_bits_per_token is not None
    assert result.bits_per_token == pytest.approx(result.bayes_bits_per_token, **close)
    for name, score in result.roles.items():
        assert score.bits == pytest.approx(score.bayes_bits, **close), name
    for label, score in result.buckets.items():
        assert score.bits == pytest.approx(score.bayes_bits, **close), label
        value = result.value_buckets[label]
        assert value.bits == pytest.approx(value.bayes_bits, **close), label


def test_tiny_transformers_model(bios_dir: Path) -> None:
    torch = _need("torch")
    corpus = synknow.load_corpus(bios_dir)
    model = _tiny_gpt2(len(corpus.vocab))
    assert model.training
    result = synknow.evaluate_model(model, bios_dir, n_test=40, batch_size=16)
    assert model.training, "the model's mode is restored"
    # The same model as a plain callable, in eval mode: the same scores (the wrapper adds the
    # attention mask, which on right padding changes no real position of a causal model).
    model.eval()
    plain = synknow.evaluate_model(
        lambda ids: model(ids).logits, corpus, n_test=40, batch_size=5, bayes=False
    )
    # float32 forward passes of different batch shapes: rounding differences only.
    assert plain.bits_per_token == pytest.approx(result.bits_per_token, rel=1e-5)
    for name in synknow.ROLE_NAMES:
        assert plain.roles[name].bits == pytest.approx(result.roles[name].bits, rel=1e-5)
    assert plain.bayes_bits_per_token is None and plain.roles["value"].bayes_bits is None
    # A random model is far from the Bayes reference and near uniform (log2 V bits).
    assert result.bayes_bits_per_token is not None
    assert result.bayes_bits_per_token < 2 < result.bits_per_token
    assert abs(result.loss_bits - math.log2(len(corpus.vocab))) < 0.5
    assert result.n_test_docs == 40 and result.n_train == 260
    assert sum(s.docs or 0 for s in result.buckets.values()) == 40
    report = json.loads(json.dumps(result.to_dict()))
    assert report["roles"]["value"]["bits"] == result.roles["value"].bits
    table = result.table()
    assert "Bayes" in table and all(name in table for name in synknow.ROLE_NAMES)
    assert torch.is_grad_enabled()


def test_documents_longer_than_the_context_are_refused(bios_dir: Path) -> None:
    torch = _need("torch")
    corpus = synknow.load_corpus(bios_dir)
    v = len(corpus.vocab)
    model = _tiny_gpt2(v, n_positions=16)
    with pytest.raises(ValueError, match=r"more than the model's context length 16"):
        synknow.evaluate_model(model, corpus, n_test=10, bayes=False)
    assert model.training, "the model's mode is left as it was"
    with pytest.raises(ValueError, match=r"more than the model's context length 8"):
        synknow.evaluate_model(
            lambda ids: torch.zeros(*ids.shape, v), corpus, n_test=10, context_length=8
        )


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (lambda ids, v: torch_zeros(*ids.shape, v + 1), r"logits over \d+ ids, the corpus's"),
        (lambda ids, v: torch_zeros(*ids.shape), r"logits of shape \(\d+, \d+\) for ids"),
        (lambda ids, v: torch_zeros(ids.shape[0], 1, v), r"expected \(\d+, \d+, \d+\)"),
        (lambda ids, v: ids.tolist(), r"returned list, expected a tensor of logits"),
        (lambda ids, v: ids[..., None].expand(-1, -1, v), r"of dtype torch.int64"),
        (lambda ids, v: torch_zeros(*ids.shape, v) * math.nan, r"NaN logits"),
    ],
)
def test_bad_model_outputs_are_one_line_errors(output: Any, message: str, bios_dir: Path) -> None:
    _need("torch")
    corpus = synknow.load_corpus(bios_dir)
    v = len(corpus.vocab)
    with pytest.raises(ValueError, match=message) as e:
        synknow.evaluate_model(lambda ids: output(ids, v), corpus, n_test=10, bayes=False)
    assert "\n" not in str(e.value)


def torch_zeros(*shape: int) -> Any:
    import torch

    return torch.zeros(*shape)


def test_bad_models_and_arguments(bios_dir: Path) -> None:
    _need("torch")
    corpus = synknow.load_corpus(bios_dir)
    v = len(corpus.vocab)
    with pytest.raises(ValueError, match=rf"vocab_size={v + 3}, the corpus's vocabulary has {v}"):
        synknow.evaluate_model(_tiny_gpt2(v + 3), corpus, n_test=10)
    with pytest.raises(TypeError, match="must be a callable .* got str"):
        synknow.evaluate_model("gpt2", corpus, n_test=10)
    with pytest.raises(ValueError, match="n_test=300 leaves no training documents"):
        synknow.evaluate_model(lambda ids: None, corpus, n_test=300)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        synknow.evaluate_model(lambda ids: None, corpus, n_test=10, batch_size=0)


# ---- synknow eval --hf --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(bios_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hf") / "tiny-gpt2"
    _tiny_gpt2(len(synknow.load_corpus(bios_dir).vocab), seed=3).save_pretrained(path)
    return path


def test_cli_eval_hf_prints_the_table(
    model_dir: Path, bios_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transformers = _need("transformers")
    argv = ["eval", "--hf", str(model_dir), str(bios_dir), "--n-test", "30", "--device", "cpu"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("test docs 30, tokens ")
    assert "role" in out and "bucket" in out and "Bayes" in out
    assert main([*argv, "--json", "--no-bayes"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_test_docs"] == 30 and report["bayes"] is None
    # The same numbers as evaluate_model on the model loaded by hand.
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    direct = synknow.evaluate_model(model, bios_dir, n_test=30, bayes=False)
    assert report["bits_per_token"] == pytest.approx(direct.bits_per_token, rel=1e-6)


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_cli_eval_hf_bad_arguments(
    model_dir: Path, bios_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _need("transformers")
    hf = ["eval", "--hf", str(model_dir)]
    assert "--hf needs the corpus" in _one_line_error(hf, capsys)
    assert "--step is for --run" in _one_line_error([*hf, str(bios_dir), "--step", "3"], capsys)
    assert "give the corpus once" in _one_line_error(
        [*hf, str(bios_dir), "--corpus", str(bios_dir)], capsys
    )
    assert "not a directory" in _one_line_error(
        ["eval", "--hf", str(tmp_path / "nope"), str(bios_dir)], capsys
    )
    (tmp_path / "empty").mkdir()
    assert "no config.json" in _one_line_error(
        ["eval", "--hf", str(tmp_path / "empty"), str(bios_dir)], capsys
    )
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text("{")
    assert "cannot read config.json" in _one_line_error(
        ["eval", "--hf", str(tmp_path / "bad"), str(bios_dir)], capsys
    )
    (tmp_path / "no-weights").mkdir()
    (tmp_path / "no-weights" / "config.json").write_text((model_dir / "config.json").read_text())
    assert "cannot load a causal language model" in _one_line_error(
        ["eval", "--hf", str(tmp_path / "no-weights"), str(bios_dir), "--n-test", "10"], capsys
    )
    other = tmp_path / "procedural"
    synknow.sample(PRESETS["procedural"], 100, seed=1).save(other)
    assert "vocabulary mismatch" in _one_line_error([*hf, str(other), "--n-test", "10"], capsys)
    assert "CORPUS_DIR" in _one_line_error(["eval", "--run", str(tmp_path), str(bios_dir)], capsys)
    assert "--n-test is for --hf" in _one_line_error(
        ["eval", "--run", str(tmp_path), "--n-test", "5"], capsys
    )
    with pytest.raises(SystemExit):  # argparse: --run and --hf exclude each other
        main(["eval", "--run", str(tmp_path), "--hf", str(model_dir)])
