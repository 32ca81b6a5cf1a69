"""E4's injection ladder: treated and control batches take the same steps and differ only where
the new documents sit; fine-tuning continues at the pre-training schedule's final rate."""

from __future__ import annotations

import numpy as np
import pytest
from synknow.experiments.injection_ladder import ladder_batches, pretraining_final_lr
from synknow.train.config import OptimConfig


def test_ladder_batches_pair_treated_and_control() -> None:
    new = [[1000 + i] for i in range(10)]
    old = [[i] for i in range(100)]
    treated, control = ladder_batches(new, old, 8, 0.25, np.random.default_rng(0))
    assert len(treated) == len(control) == 5  # 10 new documents, 2 a batch
    seen_new = []
    for t, c in zip(treated, control, strict=True):
        assert len(t) == len(c) == 8
        t_new = [d for d in t if d[0] >= 1000]
        assert len(t_new) == 2 and not any(d[0] >= 1000 for d in c)
        assert t[2:] == c[2:]  # the shared pre-training documents
        seen_new += t_new
    assert sorted(d[0] for d in seen_new) == list(range(1000, 1010))


def test_ladder_batches_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="ladder_new_fraction"):
        ladder_batches([[1]], [[0]] * 10, 4, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="pre-training documents"):
        ladder_batches([[1]] * 4, [[0]] * 3, 4, 0.25, np.random.default_rng(0))


def test_finetuning_continues_at_the_final_pretraining_rate() -> None:
    assert pretraining_final_lr(3e-3) == pytest.approx(3e-3 * OptimConfig().min_lr_ratio)
    cfg = OptimConfig(lr=3e-3)
    assert pretraining_final_lr(3e-3) == pytest.approx(cfg.lr_at(1000, 1000), rel=1e-6)
