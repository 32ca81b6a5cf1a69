"""Experiment presets: the scale of every experiment (corpus, model sizes, training budgets),
plus the catalogue of experiment names. Data only; nothing here runs anything."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from synknow.experiments import _io

__all__ = [
    "EXPERIMENTS",
    "PRESETS",
    "ModelSpec",
    "TrainSpec",
    "CorpusSpec",
    "BaseSweep",
    "DataScalingSettings",
    "FinetuneSettings",
    "HallucinationSettings",
    "StructureSettings",
    "AcquisitionSettings",
    "Preset",
    "get_preset",
    "resolve_experiments",
    "describe_presets",
]

# CLI name -> module under synknow.experiments, in report order.
EXPERIMENTS: dict[str, str] = {
    "data-scaling": "data_scaling",
    "model-scaling": "model_scaling",
    "acquisition": "acquisition",
    "finetune": "finetune",
    "hallucination": "hallucination",
    "structure-function": "structure_function",
}


@dataclass(frozen=True)
class ModelSpec:
    """A GPT shape (see :class:`synknow.train.config.ModelConfig`)."""

    name: str
    n_layer: int
    n_head: int
    d_model: int

    def model_dict(self, context_length: int) -> dict[str, Any]:
        return {
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "d_model": self.d_model,
            "context_length": context_length,
        }


@dataclass(frozen=True)
class TrainSpec:
    """Optimisation of one pre-training run. ``epochs`` passes over the training prefix;
    ``n_evals`` evaluations at log-spaced steps (plus the end), each on ``eval_docs`` test
    documents (the final one on all of them)."""

    epochs: float
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 20
    context_length: int = 64
    n_evals: int = 8
    eval_docs: int = 400


@dataclass(frozen=True)
class CorpusSpec:
    """The synthetic corpus family: a :mod:`synknow.presets` name plus overrides; ``alpha`` and
    ``beta`` are set per experiment."""

    preset: str = "procedural"
    overrides: dict[str, Any] = field(default_factory=dict)
    beta: float = 10.0

    def config(self, alpha: float, seed: int) -> Any:
        from synknow import presets

        return presets.by_name(
            self.preset, **{**self.overrides, "alpha": alpha, "beta": self.beta, "seed": seed}
        )


@dataclass(frozen=True)
class BaseSweep:
    """The shared pre-training sweep: one corpus, several model sizes, periodic evaluation.
    Used by model-scaling (E2), acquisition (E3), finetune (E4), hallucination (E5) and
    structure-function (E6)."""

    alpha: float
    n_train: int
    n_test: int
    models: tuple[ModelSpec, ...]
    train: TrainSpec
    probe_pairs: int = 4000  # (entity, attribute) fact probes per evaluation (E2, E6)
    # Learning rates tried per model size, each for ``lr_sweep_epochs`` (the smallest budget);
    # the one with the lowest loss on ``n_val`` held-out documents trains that size. Empty: use
    # ``train.lr`` for every size (E2 then reports its learning-rate precondition as not met).
    lr_sweep: tuple[float, ...] = ()
    lr_sweep_epochs: float = 1.0
    n_val: int = 400
    # E2 only: repeats of every size on fresh corpora and initialisations (the base runs are the
    # first), the size trained twice as long to check saturation ("" = the largest), and the
    # exposures (training passes x documents) at which a fact counts as learnable.
    seeds: int = 1
    saturation_model: str = ""
    min_exposures: int = 100


@dataclass(frozen=True)
class DataScalingSettings:
    """E1, two legs on the same corpora (one corpus per seed; the last ``n_test`` documents of
    each, a corpus of ``bayes_n_max + n_test`` documents, are its test split).

    Bayes leg: the exact learning curve of ``bayes_corpora`` corpora per alpha at
    ``bayes_points`` log-spaced prefixes up to ``bayes_n_max``, fitted over ``n >= fit_min``.

    Transformer leg: for ``model_points`` log-spaced training-set sizes ``n`` from
    ``model_n_min`` to ``n_train``, a separate run of ``model`` on the first ``n`` documents of
    each of the first ``model_seeds`` corpora, with its own learning-rate schedule; every run
    gets the optimiser steps of ``train.epochs`` passes over ``n_train`` documents (so small
    ``n`` are repeated more), evaluated at ``train.n_evals`` log-spaced steps; early stopping
    on ``n_val`` held-out documents of the training distribution picks the reported point.
    ``corpus`` (``None``: the preset's) is the corpus family of both legs."""

    alphas: tuple[float, ...]
    n_train: int
    n_test: int
    model: ModelSpec
    train: TrainSpec
    bayes_n_max: int
    bayes_points: int = 14
    bayes_corpora: int = 16
    fit_min: int = 100
    model_points: int = 5
    model_n_min: int = 250
    model_seeds: int = 3
    n_val: int = 400
    corpus: CorpusSpec | None = None
    model_alphas: tuple[float, ...] | None = None  # the transformer leg's alphas (None: all)


@dataclass(frozen=True)
class FinetuneSettings:
    """E4: inject ``n_new`` new entities, each stated in ``repetitions`` documents, with and
    without ``replay`` (fraction of each batch drawn from the pre-training documents); then a
    question-answer format learned by fine-tuning on ``qa_train`` entities for ``qa_steps``."""

    repetitions: tuple[int, ...] = (1, 3, 10, 30, 100)
    n_new: int = 8
    replay: float = 0.5
    lr: float = 1e-3
    batch_size: int = 16
    max_steps: int = 400
    qa_train: int = 200
    qa_test: int = 200
    qa_steps: int = 150
    qa_eval_every: int = 10
    model: str = ""  # name of a base model; "" = the largest
    # The injection ladder (one run with entities at every repetition count, plus a control run
    # of the same steps without them): the share of each batch that is new documents.
    ladder_new_fraction: float = 0.25
    # The ladder on a capacity-bound and an unbound base model ("" = the smallest and the
    # largest base size); the unbound one must hold at least ``unbound_fill`` of the learnable
    # knowledge (E2's probes), else that comparison is "not tested".
    bound_model: str = ""
    unbound_model: str = ""
    unbound_fill: float = 0.9
    # Mixed QA pre-training: ``qa_mix_model`` ("" = the largest base size) pre-trained from
    # scratch on the training documents of the ``3 * qa_mix_entities`` most frequent entities
    # until the least frequent of them has ``qa_mix_exposures`` exposures, once with QA sequences
    # about a third of them as ``qa_mix_fraction`` of every batch and once without (documents in
    # their places); both are then QA-fine-tuned on another third and tested on the last third.
    # ``qa_mix_seeds`` corpora (0: skip).
    qa_mix_model: str = ""
    qa_mix_entities: int = 30
    qa_mix_exposures: float = 100.0
    qa_mix_fraction: float = 0.1
    qa_mix_seeds: int = 3


@dataclass(frozen=True)
class HallucinationSettings:
    """E5: value predictions on the test split of the base corpus by frequency bucket."""

    # Fallback "confident" threshold, used only when the test set lacks facts stated in training
    # or facts not stated there (otherwise measures.bayes_confidence_threshold decides).
    confident: float = 0.5
    reliability_bins: int = 10
    model: str = ""  # "" = the largest base model
    min_bucket_tokens: int = 200  # value tokens per frequency bucket (the balanced test set)
    candidate_docs: int = 8000  # held-out documents the balanced test set is chosen from
    # The alpha sweep: E1's corpora at every alpha, scored on this many held-out documents past
    # E1's validation documents (E1's transformer runs of the full n_train where it kept them).
    alpha_heldout_docs: int = 2000
    # Unseen names sharing name parts with a seen entity, and names sharing (almost) none: this
    # many entities per group, every attribute, values drawn from H_a.
    name_probe_entities: int = 100


@dataclass(frozen=True)
class StructureSettings:
    """E6: the structure function of the base training corpus and the base models on it."""

    bits_per_param: float = 2.0  # nominal storage capacity for the x-axis placement
    score_docs: int = 2000  # training documents scored to estimate each model's code length
    # The single-pass transformer whose prequential code length of the training documents is
    # set against the exact Bayes code length ("" = the smallest base size: one pass is cheap).
    prequential_model: str = ""
    prequential_batch: int = 16


@dataclass(frozen=True)
class AcquisitionSettings:
    """E3: the final models of every seed on a held-out set balanced over frequency buckets."""

    min_bucket_tokens: int = 200  # value tokens per frequency bucket (the balanced test set)
    candidate_docs: int = 8000  # held-out documents the balanced test set is chosen from
    level: float = 0.5  # knowledge accuracy from which a fact counts as known
    min_buckets: int = 5  # buckets a rank correlation over buckets needs
    # Syntax-versus-knowledge timing: the step at which a curve has covered this fraction of its
    # change (syntax loss: its drop; a bucket's accuracy on the balanced set: its gain), from at
    # least ``min_timing_evals`` evaluations per run.
    timing_fraction: float = 0.9
    min_timing_evals: int = 6


@dataclass(frozen=True)
class Preset:
    """Everything an experiment needs to know about its scale."""

    name: str
    description: str
    corpus: CorpusSpec
    base: BaseSweep
    data_scaling: DataScalingSettings
    finetune: FinetuneSettings = FinetuneSettings()
    hallucination: HallucinationSettings = HallucinationSettings()
    structure: StructureSettings = StructureSettings()
    seed: int = 1
    n_boot: int = 500
    device: str = "auto"
    threads: int | None = None
    acquisition: AcquisitionSettings = AcquisitionSettings()

    def to_dict(self) -> dict[str, Any]:
        return _io.jsonable(dataclasses.asdict(self))


# Equal-length templates make every document the same length (2 + m (L + J + 2) tokens), so
# documents pack into training windows with no padding when the context is a multiple of it.
_SMALL_CORPUS = CorpusSpec(
    preset="procedural",
    overrides={
        "n_attributes": 4,
        "pool_sizes": (24, 24, 24, 24),
        "attribute_pool": (0, 1, 2, 3),
        "name_parts": (80, 80, 300),
        "templates_per_attribute": 4,
        "template_length": (3, 3),
        "syntax_vocab": 40,
    },
    beta=10.0,
)
_SMALL_DOC = 34  # tokens per document of _SMALL_CORPUS
_SMALL_CORPUS_WIDE_NAMES = dataclasses.replace(
    _SMALL_CORPUS, overrides={**_SMALL_CORPUS.overrides, "name_parts": (100, 100, 800)}
)

# A corpus rich in knowledge per token, for model scaling where capacity must bind: 8 attributes
# sharing one pool of 256 values (8 bits per fact, one pool in the vocabulary), every attribute in
# every document, and a large beta (many entities of comparable frequency in the head, so most
# of the knowledge is seen often). tests/experiments/test_capacity.py checks the arithmetic.
_KNOWLEDGE_CORPUS = CorpusSpec(
    preset="procedural",
    overrides={
        "n_attributes": 8,
        "pool_sizes": (256,),
        "attribute_pool": (0,) * 8,
        "name_parts": (100, 100, 800),
        "templates_per_attribute": 4,
        "template_length": (3, 3),
        "syntax_vocab": 40,
    },
    beta=2000.0,
)
_KNOWLEDGE_DOC = 66  # tokens per document of _KNOWLEDGE_CORPUS

_MICRO = Preset(
    name="micro",
    description="seconds; for the test suite only (numbers are meaningless)",
    corpus=CorpusSpec(
        preset="procedural",
        overrides={
            "n_attributes": 2,
            "pool_sizes": (8, 8),
            "attribute_pool": (0, 1),
            "name_parts": (20, 20, 50),
            "templates_per_attribute": 2,
            "template_length": (2, 2),
            "syntax_vocab": 12,
        },
        beta=4.0,
    ),
    base=BaseSweep(
        alpha=0.5,
        n_train=150,
        n_test=40,
        models=(ModelSpec("d8", 1, 1, 8), ModelSpec("d16", 1, 2, 16)),
        train=TrainSpec(epochs=2, batch_size=8, context_length=64, n_evals=3, eval_docs=20),
        probe_pairs=100,
    ),
    data_scaling=DataScalingSettings(
        alphas=(0.3, 0.5, 0.7),
        n_train=160,
        n_test=40,
        model=ModelSpec("d8", 1, 1, 8),
        train=TrainSpec(epochs=1, batch_size=8, context_length=64, n_evals=3, eval_docs=20),
        bayes_n_max=400,
        bayes_points=8,
        bayes_corpora=3,
        fit_min=20,
        model_points=3,
        model_n_min=40,
        model_seeds=1,
        n_val=40,
    ),
    finetune=FinetuneSettings(
        repetitions=(1, 3),
        n_new=2,
        max_steps=6,
        batch_size=4,
        qa_train=10,
        qa_test=10,
        qa_steps=6,
        qa_eval_every=3,
    ),
    structure=StructureSettings(score_docs=50),
    n_boot=30,
    threads=1,
)

_CPU_TINY = Preset(
    name="cpu-tiny",
    description="a few minutes on 2 CPU cores: every experiment end to end, tiny models",
    corpus=_SMALL_CORPUS,
    base=BaseSweep(
        alpha=0.5,
        n_train=4000,
        n_test=400,
        models=(
            ModelSpec("d16", 2, 2, 16),
            ModelSpec("d32", 2, 2, 32),
            ModelSpec("d64", 2, 4, 64),
            ModelSpec("d96", 2, 4, 96),
        ),
        train=TrainSpec(
            epochs=6,
            batch_size=16,
            lr=3e-3,
            context_length=4 * _SMALL_DOC,
            n_evals=8,
            eval_docs=200,
        ),
        probe_pairs=2000,
        # The saturation check on the cheapest size keeps the demo short; capacity cannot bind
        # at this scale anyway (E2 is "not tested" here).
        saturation_model="d16",
    ),
    # The Bayes leg at full strength (16 corpora, 10^6 documents: under a minute per alpha);
    # the transformer leg with one seed only, so its verdict is "not tested" at this scale.
    data_scaling=DataScalingSettings(
        alphas=(0.3, 0.5, 0.7),
        n_train=4000,
        n_test=400,
        model=ModelSpec("d32", 2, 2, 32),
        train=TrainSpec(
            epochs=2,
            batch_size=16,
            lr=3e-3,
            context_length=4 * _SMALL_DOC,
            n_evals=4,
            eval_docs=400,
        ),
        bayes_n_max=1_000_000,
        bayes_points=25,
        bayes_corpora=16,
        model_points=5,
        model_n_min=250,
        model_seeds=1,
        n_val=400,
        corpus=_SMALL_CORPUS_WIDE_NAMES,
        model_alphas=(0.5,),
    ),
    # One corpus for the mixed-QA pre-training: each arm pre-trains the largest size from
    # scratch (about 2 minutes a corpus here), and the demo must stay a few minutes long.
    finetune=FinetuneSettings(max_steps=300, qa_steps=120, qa_mix_seeds=1),
    n_boot=400,
    # One thread: on a shared 2-core machine two torch threads contend with everything else
    # (measured 2-10x slower than one thread under load).
    threads=1,
)

# cpu-small's E2 corpus: like _KNOWLEDGE_CORPUS with a small vocabulary (CPU time grows with the
# vocabulary times the width): 8 attributes sharing a pool of 64 values, one-word templates,
# names 60 x 60 x 150: 353 tokens. 50 tokens per document.
_SMALL_KNOWLEDGE_CORPUS = CorpusSpec(
    preset="procedural",
    overrides={
        "n_attributes": 8,
        "pool_sizes": (64,),
        "attribute_pool": (0,) * 8,
        "name_parts": (60, 60, 150),
        "templates_per_attribute": 2,
        "template_length": (1, 1),
        "syntax_vocab": 16,
    },
    beta=1000.0,
)
_SMALL_KNOWLEDGE_DOC = 50

_CPU_SMALL = Preset(
    name="cpu-small",
    description=(
        "25 min on 2 CPU cores with E1 in a second process (measured: E1 20 min beside E2-E6 "
        "25 min; ~45 min in one process): E2 with capacity that binds on paper (5 sizes of "
        "1.6k-11k parameters, 1-4 layers, 3 seeds, a learning-rate sweep), E1 with 3 seeds"
    ),
    corpus=_SMALL_KNOWLEDGE_CORPUS,
    base=BaseSweep(
        alpha=0.5,
        n_train=1200,
        n_test=500,
        models=tuple(
            ModelSpec(f"L{layers}d{d}", layers, heads, d)
            for layers, heads, d in ((1, 1, 4), (1, 1, 6), (2, 1, 8), (2, 2, 12), (4, 2, 12))
        ),
        # 150 epochs of 1,200 documents: an entity seen once already gets 100 exposures, so all
        # ~960 entities (6.4e4 bits) are learnable, 2.86x the largest size's 2 x 11,256 bits.
        # One document per window: documents attend only to themselves, so a longer window
        # only adds masked-out attention work.
        train=TrainSpec(
            epochs=150,
            batch_size=64,
            lr=1e-2,
            context_length=_SMALL_KNOWLEDGE_DOC,
            n_evals=6,
            eval_docs=500,
        ),
        probe_pairs=4000,
        # Tiny models want large steps: in a 5-epoch trial 1e-2 beat 1e-3 and 3e-3 for the
        # largest size, and in the first full run 3e-2, the top of a (3e-3, 1e-2, 3e-2) grid,
        # won for every size; the grid is moved up so that it brackets the choice.
        lr_sweep=(1e-2, 3e-2, 1e-1),
        lr_sweep_epochs=10,
        n_val=400,
        seeds=3,
        min_exposures=100,
    ),
    # E1's transformer leg: 45 separate runs (3 alphas x 3 seeds x 5 n), each 1,000 steps of
    # 32 one-document windows; in trial runs at n = 1,000 the held-out loss reached its
    # minimum before the end (early stopping), at 2e-2 lower than at 1e-2. 16 log-spaced
    # evaluations: at n = 125 and 210 the minimum came at or before step 100, the first of 10
    # evenly spaced evaluations in the first full run.
    data_scaling=DataScalingSettings(
        alphas=(0.3, 0.5, 0.7),
        n_train=1000,
        n_test=400,
        model=ModelSpec("d16", 2, 2, 16),
        train=TrainSpec(
            epochs=32,
            batch_size=32,
            lr=2e-2,
            context_length=_SMALL_DOC,
            n_evals=16,
            eval_docs=400,
        ),
        bayes_n_max=1_000_000,
        bayes_points=25,
        bayes_corpora=16,
        model_points=5,
        model_n_min=125,
        model_seeds=3,
        n_val=400,
        corpus=_SMALL_CORPUS_WIDE_NAMES,
    ),
    finetune=FinetuneSettings(max_steps=300, qa_steps=120),
    n_boot=400,
    threads=1,
)

_GPU_SMALL = Preset(
    name="gpu-small",
    description=(
        "one GPU: E2 with capacity that binds (5 sizes of 24k-280k parameters, 3 seeds, a "
        "learning-rate sweep) and E1 with 3 seeds per n"
    ),
    corpus=_KNOWLEDGE_CORPUS,
    base=BaseSweep(
        alpha=0.5,
        n_train=300_000,
        n_test=2000,
        models=tuple(
            ModelSpec(f"d{d}", layers, heads, d)
            for layers, heads, d in ((1, 2, 16), (2, 2, 24), (2, 4, 40), (3, 4, 48), (4, 4, 64))
        ),
        train=TrainSpec(
            epochs=50,
            batch_size=256,
            lr=3e-3,
            context_length=4 * _KNOWLEDGE_DOC,
            n_evals=8,
            eval_docs=1000,
        ),
        probe_pairs=20000,
        lr_sweep=(1e-3, 3e-3, 1e-2),
        lr_sweep_epochs=5,
        n_val=2000,
        seeds=3,
        min_exposures=100,
    ),
    data_scaling=DataScalingSettings(
        alphas=(0.3, 0.5, 0.7),
        n_train=100_000,
        n_test=2000,
        model=ModelSpec("d128", 4, 4, 128),
        train=TrainSpec(
            epochs=3,
            batch_size=128,
            lr=2e-3,
            context_length=8 * _SMALL_DOC,
            n_evals=6,
            eval_docs=2000,
        ),
        bayes_n_max=2_000_000,
        bayes_points=25,
        bayes_corpora=16,
        model_points=5,
        model_n_min=3000,
        model_seeds=3,
        n_val=2000,
        corpus=_SMALL_CORPUS_WIDE_NAMES,
    ),
    finetune=FinetuneSettings(max_steps=1000, batch_size=32, qa_train=2000, qa_test=1000),
    structure=StructureSettings(score_docs=20000),
    n_boot=1000,
)

_GPU_FULL = Preset(
    name="gpu-full",
    description="the bios corpus at scale; models up to ~100M parameters (hours on one GPU)",
    corpus=CorpusSpec(preset="bios", overrides={}, beta=10.0),
    base=BaseSweep(
        alpha=0.7,
        n_train=2_000_000,
        n_test=5000,
        models=tuple(
            ModelSpec(name, *shape)
            for name, shape in (
                ("1m", (5, 4, 128)),
                ("5m", (6, 4, 256)),
                ("20m", (12, 6, 384)),
                ("50m", (16, 8, 512)),
                ("100m", (14, 12, 768)),
            )
        ),
        train=TrainSpec(
            epochs=20, batch_size=256, lr=1e-3, context_length=512, n_evals=16, eval_docs=2000
        ),
        probe_pairs=100_000,
    ),
    data_scaling=DataScalingSettings(
        alphas=(0.3, 0.5, 0.7),
        n_train=3_000_000,
        n_test=5000,
        model=ModelSpec("20m", 12, 6, 384),
        train=TrainSpec(
            epochs=1, batch_size=256, lr=1e-3, context_length=512, n_evals=8, eval_docs=5000
        ),
        bayes_n_max=20_000_000,
        bayes_points=24,
        bayes_corpora=16,
        model_points=5,
        model_n_min=100_000,
        model_seeds=3,
        n_val=5000,
    ),
    finetune=FinetuneSettings(max_steps=2000, batch_size=64, qa_train=5000, qa_test=2000),
    structure=StructureSettings(score_docs=50000),
    n_boot=1000,
)

PRESETS: dict[str, Preset] = {
    p.name: p for p in (_CPU_TINY, _CPU_SMALL, _GPU_SMALL, _GPU_FULL, _MICRO)
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; unknown names raise ``ValueError`` listing the valid ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None


def resolve_experiments(name: str) -> list[str]:
    """``"all"`` -> every experiment in report order; an experiment name -> itself."""
    if name == "all":
        return list(EXPERIMENTS)
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {', '.join(EXPERIMENTS)}, all")
    return [name]


def describe_presets() -> str:
    """One line per preset, for ``--help``."""
    return "\n".join(f"  {p.name:<10} {p.description}" for p in PRESETS.values())
