"""Run configuration: TOML sections and flat keys, overrides, named sizes, clear errors."""

from __future__ import annotations

import math

import pytest
from synknow.train import MODEL_SIZES, ModelConfig, OptimConfig, TrainConfig


def test_sections_flat_keys_and_overrides_compose():
    text = 'n_test = 7\n[model]\nsize = "5m"\n[optim]\nlr = 1e-3\nbatch_size = 64\n'
    cfg = TrainConfig.from_toml(text, overrides=["optim.lr=2e-3", "--d_model=320", ("seed", 5)])
    assert cfg.model.size == "5m" and cfg.model.d_model == 320
    assert cfg.optim.lr == 2e-3 and cfg.optim.batch_size == 64
    assert cfg.data.n_test == 7  # a flat top-level key finds its section
    assert cfg.run.seed == 5


def test_config_file_roundtrip(tmp_path):
    cfg = TrainConfig.from_dict({"model": {"size": "1m"}, "data": {"epochs": 2}})
    path = tmp_path / "run.toml"
    path.write_text("[model]\nsize = '1m'\n[data]\nepochs = 2\n")
    assert TrainConfig.from_toml(path) == cfg == TrainConfig.from_toml(str(path))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", sorted(MODEL_SIZES))
def test_named_sizes_resolve_to_their_table_row(name):
    m = ModelConfig(size=name).resolved(vocab_size=300)
    assert (m.n_layer, m.n_head, m.d_model) == MODEL_SIZES[name]
    assert m.d_mlp == 4 * m.d_model and m.vocab_size == 300


def test_explicit_fields_override_the_named_size():
    m = ModelConfig(size="20m", n_layer=3).resolved(vocab_size=10)
    assert (m.n_layer, m.d_model) == (3, MODEL_SIZES["20m"][2])


def test_lr_schedule_warmup_then_cosine_to_floor():
    o = OptimConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    assert o.lr_at(0, 110) == pytest.approx(0.1) and o.lr_at(9, 110) == pytest.approx(1.0)
    assert o.lr_at(10, 110) == pytest.approx(1.0)
    assert o.lr_at(60, 110) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 2)))
    assert o.lr_at(110, 110) == pytest.approx(0.1) and o.lr_at(500, 110) == pytest.approx(0.1)
    lrs = [o.lr_at(s, 110) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))


def test_accumulation_split_and_its_error():
    assert OptimConfig(batch_size=32, micro_batch_size=4).accumulation(2) == (4, 4)
    assert OptimConfig(batch_size=32).accumulation(4) == (8, 1)
    with pytest.raises(ValueError, match="multiple of micro_batch_size"):
        OptimConfig(batch_size=10, micro_batch_size=4).accumulation(1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lrr=1"], "unknown key 'optim.lrr'"),
        (["bogus=1"], "unknown config key 'bogus'"),
        (["model2.size=1"], "unknown config section 'model2'"),
        (["optim.lr=-1"], "optim.lr must be > 0"),
        (["optim.lr=fast"], "optim.lr must be float"),
        (["model.size=huge"], "model.size must be one of"),
        (["model.norm=batchnorm"], "model.norm must be"),
        (["n_layer=2.5"], "model.n_layer must be int"),
        (["model.d_model=30", "model.n_head=4"], "even head size"),
        (["data.doc_attention=none"], "data.doc_attention"),
        (["run.dtype=float16"], "run.dtype"),
        (["run.device=tpu"], "run.device"),
        (["optim.beta2=1.0"], "optim.beta2"),
        (["run.run_id=a/b"], "plain directory name"),
        (["novalue"], "key=value"),
    ],
)
def test_config_errors_name_the_problem(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig().with_overrides(overrides)


def test_keys_of_a_table_must_belong_to_it():
    with pytest.raises(ValueError, match=r"unknown key\(s\) in \[optim\]: n_test"):
        TrainConfig.from_toml("[optim]\nn_test = 7\n")


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="cannot parse run config TOML"):
        TrainConfig.from_toml("[model\nsize = 1\n")
    with pytest.raises(FileNotFoundError, match="run config not found"):
        TrainConfig.from_toml(tmp_path / "nope.toml")
    with pytest.raises(ValueError, match=r"\[optim\] must be a table"):
        TrainConfig.from_toml("optim = 3\n")


def test_shipped_run_configs_parse_and_resolve():
    from pathlib import Path

    configs = sorted((Path(__file__).parents[2] / "configs").glob("*.toml"))
    assert len(configs) >= 6
    for path in configs:
        cfg = TrainConfig.from_toml(path)
        model = cfg.model.resolved(vocab_size=1000)
        assert model.size in MODEL_SIZES, path.name
        cfg.optim.accumulation(1)  # batch sizes divide
