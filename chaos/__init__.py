"""`make chaos`: every failure-matrix row driven for real against the daemon."""
