"""Fixtures for the trainer tests: one small bios corpus on disk, shared by the session."""

from __future__ import annotations

from pathlib import Path

import pytest
import synknow
import torch
from _train_testing import small_bios

torch.set_num_threads(1)  # tiny models gain nothing from threads; a shared CPU loses a lot


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "bios-small"
    synknow.sample(small_bios(), 3000).save(path)
    return path


@pytest.fixture(scope="session")
def corpus(corpus_dir: Path) -> synknow.Corpus:
    return synknow.load_corpus(corpus_dir)
