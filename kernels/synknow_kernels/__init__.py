"""synknow-kernels: fused linear cross-entropy, cross-entropy and per-token evaluation.

Triton kernels for CUDA with chunked pure-PyTorch references that double as the CPU fallback.
See ``docs/kernels.md`` in the synknow repository for semantics, design and benchmarks.
"""

from ._dispatch import ENV_VAR, HAS_TRITON
from .cross_entropy import cross_entropy
from .linear_cross_entropy import linear_cross_entropy
from .reference import TokenEvalStats
from .token_eval import token_eval

__all__ = [
    "ENV_VAR",
    "HAS_TRITON",
    "TokenEvalStats",
    "cross_entropy",
    "linear_cross_entropy",
    "token_eval",
]
__version__ = "0.1.0"
