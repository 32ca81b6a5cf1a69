"""torchrun's environment read for one node or several, without starting processes."""

from __future__ import annotations

import pytest
from synknow.train import TrainConfig
from synknow.train.distributed import DistContext, init_distributed, ranks_from_env
from synknow.train.loop import _memory_estimate

TWO_NODES = {  # what torchrun --nnodes 2 --nproc-per-node 2 sets on the second node's first GPU
    "WORLD_SIZE": "4",
    "RANK": "2",
    "LOCAL_RANK": "0",
    "LOCAL_WORLD_SIZE": "2",
    "MASTER_ADDR": "10.0.0.1",
    "MASTER_PORT": "29500",
}


def test_several_nodes_separate_global_and_local_ranks():
    assert ranks_from_env(TWO_NODES) == (2, 4, 0, 2)
    ctx = DistContext(rank=2, world=4, local_rank=0, local_world=2)
    assert not ctx.main  # local rank 0 of node 1 is not the writer
    assert ranks_from_env({}) == (0, 1, 0, 1)
    assert ranks_from_env({"WORLD_SIZE": "1", "RANK": "0"}) == (0, 1, 0, 1)
    one_node = {k: v for k, v in TWO_NODES.items() if k != "LOCAL_WORLD_SIZE"}
    assert ranks_from_env(one_node) == (2, 4, 0, 4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"LOCAL_RANK": None}, "LOCAL_RANK is not set although WORLD_SIZE=4: launch every rank"),
        ({"RANK": None}, "RANK is not set"),
        ({"RANK": "4"}, r"RANK=4 is outside \[0, WORLD_SIZE=4\)"),
        ({"LOCAL_RANK": "2"}, r"LOCAL_RANK=2 is outside \[0, LOCAL_WORLD_SIZE=2\)"),
        ({"LOCAL_WORLD_SIZE": "5"}, "LOCAL_WORLD_SIZE=5 is outside"),
        ({"RANK": "one"}, "RANK='one' is not an integer"),
    ],
)
def test_a_broken_launch_environment_is_one_clear_error(change, message):
    """Before, a missing RANK was a KeyError traceback and a missing LOCAL_RANK silently put
    every process of a node on GPU 0."""
    env = {k: v for k, v in {**TWO_NODES, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        ranks_from_env(env)


def test_missing_master_address_names_the_launcher(monkeypatch):
    for key, value in TWO_NODES.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MASTER_ADDR")
    with pytest.raises(ValueError, match="MASTER_ADDR is not set .* torchrun"):
        init_distributed("cpu")


def test_distributed_strategy_is_checked_and_fsdp_shards_the_memory_estimate():
    with pytest.raises(ValueError, match="run.distributed must be ddp or fsdp"):
        TrainConfig.from_dict({"run": {"distributed": "zero3"}})
    m = TrainConfig.from_dict({"model": {"size": "100m"}}).model.resolved(vocab_size=1000)
    ddp, fsdp8 = _memory_estimate(m, 1, False), _memory_estimate(m, 1, False, shards=8)
    # Parameter state: 16 bytes per parameter on every rank vs 16/8 + 4 (rank 0's whole copy
    # for evaluation); the activations are the same.
    assert _memory_estimate(m, 1, False, shards=1) == ddp
    assert m.n_layer and m.d_model and m.d_mlp
    params = m.n_layer * (4 * m.d_model**2 + 2 * m.d_model * m.d_mlp) + 1000 * m.d_model
    assert ddp - fsdp8 == 16 * params - (16 * params // 8 + 4 * params)
