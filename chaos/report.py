"""The chaos report: a terminal table, var/chaos-report.json and a timeline PNG per scenario.

`python -m chaos.report --markdown [var/chaos-report.json]` prints the README's table from a
saved report; `--update-readme README.md` writes it into the README's chaos section in place.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chaos.scenario import Result


def table(results: list[Result]) -> str:
    header = f"{'scenario':<24} {'row':<5} {'result':<6} {'detect ms':>10} {'recover ms':>11} {'dup':>4} {'lost':>5}"
    lines = [header, "-" * len(header)]
    for r in results:
        fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
        lines.append(f"{r.name:<24} {r.row:<5} {'PASS' if r.passed else 'FAIL':<6} {fmt(r.detect_ms):>10} "
                     f"{fmt(r.recover_ms):>11} {r.duplicates:>4} {r.lost:>5}")
        for failure in r.failures:
            lines.append(f"    broke: {failure.splitlines()[0]}")
    return "\n".join(lines)


def write_json(results: list[Result], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.as_row() for r in results], indent=2, default=str) + "\n", encoding="utf-8")


def timeline_png(result: Result, path: Path) -> Path | None:
    """Price, gate, mode and orders over time, for a person to see what happened."""
    if not result.timeline:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t for s in result.timeline]
    fig, (ax_price, ax_gate) = plt.subplots(2, 1, sharex=True, figsize=(9, 5), height_ratios=(3, 1))
    ax_price.plot(t, [s.price for s in result.timeline], color="tab:blue", label="price")
    for order in result.orders:
        at = order.get("t")
        if at is not None:
            ax_price.axvline(at, color="tab:green" if order.get("side") == "BUY" else "tab:red", alpha=0.6)
    ax_price.set_title(f"{result.row} {result.name}: {'PASS' if result.passed else 'FAIL'}")
    ax_price.set_ylabel("price")
    modes = {"NORMAL": 0, "REDUCED": 1, "EMERGENCY": 2, "HARD_SHUTDOWN": 3, "DOWN": 4, "UNKNOWN": 4}
    ax_gate.step(t, [1 if s.gate_open else 0 for s in result.timeline], where="post", label="gate open")
    ax_gate.step(t, [modes.get(s.mode, 4) / 4 for s in result.timeline], where="post", label="mode (0 NORMAL..1 DOWN)",
                 alpha=0.6)
    ax_gate.set_ylim(-0.1, 1.1)
    ax_gate.set_xlabel("seconds since the scenario started (green: BUY, red: SELL at the exchange)")
    ax_gate.legend(loc="upper right", fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


README_BLOCK = re.compile(r"^Latest full run \(.*?\n\n(?:\|.*\n)+", re.MULTILINE)


def markdown(rows: list[dict[str, Any]], when: str) -> str:
    """The README's chaos table from `chaos-report.json` rows, with its one-line heading."""
    passed = sum(1 for r in rows if r.get("passed"))
    fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    lines = [f"Latest full run (2-core machine, {when}), {passed}/{len(rows)} passing:", "",
             "| scenario | row | result | detect ms | recover ms | duplicates | lost |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['scenario']} | {r['row']} | {'PASS' if r.get('passed') else 'FAIL'} | {fmt(r.get('detect_ms'))} "
              f"| {fmt(r.get('recover_ms'))} | {r.get('duplicates', 0)} | {r.get('lost', 0)} |" for r in rows]
    return "\n".join(lines) + "\n"


def update_readme(readme: Path, table: str) -> None:
    text = readme.read_text(encoding="utf-8")
    if not README_BLOCK.search(text):
        raise SystemExit(f"{readme}: no 'Latest full run (...)' table to replace")
    readme.write_text(README_BLOCK.sub(lambda _: table, text, count=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", nargs="?", type=Path, default=Path("var/chaos-report.json"))
    parser.add_argument("--markdown", action="store_true", help="print the README table")
    parser.add_argument("--update-readme", type=Path, metavar="README", help="replace the README's table in place")
    args = parser.parse_args(argv)
    try:
        rows = json.loads(args.report.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read the chaos report {args.report}: {exc}")
    when = datetime.fromtimestamp(args.report.stat().st_mtime, timezone.utc).strftime("%Y-%m-%d")
    table_md = markdown(rows, when)
    if args.update_readme:
        update_readme(args.update_readme, table_md)
    if args.markdown or not args.update_readme:
        print(table_md, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
