"""The transformer coder and the two-part code (docs/compression.md#transformer-coder): a tiny
model trained for a few steps in the test codes a corpus losslessly, at its measured loss within
the stated quantisation bound, and refuses another model or a damaged file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import synknow

pytest.importorskip("constriction")
torch = pytest.importorskip("torch")

from _train_testing import small_bios, tiny_config  # noqa: E402
from synknow import model_coder  # noqa: E402
from synknow.cli import main  # noqa: E402
from synknow.model_coder import (  # noqa: E402
    compress_with_model,
    decompress_two_part,
    decompress_with_model,
    model_code,
    quantise_weights,
    two_part_code,
)

N_DOCS, N_TEST = 240, 24
# The coding pass scores token t from the (batch, t) prefix, the measured loss from one
# teacher-forced pass over the whole batch: the same model on differently shaped float32
# matmuls, so logits differ by rounding (~1e-6 relative) and the two sums by far less than
# this relative tolerance.
LOSS_RTOL = 1e-5


def _train(root: Path, corpus_dir: Path, corpus: synknow.Corpus, run_id: str, steps: int) -> Path:
    from synknow.train import train

    cfg = tiny_config(
        root,
        data={"n_test": N_TEST, "corpus": str(corpus_dir)},
        optim={"max_steps": steps},
        run={"run_id": run_id, "seed": steps},
    )
    return Path(train(cfg, corpus=corpus))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[synknow.Corpus, Path, Path]:
    """A small bios corpus, a run trained on it for 20 steps and another for 5 steps."""
    root = tmp_path_factory.mktemp("model_coder")
    corpus_dir = root / "corpus"
    synknow.sample(small_bios(), N_DOCS).save(corpus_dir)
    corpus = synknow.load_corpus(corpus_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = _train(root / "runs", corpus_dir, corpus, "a", 20)
        other = _train(root / "runs", corpus_dir, corpus, "b", 5)
    finally:
        torch.set_num_threads(threads)
    return corpus, run, other


@pytest.fixture(scope="module")
def coded(setup) -> model_coder.ModelCode:
    corpus, run, _ = setup
    return model_code(run, corpus, "test")


def _docs(corpus: synknow.Corpus, first: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.asarray(corpus.doc_offsets[first : stop + 1], dtype=np.int64)
    return np.asarray(corpus.tokens[offsets[0] : offsets[-1]]), offsets - offsets[0]


def test_roundtrip_of_the_test_split(setup, coded) -> None:
    corpus, run, _ = setup
    threads = torch.get_num_threads()
    out = decompress_with_model(coded.data, run)
    tokens, offsets = _docs(corpus, N_DOCS - N_TEST, N_DOCS)
    np.testing.assert_array_equal(out.tokens, tokens)
    np.testing.assert_array_equal(out.doc_offsets, offsets)
    assert out.tokens.dtype == corpus.tokens.dtype
    assert out.header["split"] == "test" and out.header["first_doc"] == N_DOCS - N_TEST
    assert torch.get_num_threads() == threads  # the coder's one-thread setting is undone
    assert not torch.are_deterministic_algorithms_enabled()


def test_file_size_against_the_measured_loss(coded) -> None:
    assert coded.coded_tokens == coded.n_tokens - coded.n_docs
    assert coded.coding_bits == pytest.approx(coded.loss_bits, rel=LOSS_RTOL)
    # The stated bound: leaky 24-bit quantisation (log2(2^24/(2^24-V)) per token) + 64 bits.
    assert coded.payload_bits <= coded.bound_bits
    slack = coded.loss_bits * LOSS_RTOL
    overhead = coded.coded_tokens * coded.quantisation_bits_per_token + 64
    assert coded.payload_bits <= coded.loss_bits + overhead + slack
    # Below the loss only by what quantisation can add to a probability (2^-23 at most).
    assert coded.floor_bits <= coded.coding_bits
    assert coded.payload_bits >= coded.floor_bits - 64
    assert coded.header_bytes < 1000


def test_api_bytes_are_the_report_bytes(setup, coded) -> None:
    corpus, run, _ = setup
    assert compress_with_model(run, corpus, "test") == coded.data


def test_another_model_is_refused(setup, coded) -> None:
    _, _, other = setup
    with pytest.raises(synknow.CorpusError, match="model mismatch: the file was coded with"):
        decompress_with_model(coded.data, other)


@pytest.mark.parametrize("where", ["magic", "checksum", "header", "payload", "truncated"])
def test_damaged_file_is_refused(setup, coded, where) -> None:
    _, run, _ = setup
    data = bytearray(coded.data)
    if where == "truncated":
        data = data[:-5]
    else:
        i = {"magic": 0, "checksum": 10, "header": 50, "payload": len(data) - 3}[where]
        data[i] ^= 0x40
    with pytest.raises(synknow.CorpusError) as e:
        decompress_with_model(bytes(data), run)
    assert "\n" not in str(e.value)
    assert ("magic" if where == "magic" else "checksum mismatch") in str(e.value)


def test_payload_that_decodes_differently_is_caught(setup, coded) -> None:
    """A valid file checksum over an altered payload (as when the decoder's arithmetic differs
    from the encoder's): the token checksum or the context limit catches it."""
    _, run, _ = setup
    header, payload = model_coder._unpack(coded.data, model_coder._MAGIC_MODEL, "x")
    altered = bytearray(payload)
    altered[len(altered) // 2] ^= 0xFF
    forged = model_coder._pack(model_coder._MAGIC_MODEL, header, bytes(altered))
    with pytest.raises(synknow.CorpusError, match="token checksum|without EOS"):
        decompress_with_model(forged, run)


def test_document_longer_than_the_context_is_refused(setup) -> None:
    corpus, _, _ = setup
    longest = int(np.diff(corpus.doc_offsets).max())
    with pytest.raises(ValueError, match="at most"):
        model_coder._documents(corpus, 0, corpus.n_docs, longest - 2)


def test_unknown_split_is_refused(setup) -> None:
    corpus, run, _ = setup
    with pytest.raises(ValueError, match="split must be one of"):
        model_code(run, corpus, "validation")


def test_weight_quantisation() -> None:
    from synknow.train.config import ModelConfig
    from synknow.train.model import GPT

    torch.manual_seed(0)
    model = GPT(ModelConfig(size="tiny", context_length=16).resolved(vocab_size=50))
    raw32, _, back32 = quantise_weights(model, 32)
    raw16, _, back16 = quantise_weights(model, 16)
    raw8, desc8, back8 = quantise_weights(model, 8)
    n = sum(p.numel() for p in model.parameters())  # the tied head counted once
    assert (len(raw32), len(raw16), len(raw8)) == (4 * n, 2 * n, n)
    scales = {e["name"]: e["scale"] for e in desc8["tensors"]}
    for name, p in model.named_parameters():
        assert torch.equal(back32[name], p.detach())
        # Half precision: 11 significant bits, so relative error <= 2^-11 (normal range).
        assert torch.allclose(back16[name], p.detach(), rtol=2**-11, atol=1e-7)
        # int8: rounding to a grid of step s errs by at most s / 2 (plus float32 rounding).
        err = (back8[name] - p.detach()).abs().max().item()
        assert err <= scales[name] * (0.5 + 1e-6)
    with pytest.raises(ValueError, match="weight_bits"):
        quantise_weights(model, 4)


@pytest.fixture(scope="module")
def two_parts(setup) -> dict[int, model_coder.TwoPartCode]:
    corpus, run, _ = setup
    return {bits: two_part_code(run, corpus, "train", weight_bits=bits) for bits in (8, 16, 32)}


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_two_part_code(setup, two_parts, bits) -> None:
    corpus, _, _ = setup
    tp = two_parts[bits]
    n_train = N_DOCS - N_TEST
    # The parts add up to the file: model part = everything before the data part.
    assert tp.data_bits == 8 * len(tp.data_code.data)
    assert tp.model_bits + tp.data_bits == 8 * len(tp.data) == tp.total_bits
    assert tp.model_bits <= bits * tp.n_weights + 8 * 2000  # lzma never expands by much
    assert tp.data_code.n_docs == n_train
    # h(C) is the project's structure function of the same documents at C = model bits.
    sf = synknow.structure_function(corpus, n_train)
    assert tp.h_bits == sf.h(tp.model_bits)
    assert tp.mdl_bits == sf.mdl_bits
    # A real code: the file decodes on its own, with the quantised model.
    out = decompress_two_part(tp.data)
    tokens, offsets = _docs(corpus, 0, n_train)
    np.testing.assert_array_equal(out.tokens, tokens)
    np.testing.assert_array_equal(out.doc_offsets, offsets)
    damaged = bytearray(tp.data)
    damaged[100] ^= 1
    with pytest.raises(synknow.CorpusError, match="checksum mismatch"):
        decompress_two_part(bytes(damaged))


def test_fewer_weight_bits_make_a_smaller_model_part(setup, two_parts) -> None:
    sizes = [two_parts[b].model_bits for b in (8, 16, 32)]
    assert sizes[0] < sizes[1] < sizes[2]
    # At 32 bits the quantised model is the run's own: the data part has its weight hash.
    model, _ = model_coder.load_model(setup[1])
    data_part = two_parts[32].data_code.data
    header, _ = model_coder._unpack(data_part, model_coder._MAGIC_MODEL, "x")
    assert header["weights_sha256"] == model_coder.weights_sha256(model)


def test_cli_roundtrip(setup, tmp_path, capsys) -> None:
    corpus, run, other = setup
    out = tmp_path / "test.sktc"
    assert main(["compress", "--model", str(run), str(corpus.path), str(out), "--quiet"]) == 0
    assert "payload / loss" in capsys.readouterr().out
    dec = tmp_path / "dec"
    assert main(["decompress", str(out), str(dec), "--model", str(run), "--quiet"]) == 0
    tokens, offsets = _docs(corpus, N_DOCS - N_TEST, N_DOCS)
    np.testing.assert_array_equal(np.load(dec / "tokens.npy"), tokens)
    np.testing.assert_array_equal(np.load(dec / "doc_offsets.npy"), offsets)
    capsys.readouterr()
    assert main(["decompress", str(out), str(tmp_path / "x"), "--quiet"]) == 2
    assert "pass its run (--model RUN_DIR)" in capsys.readouterr().err
    assert main(["decompress", str(out), str(tmp_path / "y"), "--model", str(other)]) == 2
    err = capsys.readouterr().err
    assert "model mismatch" in err and len(err.strip().splitlines()) == 1


def test_cli_two_part(setup, tmp_path, capsys) -> None:
    corpus, run, _ = setup
    out = tmp_path / "two.sktc"
    argv = ["compress", "--model", str(run), "--two-part", "--weight-bits", "8"]
    assert main([*argv, str(corpus.path), str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "structure function h(C" in text and "weights at 8 bits" in text
    assert main(["decompress", str(out), str(tmp_path / "dec"), "--quiet"]) == 0
    assert main(["compress", "--two-part", str(corpus.path), str(tmp_path / "z")]) == 2
    assert "need --model" in capsys.readouterr().err


def test_coding_is_deterministic_across_calls(setup, coded) -> None:
    """The same bytes from a second encoding, after the process's thread count changed."""
    corpus, run, _ = setup
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        again = model_code(run, corpus, "test")
    finally:
        torch.set_num_threads(threads)
    assert again == coded


def test_coder_refuses_when_its_steps_do_not_compute_the_model(setup, monkeypatch) -> None:
    """The one-token steps are the model's forward taken apart; if they ever stop agreeing
    with the model's own loss (a changed architecture), no file is written."""
    corpus, run, _ = setup
    real = model_coder.measured_loss_bits
    monkeypatch.setattr(model_coder, "measured_loss_bits", lambda *a, **k: 1.01 * real(*a, **k))
    with pytest.raises(ValueError, match="does not support this architecture"):
        model_code(run, corpus, "test")


def test_floor_of_the_quantisation_caps_confidently_wrong_tokens(setup) -> None:
    """A model sure of the wrong tokens (its logits scaled up) gives some true tokens less than
    2^-24: the coder's floor caps them near 24 bits, so the file is smaller than the loss, and
    still within the stated bounds and lossless."""
    corpus, run, _ = setup
    model, stored = model_coder.load_model(run)
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)
    code = model_code(run, corpus, "test", _model=(model, stored))
    assert code.floor_bits < code.coding_bits - 100  # the floor binds on this model
    assert code.floor_bits - 64 <= code.payload_bits <= code.bound_bits
    assert code.payload_bits < code.loss_bits
    out = decompress_with_model(code.data, run, _model=(model, stored))
    np.testing.assert_array_equal(out.tokens, _docs(corpus, N_DOCS - N_TEST, N_DOCS)[0])
