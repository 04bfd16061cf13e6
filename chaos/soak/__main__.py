"""`python -m chaos.soak [--seed N | --seeds regress | --planted BUG] [--minutes M] [--strategies K]`.

Runs the soak (a random seed, printed, unless given), writes var/soak/<seed>/report.json,
recording.json and timeline.png, prints one verdict line per seed and every violation,
and exits non-zero on any violation. `--seeds regress` replays chaos/soak_seeds.txt.
`--check var/soak/<seed>/recording.json` re-runs only the checker on a saved recording.
`--planted BUG|all` tests the checker: the daemon runs with that planted bug (actors.planted)
on a fixed seed, and the run passes only if the soak reports the invariant the bug breaks.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from loguru import logger

from chaos.soak import report
from chaos.soak.checker import check
from chaos.soak.nemesis import KINDS
from chaos.soak.planted import PLANTED, run_planted
from chaos.soak.recording import Recording
from chaos.soak.runner import Settings, run_soak

SEEDS_FILE = Path(__file__).resolve().parent.parent / "soak_seeds.txt"


def regress_seeds(path: Path = SEEDS_FILE) -> list[tuple[int, float, tuple[str, ...] | None]]:
    """(seed, minutes, fault kinds) per line of soak_seeds.txt: `<seed> [minutes] [faults=a,b]  # what it found`."""
    out = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        kinds = next((tuple(p.removeprefix("faults=").split(",")) for p in parts[1:] if p.startswith("faults=")), None)
        plain = [p for p in parts if not p.startswith("faults=")]
        try:
            seed, minutes = int(plain[0]), float(plain[1]) if len(plain) > 1 else 5.0
        except (ValueError, IndexError):
            raise SystemExit(f"{path}:{number}: expected '<seed> [minutes] [faults=a,b]', got {raw!r}") from None
        if kinds and (bad := set(kinds) - set(KINDS)):
            raise SystemExit(f"{path}:{number}: unknown fault kind(s) {sorted(bad)}")
        out.append((seed, minutes, kinds))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, help="the nemesis seed (default: random, printed)")
    parser.add_argument("--seeds", choices=("regress",), help="replay every seed in chaos/soak_seeds.txt")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--strategies", type=int, default=50)
    parser.add_argument("--faults", help=f"comma-separated subset of the catalogue: {','.join(KINDS)}")
    parser.add_argument("--out", type=Path, default=Path("var/soak"))
    parser.add_argument("--no-tmpfs", action="store_true", help="do not mount a tmpfs data_dir (no disk_full)")
    parser.add_argument("--check", type=Path, help="only check a saved recording.json")
    parser.add_argument("--planted", choices=(*PLANTED, "all"),
                        help="the checker's own test: run the fixed seed that provokes this planted bug in the daemon "
                             "and pass only if the soak reports the invariant it breaks")
    parser.add_argument("--control", action="store_true",
                        help="with --planted: the same seed and faults without the bug; passes only if the "
                             "invariant holds (the violation is the bug's, not the seed's)")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")  # the simulator's INFO lines would drown the soak's own
    if args.planted:
        return _planted(list(PLANTED) if args.planted == "all" else [args.planted], args.out, args.control)
    if args.check:
        recordings = [Recording.load(args.check)]
        return _report(recordings[0], args.check.parent)
    kinds = tuple(k.strip() for k in args.faults.split(",")) if args.faults else None
    if kinds and (bad := set(kinds) - set(KINDS)):
        parser.error(f"unknown fault kind(s) {sorted(bad)}; known: {', '.join(KINDS)}")
    if args.minutes <= 0 or args.strategies <= 0:
        parser.error("--minutes and --strategies must be positive")
    if args.seeds == "regress":
        runs = regress_seeds()
    else:
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 1_000_000)
        runs = [(seed, args.minutes, kinds)]
    failed = 0
    for seed, minutes, only in runs:
        print(f"soak: seed {seed} ({minutes:g} min, {args.strategies} strategies"
              f"{', faults ' + ','.join(only) if only else ''})", flush=True)
        settings = Settings(seed, minutes, args.strategies, args.out, only, not args.no_tmpfs)
        failed += _report(run_soak(settings), settings.directory)
    return 1 if failed else 0


def _planted(bugs: list[str], out: Path, control: bool) -> int:
    missed = 0
    for bug in bugs:
        print(f"soak: {'control for ' if control else ''}planted bug {bug}: {PLANTED[bug].invariant} must "
              f"{'hold' if control else 'be reported'}", flush=True)
        outcome = run_planted(PLANTED[bug], out, control)
        print(outcome.line(), flush=True)
        missed += not outcome.passed
    return 1 if missed else 0


def _report(recording: Recording, directory: Path) -> int:
    result = check(recording)
    written = report.write(recording, result, directory)
    for violation in result.violations:
        print(violation.line(recording.seed), file=sys.stderr)
    print(written["verdict"], f"(report: {directory / 'report.json'})", flush=True)
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
