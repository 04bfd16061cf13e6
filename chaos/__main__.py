"""`python -m chaos [--only NAME ...]`: run the scenarios, print the table, write the report.

Exits non-zero when any scenario fails, naming the invariant that broke.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chaos import scenarios  # noqa: F401 - registers every scenario
from chaos.report import table, timeline_png, write_json
from chaos.scenario import REGISTRY, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--only", nargs="*", help=f"scenario names: {', '.join(sorted(REGISTRY))}")
    parser.add_argument("--out", default="var", help="where chaos-report.json and the PNGs go")
    args = parser.parse_args(argv)
    names = args.only or sorted(REGISTRY, key=lambda n: int(REGISTRY[n][0].lstrip("F")))
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {sorted(REGISTRY)}")
    out = Path(args.out)
    results = []
    for name in names:
        print(f"chaos: {name} ...", file=sys.stderr, flush=True)
        result = run(name)
        timeline_png(result, out / "chaos" / f"{name}.png")
        results.append(result)
        print(f"chaos: {name} {'PASS' if result.passed else 'FAIL'} ({result.wall_s:.1f}s)", file=sys.stderr, flush=True)
    print(table(results))
    write_json(results, out / "chaos-report.json")
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
