"""E6's prequential transformer code: every batch is coded by the model as it stood before the
step on that batch."""

from __future__ import annotations

import numpy as np
import pytest
import synknow
import torch
from synknow.experiments.common import document_bits
from synknow.experiments.presets import ModelSpec
from synknow.experiments.structure_function import prequential_transformer
from synknow.train.config import ModelConfig
from synknow.train.model import GPT


@pytest.fixture(scope="module")
def corpus():
    config = synknow.presets.procedural(
        n_attributes=3,
        pool_sizes=(6, 7),
        attribute_pool=(0, 1, 1),
        name_parts=(15, 15, 30),
        templates_per_attribute=3,
        template_length=(1, 2),
        syntax_vocab=6,
        alpha=0.5,
        beta=3.0,
    )
    return synknow.sample(config, 64, seed=5)


def test_prequential_code_sums_losses_before_each_step(corpus) -> None:
    spec = ModelSpec("p", 1, 2, 16)
    res = prequential_transformer(
        corpus, spec, 48, batch_size=16, lr=3e-3, warmup_steps=1, context_length=64, seed=7
    )
    assert res["steps"] == 3 and len(res["per_batch"]) == 3
    assert res["bits"] == pytest.approx(sum(res["per_batch"]))
    # The first batch is coded by the untrained model of the same seed (hand computation).
    torch.manual_seed(7)
    fresh = GPT(ModelConfig(**spec.model_dict(64)).resolved(vocab_size=len(corpus.vocab)))
    first = float(document_bits(fresh, corpus, np.arange(16)).sum())
    # Same weights, same float32 forward pass: agreement to float32 rounding of ~1e3 bits.
    assert res["per_batch"][0] == pytest.approx(first, rel=1e-5)
    # Learning makes the later batches cheaper per document than the untrained code.
    assert res["per_batch"][-1] < first
