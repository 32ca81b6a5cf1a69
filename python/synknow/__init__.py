"""synknow: Syntax-Knowledge corpora, exact Bayesian code lengths and scaling experiments.

Implements the Syntax-Knowledge model of Pan, Wang & Li, "Understanding LLM Behaviors via
Compression" (NeurIPS 2025): a parametric syntax model plus a Pitman-Yor CRP knowledge model.

>>> import synknow
>>> corpus = synknow.sample(synknow.presets.bios(alpha=0.6), 1000, seed=7)
>>> corpus.tokens.dtype.name, corpus.n_docs
('uint16', 1000)
"""

from synknow import presets, theory
from synknow._core import __version__
from synknow.codelength import (
    BayesCurve,
    CodeLengths,
    bayes_curve,
    closed_form_per_doc,
    closed_form_total,
    code_lengths,
)
from synknow.config import SyntaxKnowledgeConfig
from synknow.corpus import ROLE_NAMES, Corpus, CorpusError, Vocab, generate, load_corpus, sample
from synknow.hf import evaluate_model
from synknow.stream import Sampler
from synknow.structure import StructureFunction, structure_function

__all__ = [
    "__version__",
    "Corpus",
    "CorpusError",
    "ROLE_NAMES",
    "Sampler",
    "SyntaxKnowledgeConfig",
    "Vocab",
    "generate",
    "load_corpus",
    "presets",
    "sample",
    "BayesCurve",
    "CodeLengths",
    "StructureFunction",
    "bayes_curve",
    "closed_form_per_doc",
    "closed_form_total",
    "code_lengths",
    "evaluate_model",
    "structure_function",
    "theory",
]
