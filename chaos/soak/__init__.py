"""`make soak`: random combined faults against the real daemon, invariants checked from outside.

- `nemesis`: the fault schedule, a pure function of the seed;
- `faults`: applying and healing one fault on the live world;
- `runner`: the world (daemon process, redis-server, simulated exchange) and its bounded loops;
- `recording`: what was recorded; `checker`: the invariants, a pure function over a recording;
- `report`: report.json, the timeline PNG, the verdict; `strategies`: the Trader the daemon runs.
"""
