"""Everything the daemon checks before it starts anything, and `check-config` runs the same.

`preflight(config)` goes past the file's own content (runtime/config.py) to the world
the daemon would start in: every `class = "module:Class"` strategy imports and
subclasses `Strategy` (user code that raises, even `SystemExit`, is a problem, not an
exit); every `*_env` variable the config names is set; `node.data_dir` is writable;
and the status server is not open to the network without a token (a bind that is
not loopback needs `[status] token_env`). Problems name the field and its line in
one ConfigError, so a config that passes starts, and one that fails exits 2 before
any thread or Redis starts.

It reads the environment and imports user code; it never starts a thread, opens a
socket or writes anything but a probe file it removes at once.
"""
from __future__ import annotations

import ipaddress
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from runtime.config import Config, ConfigError, ConfigProblem, check_strategy_classes

__all__ = ["Preflight", "is_loopback", "preflight", "MIN_TOKEN_CHARS"]

MIN_TOKEN_CHARS = 8  # shorter would be guessable, and too short for the log redaction to hide
# field -> what the variable it names must hold
_ENV_FIELDS = {
    "store.password_env": "the Redis password",
    "status.token_env": "the operator token",
    "venue.api_key_env": "the venue API key",
    "venue.api_secret_env": "the venue API secret",
    "alerts.webhook_url_env": "the alert webhook URL",
}


@dataclass(frozen=True)
class Preflight:
    """What the checks resolved, so the daemon uses exactly what was checked."""

    classes: dict[str, type] = field(default_factory=dict)  # strategy id -> user class
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # field ("status.token_env") -> value

    def secret(self, field_name: str) -> str | None:
        return self.secrets.get(field_name)


def preflight(config: Config, environ: Mapping[str, str] | None = None) -> Preflight:
    """Run every start-up check on `config`; ConfigError listing all problems, or what they resolved."""
    env = os.environ if environ is None else environ
    problems: list[ConfigProblem] = []

    def problem(field_name: str, message: str) -> None:
        problems.append(ConfigProblem(field_name, config.line_of(field_name), message))

    classes: dict[str, type] = {}
    try:
        classes = check_strategy_classes(config)
    except ConfigError as exc:
        problems.extend(exc.problems)

    secrets: dict[str, str] = {}
    for field_name, holds in _ENV_FIELDS.items():
        table, _, key = field_name.partition(".")
        name = getattr(getattr(config, table), key)
        if not name:
            continue
        value = env.get(name, "")
        if not value:
            problem(field_name, f"environment variable {name} is not set (it must hold {holds})")
        else:
            secrets[field_name] = value
    webhook = secrets.get("alerts.webhook_url_env")
    if webhook is not None and not webhook.startswith(("http://", "https://")):
        problem("alerts.webhook_url_env", f"environment variable {config.alerts.webhook_url_env} must hold an "
                                          "http(s) URL")
    token = secrets.get("status.token_env")
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        problem("status.token_env", f"environment variable {config.status.token_env} holds {len(token)} "
                                    f"characters; an operator token needs at least {MIN_TOKEN_CHARS}")

    if not config.status.token_env and not is_loopback(config.status.host):
        problem("status.bind", f"binds {config.status.host}, which is not loopback, and no token is set: anyone "
                               "who can reach it could halt trading or disable strategies. Set [status] token_env "
                               "= \"VAR\" (a variable holding the operator token), or bind 127.0.0.1")

    why = _not_writable(Path(config.node.data_dir))
    if why:
        problem("node.data_dir", why)

    if problems:
        raise ConfigError(problems, config.source)
    return Preflight(classes, secrets)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`; every other name or address reaches the network."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _not_writable(data_dir: Path) -> str | None:
    """Why the daemon could not create and write `data_dir`, or None. Creates nothing that stays."""
    probe = data_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return f"{data_dir} cannot be created: {probe} is not a directory"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"{data_dir} is not writable: {exc.strerror or exc} ({probe})"
    return None
