"""The Rust sampler against the pure-Python reference sampler (``reference_sampler.py``): the
two draw from the same law with different random numbers, so their distributions must agree.
Two-sample chi-square tests, p > 1e-4 each, fixed seeds."""

import numpy as np
import pytest
import synknow
from _sampler_stats import chi2_two_sample
from reference_sampler import sample_reference

P_MIN = 1e-4


def _rust(cfg, n: int, seed: int) -> synknow.Corpus:
    return synknow.sample(cfg, n, seed=seed)


@pytest.mark.parametrize(("alpha", "beta"), [(0.7, 10.0), (0.3, -0.2), (0.0, 4.0)])
def test_number_of_entities(alpha: float, beta: float) -> None:
    """K_n over 500 runs of n = 80 documents (small templates keep the reference fast)."""
    cfg = synknow.presets.bios(alpha=alpha, beta=beta, templates_per_attribute=2)
    n = 80
    rust = [_rust(cfg, n, s).n_entities for s in range(500)]
    ref = [sample_reference(cfg, n, seed=s).n_entities for s in range(500)]
    stat, dof, p = chi2_two_sample(rust, ref)
    assert p > P_MIN, f"chi2 = {stat:.1f} on {dof} dof, p = {p:.2e}"


def test_entity_counts_distribution() -> None:
    """The count of document 0's entity (the first entity) over 500 runs of n = 80."""
    cfg = synknow.presets.bios(alpha=0.5, beta=1.0, templates_per_attribute=2)
    rust = [int(_rust(cfg, 80, s).entity_counts[0]) for s in range(500)]
    ref = [int(sample_reference(cfg, 80, seed=s).entity_counts()[0]) for s in range(500)]
    stat, dof, p = chi2_two_sample(rust, ref)
    assert p > P_MIN, f"chi2 = {stat:.1f} on {dof} dof, p = {p:.2e}"


@pytest.fixture(scope="module")
def pair() -> tuple[synknow.Corpus, object]:
    """One large-ish corpus from each sampler, m = 4 of 6 attributes (shuffled), zipf values.
    Both use the configuration's seed 77 for what it fixes (theta, the zipf value orders); the
    reference's own draws use Python's RNG."""
    cfg = synknow.presets.bios(
        alpha=0.9, beta=30.0, attrs_per_doc=4, value_prior="zipf(1.2)", seed=77
    )
    return _rust(cfg, 6000, cfg.seed), sample_reference(cfg, 6000, seed=2)


def test_attribute_counts_per_position(pair) -> None:
    rust, ref = pair
    sa_ref = np.array(ref.sentence_attribute)
    for s in range(4):
        stat, dof, p = chi2_two_sample(rust.sentence_attribute[:, s], sa_ref[:, s])
        assert p > P_MIN, f"position {s}: p = {p:.2e}"


def test_template_frequencies(pair) -> None:
    """Template ids per attribute (theta is shared: both samplers use the config's theta)."""
    rust, ref = pair
    sa_ref = np.array(ref.sentence_attribute).ravel()
    st_ref = np.array(ref.sentence_template).ravel()
    sa, st = rust.sentence_attribute.ravel(), rust.sentence_template.ravel()
    for a in range(6):
        stat, dof, p = chi2_two_sample(st[sa == a], st_ref[sa_ref == a])
        assert p > P_MIN, f"attribute {a}: p = {p:.2e}"


def test_value_frequencies(pair) -> None:
    """Entity values per attribute (H_a = zipf(1.2) over a per-attribute random order)."""
    rust, ref = pair
    vals_ref = np.array(ref.entity_values)
    assert rust.n_entities > 1000 and ref.n_entities > 1000
    for a in range(6):
        stat, dof, p = chi2_two_sample(rust.entity_values[:, a], vals_ref[:, a])
        assert p > P_MIN, f"attribute {a}: p = {p:.2e}"


def test_document_lengths(pair) -> None:
    rust, ref = pair
    lengths = np.diff(rust.doc_offsets.astype(np.int64))
    stat, dof, p = chi2_two_sample(lengths, [len(d) for d in ref.documents])
    assert p > P_MIN, f"p = {p:.2e}"


def test_reference_renders_the_same_way() -> None:
    """Given the same latent records, the reference renderer reproduces the Rust tokens and
    roles exactly (rendering is deterministic; only the draws differ)."""
    cfg = synknow.presets.procedural(seed=4, attrs_per_doc=3)
    corpus = _rust(cfg, 300, 9)
    g = corpus.grammar
    for i in range(corpus.n_docs):
        k = int(corpus.doc_entity[i])
        doc, roles = [1], [0]
        for a, t in zip(corpus.sentence_attribute[i], corpus.sentence_template[i], strict=True):
            for slot in g["skeletons"][a][t]:
                if slot == -1:
                    doc += corpus.entity_names[k].tolist()
                    roles += [2] * corpus.entity_names.shape[1]
                elif slot == -2:
                    doc.append(int(corpus.entity_values[k, a]))
                    roles.append(3)
                else:
                    doc.append(slot)
                    roles.append(1)
        doc.append(2)
        roles.append(0)
        lo, hi = int(corpus.doc_offsets[i]), int(corpus.doc_offsets[i + 1])
        assert corpus.tokens[lo:hi].tolist() == doc
        assert corpus.roles[lo:hi].tolist() == roles
