"""A small GPT: pre-norm blocks, rotary positions, causal scaled-dot-product attention, GELU MLP.

The forward pass returns hidden states, not logits: the loss goes through
``synknow_kernels.linear_cross_entropy``, which streams the output head over the vocabulary so the
``(tokens, vocab)`` logit matrix never exists.

>>> import torch
>>> from synknow.train.config import ModelConfig
>>> model = GPT(ModelConfig(size="tiny", context_length=16).resolved(vocab_size=100))
>>> hidden = model(torch.randint(0, 100, (2, 16)))
>>> tuple(hidden.shape)
(2, 16, 48)
>>> loss = model.loss(hidden, torch.randint(0, 100, (2, 16)))
>>> abs(loss.item() - math.log(100)) < 0.5  # near-uniform prediction at initialisation
True
"""

from __future__ import annotations

import math
import warnings
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from synknow.train.config import ModelConfig

__all__ = [
    "GPT",
    "param_count",
    "flops_per_token",
    "kernels",
    "linear_cross_entropy",
    "chunked_linear_cross_entropy",
]


def _import_kernels() -> ModuleType | None:
    """The installed ``synknow_kernels`` package (``pip install -e kernels/`` in a checkout),
    or None: the loss and the evaluation then use their chunked PyTorch forms."""
    try:
        import synknow_kernels
    except ImportError:
        return None
    return synknow_kernels


kernels: ModuleType | None = _import_kernels()
"""The ``synknow_kernels`` module, or ``None`` when it is not installed (PyTorch fallbacks)."""

_fallback_announced = False


def announce_fallback(impl: str) -> None:
    """Without the kernels package: an error for an explicit Triton request, else a one-time
    warning that the (same-result, slower) PyTorch fallback is in use."""
    global _fallback_announced
    if impl == "triton":
        raise ValueError(
            "impl='triton' (run.loss_impl) needs the synknow_kernels package; install it "
            "(pip install -e kernels/ in a checkout) or use impl='auto' or 'torch'"
        )
    if not _fallback_announced:
        _fallback_announced = True
        warnings.warn(
            "synknow_kernels is not installed: using the chunked PyTorch loss (same result, "
            "slower on GPUs); install it with pip install -e kernels/",
            RuntimeWarning,
            stacklevel=3,
        )


def chunked_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    chunk_tokens: int = 4096,
) -> torch.Tensor:
    """Cross-entropy of ``hidden @ weight.T`` in token chunks (at most ``chunk_tokens x V``
    logits alive, recomputed in the backward by checkpointing): the fallback used when
    ``synknow_kernels`` is missing."""
    from torch.utils.checkpoint import checkpoint

    h = hidden.reshape(-1, hidden.shape[-1])
    t = targets.reshape(-1)

    def chunk_loss(hc: torch.Tensor, tc: torch.Tensor) -> torch.Tensor:
        logits = (hc @ weight.t()).float()
        return F.cross_entropy(logits, tc, ignore_index=ignore_index, reduction="none")

    parts = [
        checkpoint(
            chunk_loss, h[i : i + chunk_tokens], t[i : i + chunk_tokens], use_reentrant=False
        )
        for i in range(0, h.shape[0], chunk_tokens)
    ]
    loss = torch.cat(parts) if parts else h.new_zeros((0,), dtype=torch.float32)
    if reduction == "none":
        return loss.reshape(targets.shape)
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (t != ignore_index).sum().clamp_min(1)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    ignore_index: int = -100,
    reduction: str = "mean",
    impl: str = "auto",
) -> torch.Tensor:
    """The fused loss of ``synknow_kernels`` (or :func:`chunked_linear_cross_entropy`)."""
    if kernels is not None:
        return kernels.linear_cross_entropy(
            hidden, weight, targets, ignore_index=ignore_index, reduction=reduction, impl=impl
        )
    announce_fallback(impl)
    return chunked_linear_cross_entropy(
        hidden, weight, targets, ignore_index=ignore_index, reduction=reduction
    )


class Rotary(nn.Module):
    """Rotary position embedding (rotate-half form) with the tables precomputed to the context."""

    cos: torch.Tensor  # buffers, declared for the type checker
    sin: torch.Tensor

    def __init__(self, head_dim: int, context_length: int, base: float):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        angles = torch.outer(torch.arange(context_length, dtype=torch.float64), inv_freq)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)

    def tables(self, positions: torch.Tensor | None, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin)`` broadcastable to ``(B, H, T, head_dim / 2)``."""
        if positions is None:
            return self.cos[:t], self.sin[:t]
        return self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


def _norm(cfg: ModelConfig) -> nn.Module:
    assert cfg.d_model is not None
    if cfg.norm == "rmsnorm":
        return nn.RMSNorm(cfg.d_model, eps=1e-6)
    return nn.LayerNorm(cfg.d_model, bias=False)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.d_model is not None and cfg.n_head is not None
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, d // self.n_head).permute(2, 0, 3, 1, 4)
        q, k = _rotate(q, *rope), _rotate(k, *rope)
        y = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=mask is None,
            dropout_p=self.dropout if self.training else 0.0,
        )
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.d_model is not None and cfg.d_mlp is not None
        self.up = nn.Linear(cfg.d_model, cfg.d_mlp, bias=False)
        self.proj = nn.Linear(cfg.d_mlp, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.up(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.norm1 = _norm(cfg)
        self.attn = Attention(cfg)
        self.norm2 = _norm(cfg)
        self.mlp = MLP(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), rope, mask))
        return x + self.drop(self.mlp(self.norm2(x)))


class GPT(nn.Module):
    """Decoder-only transformer sized by a resolved :class:`ModelConfig`.

    ``forward(tokens, positions=None, segments=None)`` returns the final normed hidden states
    ``(B, T, d_model)``. ``positions`` (``(B, T)`` ints) override ``0..T-1`` for the rotary
    embedding; ``segments`` (``(B, T)`` ints) restrict attention to tokens with the same segment
    id (one id per packed document), on top of causality.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size is None or cfg.n_layer is None or cfg.d_model is None:
            raise ValueError("GPT needs a resolved ModelConfig (call cfg.resolved(vocab_size))")
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm_f = _norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        self.rotary = Rotary(cfg.head_dim, cfg.context_length, cfg.rope_base)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """N(0, init_std) weights; residual-branch outputs scaled by ``1/sqrt(2 n_layer)`` so the
        residual stream's variance does not grow with depth (GPT-2)."""
        std = self.config.init_std
        assert self.config.n_layer is not None
        for name, p in self.named_parameters():
            if p.dim() < 2:
                continue  # norm gains stay at 1
            scale = 1.0 / math.sqrt(2 * self.config.n_layer) if name.endswith("proj.weight") else 1
            nn.init.normal_(p, mean=0.0, std=std * scale)

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor | None = None,
        segments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, t = tokens.shape
        if t > self.config.context_length:
            raise ValueError(
                f"sequence length {t} exceeds the context length {self.config.context_length}"
            )
        rope = self.rotary.tables(positions, t)
        mask = None
        if segments is not None:
            causal = torch.ones(t, t, dtype=torch.bool, device=tokens.device).tril()
            mask = (segments[:, :, None] == segments[:, None, :]) & causal
            mask = mask.unsqueeze(1)  # (B, 1, T, T): one mask for every head
        x = self.drop(self.tok_emb(tokens))
        for block in self.blocks:
            x = block(x, rope, mask)
        return self.norm_f(x)

    @property
    def head_weight(self) -> torch.Tensor:
        return self.lm_head.weight

    def loss(
        self,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        *,
        reduction: str = "mean",
        impl: str = "auto",
    ) -> torch.Tensor:
        """Fused cross-entropy (nats) of the output head on ``hidden``; ``-100`` targets ignored.

        Under autocast the hidden states and head weight are cast to the autocast dtype first
        (the fused op takes one dtype and is not autocast-aware).
        """
        weight = self.head_weight
        if torch.is_autocast_enabled(hidden.device.type):
            dtype = torch.get_autocast_dtype(hidden.device.type)
            hidden, weight = hidden.to(dtype), weight.to(dtype)
        elif hidden.dtype != weight.dtype:
            hidden = hidden.to(weight.dtype)
        return linear_cross_entropy(hidden, weight, targets, reduction=reduction, impl=impl)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Full logits (for references and small evaluations only)."""
        return hidden.to(self.head_weight.dtype) @ self.head_weight.t()


def param_count(model: GPT, with_embeddings: bool = True) -> int:
    """Parameters, counting a tied embedding/head matrix once. ``with_embeddings=False`` leaves
    out the token embedding and the output head (the vocabulary-sized matrices, as in the
    scaling-law literature's non-embedding count)."""
    seen: set[int] = set()
    total = 0
    vocab_sized = {id(model.tok_emb.weight), id(model.lm_head.weight)}
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        if not with_embeddings and id(p) in vocab_sized:
            continue
        total += p.numel()
    return total


def flops_per_token(cfg: ModelConfig, *, attention: bool = True) -> float:
    """Training FLOPs per token: ``6 N + 12 n_layer d_model T`` (PaLM, appendix B).

    ``N`` counts the weights that take part in matrix multiplies: every non-embedding weight
    plus the output head ``V x d_model`` (the input embedding is a lookup). The attention term
    counts ``QK^T`` and ``AV`` over the full context ``T = context_length`` (forward and
    backward), ignoring the causal or per-document masks, as is the MFU convention.
    """
    assert cfg.n_layer is not None and cfg.d_model is not None and cfg.d_mlp is not None
    assert cfg.vocab_size is not None
    d, layers = cfg.d_model, cfg.n_layer
    matmul_params = layers * (4 * d * d + 2 * d * cfg.d_mlp) + cfg.vocab_size * d
    flops = 6.0 * matmul_params
    if attention:
        flops += 12.0 * layers * d * cfg.context_length
    return flops
