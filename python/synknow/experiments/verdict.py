"""One verdict type for every experiment: whether the measurement agrees with the claim, from
the claim's checks, and whether the set-up could test the claim at all (its preconditions).

A verdict's status is one of :data:`STATUSES`:

* ``"not tested"`` when any precondition fails (for example "capacity binds" or "the runs
  converged"): the numbers then say nothing about the claim, whatever the checks say;
* otherwise, for a verdict made of checks (:meth:`Verdict.from_checks`), ``"agrees"`` when every
  check holds, ``"partly agrees"`` when some do, ``"does not agree"`` when none does, and
  ``"inconclusive"`` when nothing could be checked;
* or a status given by the experiment for a graded comparison (a fitted exponent against its
  theory value, see :meth:`Verdict.graded`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["STATUSES", "NOT_TESTED", "Precondition", "Verdict"]

NOT_TESTED = "not tested"
STATUSES = ("agrees", "partly agrees", "does not agree", "inconclusive", NOT_TESTED)


@dataclass(frozen=True)
class Precondition:
    """What the claim needs from the set-up, with the value measured in this run."""

    name: str
    measured: Any
    required: str
    met: bool

    @classmethod
    def at_least(cls, name: str, measured: float, minimum: float, unit: str = "") -> Precondition:
        """``measured >= minimum`` (a non-finite or missing measurement is not met)."""
        try:
            ok = measured is not None and float(measured) >= minimum
        except (TypeError, ValueError):
            ok = False
        ok = ok and float(measured) == float(measured)
        suffix = f" {unit}" if unit else ""
        return cls(name, measured, f">= {minimum:g}{suffix}", bool(ok))

    def describe(self) -> str:
        state = "met" if self.met else "not met"
        return f"{self.name}: {self.measured} (needs {self.required}), {state}"


@dataclass(frozen=True)
class Verdict:
    """``status`` (one of :data:`STATUSES`), the sentence that explains it, the named checks it
    rests on, the preconditions and the measured values it was decided from."""

    status: str
    reason: str = ""
    checks: Mapping[str, bool] = field(default_factory=dict)
    preconditions: tuple[Precondition, ...] = ()
    measured: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"verdict status must be one of {STATUSES}, got {self.status!r}")
        object.__setattr__(self, "preconditions", tuple(self.preconditions))
        if self.status != NOT_TESTED and not all(p.met for p in self.preconditions):
            object.__setattr__(self, "status", NOT_TESTED)

    @classmethod
    def from_checks(
        cls,
        checks: Mapping[str, bool],
        *,
        preconditions: Iterable[Precondition] = (),
        measured: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> Verdict:
        """The ladder over the claim's checks: all hold -> agrees, some -> partly agrees, none ->
        does not agree, no checks -> inconclusive. ``reason`` defaults to the list of checks
        with yes/no."""
        checks = {k: bool(v) for k, v in checks.items()}
        passed = sum(checks.values())
        if not checks:
            status = "inconclusive"
        elif passed == len(checks):
            status = "agrees"
        elif passed:
            status = "partly agrees"
        else:
            status = "does not agree"
        if reason is None:
            reason = "; ".join(f"{k}: {'yes' if v else 'no'}" for k, v in checks.items())
        return cls(status, reason, checks, tuple(preconditions), dict(measured or {}))

    @classmethod
    def graded(
        cls,
        status: str,
        reason: str,
        *,
        preconditions: Iterable[Precondition] = (),
        measured: Mapping[str, Any] | None = None,
    ) -> Verdict:
        """A status decided by the experiment itself (e.g. how far a fitted exponent lies from
        its theory value); the preconditions still turn it into "not tested"."""
        return cls(status, reason, {}, tuple(preconditions), dict(measured or {}))

    @property
    def passed(self) -> int:
        return sum(self.checks.values())

    @property
    def failed_preconditions(self) -> list[Precondition]:
        return [p for p in self.preconditions if not p.met]

    def text(self) -> str:
        """The report's verdict sentence: the reason, then what made it "not tested" (the
        preconditions not met) or, when all are met, their names."""
        parts = [self.reason] if self.reason else []
        failed = self.failed_preconditions
        if failed:
            parts.append("Not tested because: " + "; ".join(p.describe() for p in failed))
        elif self.preconditions:
            parts.append("Preconditions met: " + "; ".join(p.name for p in self.preconditions))
        return ". ".join(parts)
