"""The runnable examples in the code-length modules' docstrings."""

from __future__ import annotations

import doctest

import pytest
import synknow.codelength
import synknow.structure
import synknow.theory


@pytest.mark.parametrize("module", [synknow.codelength, synknow.structure, synknow.theory])
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
