"""`make bench`: measures the DESIGN §6 targets and writes var/bench.json."""
