"""`python -m bench [--only NAME ...]`: run the benchmarks, print JSON, write var/bench.json.

Each benchmark module exposes `run() -> dict`. Results are merged into var/bench.json
under their name, with the flat keys the README table and issue #6 name.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from loguru import logger

from bench.stats import machine

BENCHES = ["restart", "stop_path", "cold_start", "rss", "gates", "decode", "startup"]


def flat_keys(results: dict[str, Any]) -> dict[str, Any]:
    """The flat, stable keys of var/bench.json (milliseconds unless named otherwise)."""
    flat: dict[str, Any] = {}
    restart = results.get("restart")
    if restart:
        flat["restart.p50_ms"] = restart["crash_to_replacement"]["p50_ms"]
        flat["restart.p99_ms"] = restart["crash_to_replacement"]["p99_ms"]
    stop = results.get("stop_path")
    if stop:
        flat["stop_path.p50_ms"] = {n: v["p50_ms"] for n, v in stop["stop_path"].items()}
        flat["stop_path.p99_ms"] = {n: v["p99_ms"] for n, v in stop["stop_path"].items()}
        flat["stop_path.cost_ratio_10000_100"] = stop["cost_ratio_10000_100"]
        flat["redis_round_trips_per_order"] = stop["redis_round_trips_per_order"]
        flat["baseline_fanout.p99_ms"] = {n: v["p99_ms"] for n, v in stop["baseline_fanout"].items()}
    gates = results.get("gates")
    if gates:  # the worst of the rounds: a target is a bound, not an average
        for key in ("feed_silent_to_gate_ms", "redis_down_to_gate_ms", "redis_back_to_gate_open_ms"):
            flat[key] = max(gates[key])
    if "cold_start" in results:
        flat["cold_start_1000_s"] = results["cold_start"]["cold_start_s"]
    if "decode" in results:
        flat["feed_decode_depth_20x20_us"] = results["decode"]["depth_20x20_us"]
    if "rss" in results:
        flat["rss_mb"] = {n: v.get("rss_mb") for n, v in results["rss"].items() if isinstance(v, dict)}
    startup = results.get("startup")
    if startup:  # the real daemon: spawn -> first GET /ready answered 200, and its RSS then
        sizes = {n: v for n, v in startup.items() if isinstance(v, dict)}
        flat["start_to_ready_s"] = {n: v.get("start_to_ready_s") for n, v in sizes.items()}
        flat["daemon_rss_mb"] = {n: v.get("rss_mb") for n, v in sizes.items()}
    return flat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=BENCHES, help="run only these benchmarks")
    parser.add_argument("--out", default="var/bench.json")
    args = parser.parse_args(argv)
    logger.remove()  # the benchmarks crash actors on purpose; their logs would drown the JSON
    logging.getLogger("pykka").setLevel(logging.CRITICAL)
    results: dict[str, Any] = {}
    for name in args.only or BENCHES:
        started = time.perf_counter()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        results[name] = importlib.import_module(f"bench.{name}").run()
        results[name]["bench_wall_s"] = round(time.perf_counter() - started, 2)
    report = {**flat_keys(results), "details": results, "machine": machine(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
