"""The package's names: what imports cheaply, what stays where callers expect it."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch


def run_python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_configuration_imports_without_torch():
    """The CLI builds its options from the configuration classes: no torch for that."""
    out = run_python(
        "import sys, synknow.train as t; t.TrainConfig(); print('torch' in sys.modules)"
    )
    assert out.strip() == "False"


def test_train_is_the_function_whatever_is_imported_first():
    code = (
        "import importlib, importlib.util, inspect, synknow.train as t\n"
        "from synknow.train.rundir import load_run\n"
        "for m in ('loop', 'checkpoint', 'rundir', 'distributed', 'model', 'data', 'eval'):\n"
        "    importlib.import_module('synknow.train.' + m)\n"
        "assert importlib.util.find_spec('synknow.train.train') is None  # no module shadows it\n"
        "print(inspect.isfunction(t.train), t.train is t.loop.train, load_run is t.load_run)\n"
    )
    assert run_python(code).split() == ["True", "True", "True"]


def test_every_public_name_resolves():
    import synknow.train as t

    for name in t.__all__:
        assert getattr(t, name) is not None, name
    assert t.bayes_reference is t.bayes_test_code_lengths  # the documented former name
    from synknow.tokens import bucket_label as label
    from synknow.train.data import BOS, EOS, IGNORE, PAD, bucket_label, frequency_bucket

    assert (PAD, BOS, EOS, IGNORE) == (0, 1, 2, -100) and bucket_label is label
    assert frequency_bucket(7).tolist() == 3


def test_without_the_kernels_package_the_loss_falls_back_once_and_triton_is_an_error(monkeypatch):
    from synknow.train import model as model_mod

    monkeypatch.setattr(model_mod, "kernels", None)
    monkeypatch.setattr(model_mod, "_fallback_announced", False)
    h, w = torch.randn(10, 8), torch.randn(5, 8)
    t = torch.randint(0, 5, (10,))
    with pytest.raises(ValueError, match="needs the synknow_kernels package"):
        model_mod.linear_cross_entropy(h, w, t, impl="triton")
    with pytest.warns(RuntimeWarning, match="synknow_kernels is not installed"):
        first = model_mod.linear_cross_entropy(h, w, t)
    second = model_mod.linear_cross_entropy(h, w, t)  # no second warning (strict pytest)
    want = torch.nn.functional.cross_entropy(h @ w.t(), t)
    torch.testing.assert_close(first, want)
    torch.testing.assert_close(second, want)


def test_model_module_leaves_sys_path_alone():
    code = (
        "import sys; before = list(sys.path); import synknow.train.model\n"
        "print(sys.path == before)\n"
    )
    assert run_python(code).strip() == "True"
