"""A private ``clickhouse-server`` on loopback ports, for tests, benchmarks and trying scale-out
on one machine.

The Debian package installs the server but starts none; :func:`start` copies its
``config.xml`` and ``users.xml`` into a temporary directory, points every data and log path
there, picks free loopback ports for the native (``tcp_port``), HTTP and interserver
protocols, drops the ``::1`` listen address (not every sandbox has IPv6) and runs the
server from that directory until ``GET /ping`` answers ``Ok.``::

    server = start()
    store_url = server.url("lanewatch")   # clickhouse://127.0.0.1:PORT/lanewatch
    ...
    server.stop()
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

#: Where the Debian package puts the server's default configuration.
CONFIG_DIR = Path("/etc/clickhouse-server")
_DATA = "/var/lib/clickhouse/"
_LOGS = "/var/log/clickhouse-server/"


def free_port() -> int:
    """A loopback TCP port nobody listens on (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary() -> str:
    for name in ("clickhouse-server", "clickhouse"):
        path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
        if path:
            return path
    raise FileNotFoundError("clickhouse-server not found: apt-get install clickhouse-server")


def write_config(directory: Path, tcp_port: int, http_port: int, interserver_port: int,
                 source: Path = CONFIG_DIR) -> Path:
    """``config.xml`` and ``users.xml`` of ``source`` rewritten for a server living in
    ``directory`` on the given loopback ports; returns the config file's path."""
    text = (source / "config.xml").read_text()
    text = text.replace(_DATA, f"{directory}/data/").replace(_LOGS, f"{directory}/log/")
    for tag, port in (("tcp_port", tcp_port), ("http_port", http_port),
                      ("interserver_http_port", interserver_port)):
        text, n = re.subn(rf"<{tag}>\d+</{tag}>", f"<{tag}>{port}</{tag}>", text, count=1)
        if n != 1:
            raise ValueError(f"{source}/config.xml: no <{tag}> to rewrite")
    text = re.sub(r"^\s*<listen_host>::1</listen_host>\s*$\n?", "", text, flags=re.MULTILINE)
    text = text.replace("<listen_host>::</listen_host>", "<listen_host>127.0.0.1</listen_host>")
    (directory / "config.xml").write_text(text)
    shutil.copy(source / "users.xml", directory / "users.xml")
    for sub in ("data", "log", "data/tmp", "data/user_files", "data/format_schemas"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    return directory / "config.xml"


@dataclass
class LocalServer:
    """A running private server; :meth:`stop` ends it and removes its directory."""

    directory: Path
    tcp_port: int
    http_port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    keep: bool = False

    host = "127.0.0.1"

    def url(self, database: str) -> str:
        """The ``store`` setting for ``database`` on this server."""
        return f"clickhouse://{self.host}:{self.tcp_port}/{database}"

    def ping(self, timeout: float = 1.0) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}:{self.http_port}/ping", timeout=timeout) as r:
                return bool(r.read().strip() == b"Ok.")
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (kill after ``timeout``) and remove its files; idempotent."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if not self.keep:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(directory: str | Path | None = None, *, timeout: float = 30.0, attempts: int = 3) -> LocalServer:
    """Start a private server in ``directory`` (a new temporary one by default) and wait until it
    answers ``/ping``. A port taken between picking and binding is retried ``attempts`` times;
    a server that does not come up raises RuntimeError with the end of its error log."""
    binary = _binary()
    keep = directory is not None
    root = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="lanewatch-ch-"))
    root.mkdir(parents=True, exist_ok=True)
    last = ""
    for _ in range(attempts):
        server = LocalServer(root, free_port(), free_port(), keep=keep)
        config = write_config(root, server.tcp_port, server.http_port, free_port())
        server.process = subprocess.Popen([binary, f"--config-file={config}"], cwd=root,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and server.process.poll() is None:
            if server.ping(0.5):
                return server
            time.sleep(0.05)
        err = root / "log" / "clickhouse-server.err.log"
        last = err.read_text(errors="replace")[-2000:] if err.exists() else "(no error log)"
        server.keep = True
        server.stop()
    if not keep:
        shutil.rmtree(root, ignore_errors=True)
    raise RuntimeError(f"clickhouse-server did not answer /ping within {timeout}s:\n{last}")


def main(argv: list[str] | None = None) -> int:
    """``python -m lanewatch.store.clickhouse_local [DIR] [DATABASE]``: a private server to try
    the scale-out roles on one machine. Prints the store URL, runs until SIGINT or SIGTERM,
    then stops the server (its files stay in DIR when one is given)."""
    import sys

    from lanewatch.stop_signals import Stops

    args = sys.argv[1:] if argv is None else argv
    try:
        server = start(args[0] if args else None)
    except (RuntimeError, OSError) as e:
        print(f"clickhouse_local: {e}", file=sys.stderr, flush=True)
        return 2
    try:
        stops = Stops()  # before the URL is printed: a stop right after it is clean
        print(server.url(args[1] if len(args) > 1 else "lanewatch"), flush=True)
        stops.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
