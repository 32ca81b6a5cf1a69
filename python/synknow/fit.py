"""Scaling-law fits with an offset: ``L(x) = E + A x^-gamma`` and ``L(N, P) = E + A N^-a + B P^-b``.

This module fits *losses*: curves that decay towards a floor ``E`` (the irreducible loss), so the
power law only holds for the excess ``L - E``, and ``E`` must be fitted with the exponent. That
needs a non-linear, robust fit with confidence intervals. (The corpus laws of
:mod:`synknow.stats`, Heaps and Zipf, have no offset: they are straight lines in log-log space and
fitted by ordinary least squares there.)

The method is "approach 3" of the Chinchilla paper (Hoffmann et al. 2022), stated in
docs/experiments.md, "Fits":

* parameters live in log space (``E = exp(e)``, ``A = exp(a)``), so the prediction is a
  log-sum-exp and stays positive;
* the objective is the Huber loss (``delta = 1e-3``) of the residuals ``log L_pred - log L_obs``,
  summed over the data points;
* it is minimised with L-BFGS from a grid of starting points, keeping the best optimum;
* confidence intervals come from the bootstrap (percentile intervals).

All starting points (and all bootstrap replicates) are optimised *together*: the L-BFGS below is
vectorised over independent problems, each with its own history and its own backtracking line
search, so a fit with a 100-point grid and 1000 bootstrap replicates takes well under a second in
plain numpy. ``tests/experiments/test_fit.py`` checks it against ``torch.optim.LBFGS`` on the same
objective.

>>> import numpy as np
>>> x = np.geomspace(1e2, 1e5, 12)
>>> fit = fit_scaling_law(x, 0.5 + 30.0 * x**-0.4, n_boot=0)
>>> round(fit.params["gamma"], 6), round(fit.params["E"], 6), round(fit.params["A"], 4)
(0.4, 0.5, 30.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "FitResult",
    "fit_scaling_law",
    "fit_joint_scaling_law",
    "fit_power_law",
    "fit_joint_power_law",
    "huber",
    "minimize_lbfgs_batched",
]

HUBER_DELTA = 1e-3


# ------------------------------------------------------------------------------------------------
# Objective


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """Huber loss of residuals ``r`` and its derivative, elementwise."""
    a = np.abs(r)
    quad = a <= delta
    value = np.where(quad, 0.5 * r * r, delta * (a - 0.5 * delta))
    grad = np.where(quad, r, delta * np.sign(r))
    return value, grad


class _PowerSumModel:
    """``log L = logsumexp_t(c_t - g_t * u_t, e)`` for T power terms and an optional constant.

    ``u`` holds the (centred) log inputs, shape (n, T). The parameter vector of one problem is
    ``[c_0, g_0, c_1, g_1, ..., (e)]``; ``e`` is present only when the constant is free.
    ``log_e_fixed`` is used when the constant is fixed (``-inf`` for a pure power law).
    """

    def __init__(
        self,
        u: np.ndarray,
        log_y: np.ndarray,
        weights: np.ndarray,
        *,
        free_e: bool,
        log_e_fixed: float = -math.inf,
        delta: float = HUBER_DELTA,
    ):
        self.u = u  # (n, T)
        self.log_y = log_y  # (n,), or (S, n) when every problem has its own targets
        self.weights = weights  # (S, n) or (1, n): multiplicities (case bootstrap) or ones
        self.free_e = free_e
        self.log_e_fixed = log_e_fixed
        self.delta = delta
        self.n_terms = u.shape[1]

    @property
    def n_params(self) -> int:
        return 2 * self.n_terms + (1 if self.free_e else 0)

    def log_predict(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Log prediction (S, n) and the softmax weights of the components (S, n, T+1)."""
        n_terms = self.n_terms
        c = params[:, 0 : 2 * n_terms : 2]  # (S, T)
        g = params[:, 1 : 2 * n_terms : 2]
        comps = c[:, None, :] - g[:, None, :] * self.u[None, :, :]  # (S, n, T)
        if self.free_e:
            e = np.broadcast_to(params[:, -1][:, None, None], comps.shape[:2] + (1,))
        else:
            e = np.full(comps.shape[:2] + (1,), self.log_e_fixed)
        comps = np.concatenate([comps, e], axis=2)
        top = comps.max(axis=2, keepdims=True)
        top = np.where(np.isfinite(top), top, 0.0)
        ex = np.exp(comps - top)
        total = ex.sum(axis=2, keepdims=True)
        return (np.log(total) + top)[:, :, 0], ex / total

    def __call__(self, params: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        log_y = self.log_y if self.log_y.ndim == 1 else self.log_y[rows]
        weights = self.weights if self.weights.shape[0] == 1 else self.weights[rows]
        with np.errstate(over="ignore", invalid="ignore"):
            log_pred, soft = self.log_predict(params)
            value, dvalue = huber(log_pred - log_y, self.delta)
            f = np.sum(weights * value, axis=1)
            wd = weights * dvalue  # (S, n)
            grad = np.empty_like(params)
            for t in range(self.n_terms):
                grad[:, 2 * t] = np.sum(wd * soft[:, :, t], axis=1)
                grad[:, 2 * t + 1] = -np.sum(wd * soft[:, :, t] * self.u[None, :, t], axis=1)
            if self.free_e:
                grad[:, -1] = np.sum(wd * soft[:, :, -1], axis=1)
        bad = ~np.isfinite(f) | ~np.all(np.isfinite(grad), axis=1)
        f = np.where(bad, np.inf, f)
        grad[bad] = 0.0
        return f, grad


# ------------------------------------------------------------------------------------------------
# Batched L-BFGS


def minimize_lbfgs_batched(
    fun: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    x0: np.ndarray,
    *,
    max_iter: int = 1000,
    history: int = 10,
    gtol: float = 1e-12,
    ftol: float = 1e-15,
    max_line_search: int = 50,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise S independent problems at once with L-BFGS and a backtracking line search.

    ``fun(X, rows)`` takes parameters of shape (len(rows), P) for the problems ``rows`` (indices
    into the S problems) and returns their objective values and gradients (len(rows), P).
    Returns ``(X, f, converged)``: a problem is converged when its gradient's max-norm is below
    ``gtol``, its objective stopped decreasing (relative change below ``ftol`` twice in a row),
    or no step along the search direction decreases it (a numerical minimum). Only the problems
    still running are evaluated, so the cost falls as they converge.
    """
    x = np.array(x0, dtype=np.float64, copy=True)
    if x.ndim != 2:
        raise ValueError(f"x0 must have shape (problems, parameters), got {x.shape}")
    n_prob, n_par = x.shape
    f, g = fun(x, np.arange(n_prob))
    s_hist = np.zeros((history, n_prob, n_par))
    y_hist = np.zeros((history, n_prob, n_par))
    rho = np.zeros((history, n_prob))  # 0 marks an empty or rejected pair
    slot = 0
    active = np.isfinite(f)
    converged = np.zeros(n_prob, dtype=bool)
    stalls = np.zeros(n_prob, dtype=int)
    for _ in range(max_iter):
        small_grad = np.max(np.abs(g), axis=1) <= gtol
        converged |= active & small_grad
        active &= ~small_grad
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        xa, fa, ga = x[rows], f[rows], g[rows]
        sh, yh, rh = s_hist[:, rows], y_hist[:, rows], rho[:, rows]
        # Two-loop recursion, newest pair first.
        q = ga.copy()
        coeffs = np.zeros((history, rows.size))
        order = [(slot - 1 - j) % history for j in range(history)]
        for h in order:
            coeffs[h] = rh[h] * np.sum(sh[h] * q, axis=1)
            q -= coeffs[h][:, None] * yh[h]
        newest = order[0]
        yy = np.sum(yh[newest] ** 2, axis=1)
        sy = np.sum(sh[newest] * yh[newest], axis=1)
        gnorm = np.sqrt(np.sum(ga * ga, axis=1))
        # Without a curvature pair the first step has at most unit length.
        scale = np.where(
            rh[newest] > 0, sy / np.where(yy > 0, yy, 1.0), 1.0 / np.maximum(gnorm, 1.0)
        )
        r = scale[:, None] * q
        for h in reversed(order):
            b = rh[h] * np.sum(yh[h] * r, axis=1)
            r += sh[h] * (coeffs[h] - b)[:, None]
        d = -r
        slope = np.sum(ga * d, axis=1)
        not_descent = ~(slope < 0)
        if not_descent.any():  # fall back to steepest descent and forget the history
            d[not_descent] = -ga[not_descent] / np.maximum(gnorm[not_descent], 1.0)[:, None]
            rho[:, rows[not_descent]] = 0.0
            slope = np.sum(ga * d, axis=1)
        # Backtracking (Armijo) line search, per problem.
        step = np.ones(rows.size)
        pending = np.ones(rows.size, dtype=bool)
        x_new, f_new, g_new = xa.copy(), fa.copy(), ga.copy()
        for _ in range(max_line_search):
            idx = np.flatnonzero(pending)
            if idx.size == 0:
                break
            trial = xa[idx] + step[idx, None] * d[idx]
            f_t, g_t = fun(trial, rows[idx])
            ok = np.isfinite(f_t) & (f_t <= fa[idx] + 1e-4 * step[idx] * slope[idx])
            acc = idx[ok]
            x_new[acc], f_new[acc], g_new[acc] = trial[ok], f_t[ok], g_t[ok]
            pending[acc] = False
            step[pending] *= 0.5
        # No decrease along d: a numerical minimum.
        converged[rows[pending]] = True
        active[rows[pending]] = False
        moved = ~pending
        s = x_new - xa
        yv = g_new - ga
        sy_new = np.sum(s * yv, axis=1)
        curvature_ok = moved & (sy_new > 1e-12 * np.sqrt(np.sum(s * s, 1) * np.sum(yv * yv, 1)))
        s_hist[slot, rows] = np.where(moved[:, None], s, 0.0)
        y_hist[slot, rows] = np.where(moved[:, None], yv, 0.0)
        rho[slot, rows] = np.where(curvature_ok, 1.0 / np.where(curvature_ok, sy_new, 1.0), 0.0)
        slot = (slot + 1) % history
        tiny = moved & (fa - f_new <= ftol * np.maximum(np.abs(f_new), 1e-300))
        stalls[rows] = np.where(tiny, stalls[rows] + 1, 0)
        x[rows], f[rows], g[rows] = x_new, f_new, g_new
        done = rows[stalls[rows] >= 2]
        converged[done] = True
        active[done] = False
    return x, f, converged


# ------------------------------------------------------------------------------------------------
# Results


@dataclass
class FitResult:
    """A fitted scaling law, its bootstrap confidence intervals, and how it was obtained.

    ``params`` maps parameter names to values (``E, A, gamma`` for :func:`fit_scaling_law`;
    ``E, A, a, B, b`` for :func:`fit_joint_scaling_law`); ``ci`` maps them to ``(low, high)``
    percentile intervals at ``level`` (empty when ``n_boot == 0``); ``stderr`` holds the
    bootstrap standard deviations. ``loss`` is the Huber objective at the optimum.
    """

    model: str
    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    stderr: dict[str, float]
    level: float
    loss: float
    n_points: int
    n_boot: int
    n_boot_converged: int
    converged: bool
    fixed: dict[str, float] = field(default_factory=dict)
    bootstrap: str = "residual"

    def predict(self, *inputs: np.ndarray | float) -> np.ndarray:
        """Evaluate the fitted law at ``x`` (or at ``N, P`` for the joint form)."""
        p = self.params
        if self.model == "power_law":
            if len(inputs) != 1:
                raise ValueError("a power-law fit takes one input array")
            x = np.asarray(inputs[0], dtype=np.float64)
            return p["E"] + p["A"] * x ** -p["gamma"]
        if len(inputs) != 2:
            raise ValueError("a joint fit takes two input arrays (N, P)")
        n, pp = (np.asarray(v, dtype=np.float64) for v in inputs)
        return p["E"] + p["A"] * n ** -p["a"] + p["B"] * pp ** -p["b"]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary (non-finite numbers become ``None``)."""

        def num(v: float) -> float | None:
            return float(v) if math.isfinite(v) else None

        return {
            "model": self.model,
            "formula": (
                "L(x) = E + A * x**-gamma"
                if self.model == "power_law"
                else "L(N, P) = E + A * N**-a + B * P**-b"
            ),
            "params": {k: num(v) for k, v in self.params.items()},
            "ci": {k: [num(lo), num(hi)] for k, (lo, hi) in self.ci.items()},
            "stderr": {k: num(v) for k, v in self.stderr.items()},
            "level": self.level,
            "loss": num(self.loss),
            "n_points": self.n_points,
            "n_boot": self.n_boot,
            "n_boot_converged": self.n_boot_converged,
            "converged": self.converged,
            "fixed": {k: float(v) for k, v in self.fixed.items()},
            "bootstrap": self.bootstrap,
            "method": "Huber(delta=1e-3) on log residuals, batched L-BFGS from a grid of starts",
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitResult:
        def num(v: float | None) -> float:
            return math.nan if v is None else float(v)

        return cls(
            model=d["model"],
            params={k: num(v) for k, v in d["params"].items()},
            ci={k: (num(lo), num(hi)) for k, (lo, hi) in d["ci"].items()},
            stderr={k: num(v) for k, v in d["stderr"].items()},
            level=float(d["level"]),
            loss=num(d["loss"]),
            n_points=int(d["n_points"]),
            n_boot=int(d["n_boot"]),
            n_boot_converged=int(d["n_boot_converged"]),
            converged=bool(d["converged"]),
            fixed={k: float(v) for k, v in d.get("fixed", {}).items()},
            bootstrap=d.get("bootstrap", "residual"),
        )

    def describe(self, name: str, digits: int = 3) -> str:
        """``"0.412 [0.371, 0.455]"``: a parameter with its interval, for reports."""
        v = self.params[name]
        if name in self.ci:
            lo, hi = self.ci[name]
            return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
        return f"{v:.{digits}f}"


# ------------------------------------------------------------------------------------------------
# Fitting


def _as_positive(name: str, v: Sequence[float] | np.ndarray) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values")
    if np.any(a <= 0):
        raise ValueError(f"{name} must be positive (the fit works on logarithms)")
    return a


def _check_common(n_points: int, n_params: int, n_boot: int, level: float, bootstrap: str) -> None:
    if n_points < n_params + 1:
        raise ValueError(
            f"need at least {n_params + 1} data points to fit {n_params} parameters, got {n_points}"
        )
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if bootstrap not in ("residual", "cases"):
        raise ValueError(f"bootstrap must be 'residual' or 'cases', got {bootstrap!r}")


def _check_fixed_e(fixed_e: float | None, ys: np.ndarray) -> None:
    if fixed_e is None:
        return
    if not math.isfinite(fixed_e) or fixed_e < 0:
        raise ValueError(f"fixed_E must be a finite number >= 0, got {fixed_e}")
    if fixed_e >= ys.min():
        raise ValueError(f"fixed_E = {fixed_e} is not below every y (min y = {ys.min()})")


def _solve_grid(
    u: np.ndarray,
    log_y: np.ndarray,
    starts: np.ndarray,
    *,
    free_e: bool,
    log_e_fixed: float,
    delta: float,
) -> tuple[np.ndarray, float, bool]:
    """L-BFGS from every start (rows of ``starts``); returns the best optimum.

    Every start first gets a short run; the few best then run to convergence. (Starts that
    drift towards a boundary, e.g. ``E -> 0``, would otherwise dominate the running time.)
    """
    model = _PowerSumModel(
        u, log_y, np.ones((1, log_y.size)), free_e=free_e, log_e_fixed=log_e_fixed, delta=delta
    )
    x, f, _ = minimize_lbfgs_batched(model, starts, max_iter=_SCREEN_ITERATIONS)
    order = np.argsort(np.where(np.isfinite(f), f, np.inf))[:_POLISHED_STARTS]
    x, f, conv = minimize_lbfgs_batched(model, x[order], max_iter=_POLISH_ITERATIONS)
    best = int(np.argmin(np.where(np.isfinite(f), f, np.inf)))
    return x[best], float(f[best]), bool(conv[best])


_SCREEN_ITERATIONS = 150
_POLISHED_STARTS = 4
_POLISH_ITERATIONS = 5000


def _bootstrap_weights(
    rng: np.random.Generator, n_boot: int, n_points: int
) -> np.ndarray:  # multiplicities of a case resample
    idx = rng.integers(0, n_points, size=(n_boot, n_points))
    w = np.zeros((n_boot, n_points))
    np.add.at(w, (np.arange(n_boot)[:, None], idx), 1.0)
    return w


def _fit_generic(
    model_name: str,
    names: list[str],
    u: np.ndarray,
    shift: np.ndarray,
    y: np.ndarray,
    starts: np.ndarray,
    *,
    free_e: bool,
    fixed_e: float | None,
    n_boot: int,
    level: float,
    seed: int,
    bootstrap: str,
    delta: float,
) -> FitResult:
    log_y = np.log(y)
    log_e_fixed = -math.inf if fixed_e in (None, 0.0) else math.log(fixed_e)
    kw: dict[str, Any] = {"free_e": free_e, "log_e_fixed": log_e_fixed, "delta": delta}
    theta, loss, conv = _solve_grid(u, log_y, starts, **kw)
    n_terms = u.shape[1]

    def to_params(th: np.ndarray) -> np.ndarray:
        """Internal (centred, logged) parameters -> reported ones, one row per fit."""
        th = np.atleast_2d(th)
        out = []
        for t in range(n_terms):
            c, gexp = th[:, 2 * t], th[:, 2 * t + 1]
            out += [np.exp(c + gexp * shift[t]), gexp]  # undo the centring of log x
        e = np.exp(th[:, -1]) if free_e else np.full(th.shape[0], fixed_e or 0.0)
        return np.column_stack([e] + out)

    point = to_params(theta)[0]
    ci: dict[str, tuple[float, float]] = {}
    stderr: dict[str, float] = {}
    n_boot_conv = 0
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        # Every replicate starts from the full-data optimum (its data are close to the original).
        if bootstrap == "cases":
            weights = _bootstrap_weights(rng, n_boot, y.size)
            model = _PowerSumModel(u, log_y, weights, **kw)
            boot, _, bconv = minimize_lbfgs_batched(model, np.tile(theta, (n_boot, 1)))
        else:
            # Residual bootstrap on the log scale (designs are fixed, e.g. log-spaced n), with
            # residuals inflated by sqrt(n / (n - p)) for the degrees of freedom used by the fit.
            fitted = _PowerSumModel(u, log_y, np.ones((1, y.size)), **kw).log_predict(
                theta[None, :]
            )[0][0]
            resid = log_y - fitted
            resid = (resid - resid.mean()) * math.sqrt(y.size / max(y.size - theta.size, 1))
            draws = resid[rng.integers(0, y.size, size=(n_boot, y.size))]
            model = _PowerSumModel(u, fitted[None, :] + draws, np.ones((1, y.size)), **kw)
            boot, _, bconv = minimize_lbfgs_batched(model, np.tile(theta, (n_boot, 1)))
        ok = bconv & np.all(np.isfinite(boot), axis=1)
        n_boot_conv = int(ok.sum())
        if n_boot_conv >= 2:
            boot_params = to_params(boot[ok])
            tail = 100 * (1 - level) / 2
            lo = np.percentile(boot_params, tail, axis=0)
            hi = np.percentile(boot_params, 100 - tail, axis=0)
            sd = boot_params.std(axis=0, ddof=1)
            for i, name in enumerate(names):
                if name == "E" and not free_e:
                    continue
                ci[name] = (float(lo[i]), float(hi[i]))
                stderr[name] = float(sd[i])
    fixed = {} if free_e else {"E": float(fixed_e or 0.0)}
    return FitResult(
        model=model_name,
        params={name: float(v) for name, v in zip(names, point, strict=True)},
        ci=ci,
        stderr=stderr,
        level=level,
        loss=loss,
        n_points=int(y.size),
        n_boot=n_boot,
        n_boot_converged=n_boot_conv,
        converged=conv,
        fixed=fixed,
        bootstrap=bootstrap,
    )


def _grid_starts(
    u: np.ndarray, y: np.ndarray, *, free_e: bool, fixed_e: float | None, exps: Sequence[float]
) -> np.ndarray:
    """Chinchilla-style grid: constant as a fraction of min(y), exponents on a grid, and each
    coefficient set so the term alone accounts for its share of ``y - E`` at the centre."""
    y_min = float(y.min())
    e_fracs = [0.0, 0.3, 0.6, 0.8, 0.9, 0.97] if free_e else [None]
    n_terms = u.shape[1]
    rows = []
    for frac in e_fracs:
        e_val = (fixed_e or 0.0) if frac is None else frac * y_min
        excess = np.maximum(y - e_val, 1e-6 * y_min)
        # log of the geometric mean excess: the term's value at the centre of log x (u = 0)
        c_centre = float(np.mean(np.log(excess))) - math.log(n_terms)
        for combo in (
            np.array(np.meshgrid(*([exps] * n_terms), indexing="ij")).reshape(n_terms, -1).T
        ):
            for c_offset in (-1.0, 0.0, 1.0):
                row = []
                for t in range(n_terms):
                    row += [c_centre + c_offset, float(combo[t])]
                if free_e:
                    row.append(math.log(max(e_val, 1e-3 * y_min)))
                rows.append(row)
    return np.array(rows)


def fit_scaling_law(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    fixed_E: float | None = None,
    n_boot: int = 500,
    level: float = 0.95,
    seed: int = 0,
    bootstrap: str = "residual",
    delta: float = HUBER_DELTA,
) -> FitResult:
    """Fit ``y = E + A x^-gamma`` (Huber loss on log residuals, L-BFGS from a grid of starts).

    ``fixed_E`` fixes the constant (``0`` gives a pure power law ``A x^-gamma``); otherwise it is
    fitted and must be positive. ``n_boot`` bootstrap replicates give ``level`` percentile
    intervals: ``bootstrap="residual"`` resamples the log residuals of the fit onto the fitted
    curve (right for designed, e.g. log-spaced, inputs), ``"cases"`` resamples data points.

    >>> import numpy as np
    >>> x = np.geomspace(10, 1e4, 10)
    >>> fit_scaling_law(x, 3.0 * x**-0.5, fixed_E=0, n_boot=0).params["gamma"]  # doctest: +ELLIPSIS
    0.5...
    """
    xs = _as_positive("x", x)
    ys = _as_positive("y", y)
    if xs.size != ys.size:
        raise ValueError(f"x and y differ in length ({xs.size} vs {ys.size})")
    _check_fixed_e(fixed_E, ys)
    free_e = fixed_E is None
    _check_common(xs.size, 3 if free_e else 2, n_boot, level, bootstrap)
    lx = np.log(xs)
    shift = np.array([lx.mean()])
    u = (lx - shift)[:, None]
    exps = [0.05, 0.15, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5]
    starts = _grid_starts(u, ys, free_e=free_e, fixed_e=fixed_E, exps=exps)
    return _fit_generic(
        "power_law",
        ["E", "A", "gamma"],
        u,
        shift,
        ys,
        starts,
        free_e=free_e,
        fixed_e=fixed_E,
        n_boot=n_boot,
        level=level,
        seed=seed,
        bootstrap=bootstrap,
        delta=delta,
    )


def fit_joint_scaling_law(
    n: Sequence[float] | np.ndarray,
    p: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    fixed_E: float | None = None,
    n_boot: int = 500,
    level: float = 0.95,
    seed: int = 0,
    bootstrap: str = "residual",
    delta: float = HUBER_DELTA,
) -> FitResult:
    """Fit ``y = E + A n^-a + B p^-b`` (e.g. data size ``n`` and parameter count ``p``).

    Same objective, optimiser and bootstrap as :func:`fit_scaling_law`.
    """
    ns = _as_positive("n", n)
    ps = _as_positive("p", p)
    ys = _as_positive("y", y)
    if not ns.size == ps.size == ys.size:
        raise ValueError(f"n, p and y differ in length ({ns.size}, {ps.size}, {ys.size})")
    _check_fixed_e(fixed_E, ys)
    free_e = fixed_E is None
    _check_common(ys.size, 5 if free_e else 4, n_boot, level, bootstrap)
    lu = np.column_stack([np.log(ns), np.log(ps)])
    shift = lu.mean(axis=0)
    u = lu - shift
    exps = [0.1, 0.3, 0.6, 1.0, 1.6]
    starts = _grid_starts(u, ys, free_e=free_e, fixed_e=fixed_E, exps=exps)
    fit = _fit_generic(
        "joint_power_law",
        ["E", "A", "a", "B", "b"],
        u,
        shift,
        ys,
        starts,
        free_e=free_e,
        fixed_e=fixed_E,
        n_boot=n_boot,
        level=level,
        seed=seed,
        bootstrap=bootstrap,
        delta=delta,
    )
    return fit


# The names before the split of "power-law fits" into stats (log-log lines) and fit (scaling laws
# with an offset); the experiments and saved scripts use them.
fit_power_law = fit_scaling_law
fit_joint_power_law = fit_joint_scaling_law
