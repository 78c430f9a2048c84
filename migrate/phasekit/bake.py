"""Bake and gate: hold a change for a while, measure, and decide (DESIGN §4 "Gates"). Any phase that
changes something players feel and must judge it before going on uses it: shift-traffic after each
weight; cutover and the schema backfill next.

A change reaches players only after a delay (a DNS record's TTL), so the bake is split: the first
`settle_seconds` are a settling window, watched for failures only; the rest is the gate window whose
measurements the verdict is on. Every `poll_seconds` an interim evaluation runs (errors, reachability,
lag and the spec's p95 ceilings; the baseline comparison waits for the whole window): a failure there, or
at the end, puts things back AT ONCE (`revert`), journals the gate with the revert and fails the step
(VerifyFailed); no human is needed. A pass is journaled and returned. Inconclusive (no or too little
data, never a pass) is journaled and the run holds for a human: `migrate resume` bakes and evaluates
again, `migrate abort` rolls back. The bake checkpoints every TICK_SECONDS, so operator requests and
fault injection are honoured within a second."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from migrate.errors import MigrateError, ProviderError, VerifyFailed
from migrate.phasekit.gates import GateResult, Thresholds, evaluate, summary
from migrate.phasekit.model import StepContext
from migrate.providers.traffic import Measurements, MetricsWindow

TICK_SECONDS = 0.2  # how often a bake checks for operator requests (checkpoints must come every ~0.5 s)


@dataclass(frozen=True)
class Bake:
    """One change to bake and gate."""

    label: str  # what is baking, in the journal and on screen: "25 %", "100 % (latency records)"
    index: int  # 0-based position of this bake among the step's bakes (for the progress bar)
    count: int  # how many bakes the phase's schedule has
    bake_seconds: float  # how long the change bakes before the verdict
    settle_seconds: float  # the first part of the bake, watched for failures only (e.g. the record TTL)
    poll_seconds: float  # how often an interim evaluation runs
    thresholds: Thresholds  # what passes
    open_window: Callable[[], MetricsWindow]  # a measurement window over what the change affects, from now
    revert: Callable[[], str]  # puts things back to the last passed state; what it did, in words
    rollback_command: str  # the command that rolls the whole phase back, for the failure's hint
    describe: Callable[[], str] = lambda: ""  # where things stand now, for the progress line
    journal_extra: Callable[[], dict[str, Any]] = field(default=lambda: {})  # journaled with each verdict


def _errors(m: Measurements | None) -> int:
    """5xx counted in a window (the error burst a failing change caused is the sum over its bake)."""
    return sum(r.errors or 0 for r in m.regions) if m is not None else 0


def _fail(ctx: StepContext, bake: Bake, result: GateResult, changed_at: float, extra: dict[str, Any]) -> NoReturn:
    """Put things back at once, journal the gate with the revert, raise."""
    detected = time.monotonic()
    try:
        state = bake.revert()
    except MigrateError as exc:
        ctx.record_gate({**result.to_json(), **extra, "at": bake.label,
                         "action": f"revert FAILED: {exc.one_line()}",
                         "detected_after_seconds": round(detected - changed_at, 3)})
        raise ProviderError(f"gate failed at {bake.label} ({result.reason}) and putting things back failed: "
                            f"{exc.one_line()}", hint=f"roll back now: `{bake.rollback_command}`",
                            details={"gate": result.to_json()}) from exc
    reverted = time.monotonic()
    record = {**result.to_json(), **extra, "at": bake.label, "action": f"reverted: {state}",
              "detected_after_seconds": round(detected - changed_at, 3),
              "revert_seconds": round(reverted - detected, 3)}
    ctx.record_gate(record)
    ctx.progress(0, None, f"gate FAILED at {bake.label}: {result.reason} — {state}")
    raise VerifyFailed(
        f"gate failed at {bake.label}: {result.reason}; {state} (in {reverted - detected:.2f} s)",
        hint="find the cause (see the gate in `migrate status`/`migrate history`), then run the phase again to "
             f"retry from the last passed step, or roll it back: `{bake.rollback_command}`",
        details={"gate": record})


def bake_and_gate(ctx: StepContext, bake: Bake) -> GateResult:
    """Bake the change that is in place now and gate it; returns the passing result (module docstring)."""
    settle_for = min(bake.settle_seconds, bake.bake_seconds)
    total = int(bake.count * bake.bake_seconds)
    last_note = "no gate yet"
    while True:
        changed_at = time.monotonic()
        extra = dict(bake.journal_extra())
        where = bake.describe()
        settle = bake.open_window()
        gate = None
        settled: Measurements | None = None
        last_interim = 0.0
        try:
            while True:
                now = time.monotonic()
                elapsed = now - changed_at
                if gate is None and elapsed >= settle_for:
                    settled = settle.measurements()
                    early = evaluate(settled, bake.thresholds, partial=True)
                    settle.close()
                    if early.failed:
                        _fail(ctx, bake, early, changed_at,
                              {**extra, "window": "settling", "errors_during_bake": _errors(settled)})
                    gate = bake.open_window()
                if elapsed >= bake.bake_seconds:
                    break
                current = gate or settle
                current.sample()
                if now - last_interim >= bake.poll_seconds:
                    last_interim = now
                    so_far = current.measurements()
                    interim = evaluate(so_far, bake.thresholds, partial=True)
                    if interim.failed:
                        _fail(ctx, bake, interim, changed_at,
                              {**extra, "window": "gate (interim)" if gate else "settling",
                               "errors_during_bake": _errors(settled) + _errors(so_far)})
                    last_note = f"{'gate' if gate else 'settling'} so far: {summary(interim.values)}"
                ctx.progress(int(bake.index * bake.bake_seconds + elapsed), total,
                             f"{bake.label} · {where} · gate in {max(0.0, bake.bake_seconds - elapsed):.0f} s"
                             f" · {last_note}")
                ctx.checkpoint()
                time.sleep(TICK_SECONDS)
            result = evaluate((gate or settle).measurements(), bake.thresholds)  # no gate window: bake ≤ settle
        finally:
            settle.close()
            if gate is not None:
                gate.close()
        extra["errors_during_bake"] = _errors(settled) + result.values["errors"]
        if result.failed:
            _fail(ctx, bake, result, changed_at, {**extra, "window": "gate"})
        done = int((bake.index + 1) * bake.bake_seconds)
        if result.passed:
            ctx.record_gate({**result.to_json(), **extra, "at": bake.label, "action": "continue"})
            ctx.progress(done, total, f"{bake.label} passed: {result.reason}")
            return result
        ctx.record_gate({**result.to_json(), **extra, "at": bake.label, "action": "held for a human"})
        ctx.progress(done, total, f"{bake.label} INCONCLUSIVE: {result.reason}")
        ctx.hold_for_human(f"gate inconclusive at {bake.label}: {result.reason}. `migrate resume` bakes and "
                           f"evaluates again; `migrate abort` rolls back")
        last_note = "re-baking after an inconclusive gate"
