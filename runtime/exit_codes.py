"""The daemon's exit codes (DESIGN §7), one place for run.py, the node and the soak checker.

EXIT_STOP_DEADLINE: a graceful stop (SIGTERM/SIGINT) ran out of `[node] stop_deadline_s` with
orders still in flight or positions not yet protected at the venue. Not a crash: the stop was
asked for, and what was in flight stays journaled for the next start to settle. It is not 0 so
that a service manager (systemd marks the unit failed) and an operator see that the stop did
not finish; one clear log line (`stop_deadline_passed`) names what was left.
"""

EXIT_OK = 0  # clean stop
EXIT_BAD_CONFIG = 2  # refused to start: nothing started
EXIT_HARD_SHUTDOWN = 3  # HARD_SHUTDOWN / tripped root: flattened, flushed
EXIT_STOP_DEADLINE = 4  # graceful stop deadline passed: stopped waiting, work left journaled

STOPPED_ON_REQUEST = frozenset({EXIT_OK, EXIT_STOP_DEADLINE})  # what a SIGTERM may end with
