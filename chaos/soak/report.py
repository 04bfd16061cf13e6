"""The soak's output: `report.json`, a timeline PNG, and a one-line verdict."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from chaos.soak.checker import CheckResult, fills
from chaos.soak.recording import Recording


def summary(recording: Recording, result: CheckResult) -> dict[str, Any]:
    by_status: dict[str, Counter[str]] = {}
    for fault in recording.faults:
        by_status.setdefault(fault.status, Counter())[fault.kind] += 1
    executed = fills(recording)
    return {
        "seed": recording.seed, "duration_s": recording.duration_s, "strategies": len(recording.strategies),
        "symbols": recording.symbols, "verdict": verdict(recording, result),
        "faults": {"applied": dict(by_status.get("applied", {})), "unavailable": dict(by_status.get("unavailable", {})),
                   "skipped": dict(by_status.get("skipped", {})),
                   "list": [{**f.__dict__, "offset_s": round(f.start - recording.started, 2)} for f in recording.faults]},
        "orders": {"requests": sum(1 for e in recording.ledger if e.get("action") == "place"),
                   "executions": len(executed),
                   "entries": sum(1 for f in executed if f.letter == "e"),
                   "exits": sum(1 for f in executed if f.letter in "xp"),
                   "rejected_by_reason": dict(Counter(str(e.get("message") or e.get("code")) for e in recording.ledger
                                                      if e.get("outcome") == "REJECTED").most_common(5))},
        "daemon_runs": [run.__dict__ for run in recording.daemon_runs],
        **result.to_json(),
    }


def verdict(recording: Recording, result: CheckResult) -> str:
    applied = sum(1 for f in recording.faults if f.status == "applied")
    crossings = result.counts.get("I3", {}).get("stop_crossings", 0)
    head = "PASS" if result.passed else f"FAIL ({len(result.violations)} violation(s): " + ", ".join(
        sorted({v.invariant for v in result.violations})) + ")"
    return (f"soak seed {recording.seed}: {head}; {applied} faults applied over {recording.duration_s:.0f} s, "
            f"{len(fills(recording))} executions, {crossings} stop crossings checked")


def write(recording: Recording, result: CheckResult, directory: Path) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    report = summary(recording, result)
    (directory / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    recording.save(directory / "recording.json")
    timeline_png(recording, result, directory / "timeline.png")
    return report


GROUP_COLOURS = {"daemon": "black", "redis": "tab:red", "ws": "tab:orange", "rate": "tab:purple",
                 "orders": "tab:brown", "delay": "tab:pink", "late": "tab:pink", "fills": "tab:olive",
                 "token": "tab:cyan", "clock": "tab:gray", "spike": "gold", "strategy": "tab:green",
                 "disk": "tab:blue", "cpu": "lightcoral"}


def timeline_png(recording: Recording, result: CheckResult, path: Path) -> Path | None:
    """Prices (% from start), faults as bands, executions, gate and mode, violations as red lines."""
    if not recording.samples:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chaos.soak.nemesis import KINDS

    t0 = recording.started
    fig, (ax_price, ax_faults, ax_gate) = plt.subplots(3, 1, sharex=True, figsize=(14, 8), height_ratios=(3, 2, 1))
    for symbol, series in recording.prices.items():
        if series:
            base = series[0][1]
            ax_price.plot([t - t0 for t, _ in series], [(p / base - 1) * 100 for _, p in series], lw=0.6,
                          label=symbol)
    for f in fills(recording):
        ax_price.axvline(f.at - t0, color="tab:green" if f.letter == "e" else "tab:red", alpha=0.15, lw=0.5)
    for v in result.violations:
        if v.at is not None:
            ax_price.axvline(v.at - t0, color="red", lw=1.5)
    ax_price.set_ylabel("price, % from start")
    ax_price.legend(loc="upper left", fontsize=7)
    ax_price.set_title(verdict(recording, result), fontsize=9)
    kinds = sorted({f.kind for f in recording.faults if f.status == "applied"})
    for row, kind in enumerate(kinds):
        colour = GROUP_COLOURS.get(KINDS[kind].group if kind in KINDS else "", "gray")
        for f in recording.faults:
            if f.kind == kind and f.status == "applied":
                ax_faults.broken_barh([(f.start - t0, max(0.3, f.end - f.start))], (row - 0.4, 0.8), color=colour)
    ax_faults.set_yticks(range(len(kinds)), kinds, fontsize=6)
    modes = {"NORMAL": 0, "REDUCED": 1, "EMERGENCY": 2, "HARD_SHUTDOWN": 3, "DOWN": 4}
    t = [s.at - t0 for s in recording.samples]
    ax_gate.step(t, [1 if s.gate_open else 0 for s in recording.samples], where="post", label="gate open", lw=0.8)
    ax_gate.step(t, [modes.get(s.mode, 4) / 4 for s in recording.samples], where="post", alpha=0.6, lw=0.8,
                 label="mode (0 NORMAL .. 1 DOWN)")
    ax_gate.set_ylim(-0.1, 1.1)
    ax_gate.legend(loc="upper right", fontsize=7)
    ax_gate.set_xlabel("seconds since the fault schedule started (green: entries, red: exits at the venue)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
