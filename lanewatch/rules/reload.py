"""Live reload of the routing rules and topology: the config file watched, ``SIGHUP``, and
``PUT /api/v1/rules``. A change takes effect within :data:`POLL_S` of the file being written;
a bad file or body keeps the rules in force and says why (log, ``/api/v1/health``, the
dashboard's banner: :attr:`RuleBook.failure`). Nothing restarts and no state is lost: only
the rule version changes (:mod:`lanewatch.rules.versions`).

The files a config's ``routing_rules`` import (``{import: FILE}``: Ingress, OpenSergo) are
watched with it. Only ``routing_rules`` and ``topology`` are live. Any other setting changed in the file is
named in :attr:`Reloader.needs_restart` and logged; it applies at the next start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from lanewatch.config import routing
from lanewatch.config.fields import ConfigError
from lanewatch.rules.versions import RuleBook, RuleVersion

log = logging.getLogger("lanewatch")

#: How often the config file's stat is read.
POLL_S = 0.5
#: The settings a reload applies; every other one needs a restart.
LIVE_SETTINGS = ("routing_rules", "topology")
#: The keys of a ``PUT /api/v1/rules`` body.
BODY_KEYS = LIVE_SETTINGS


def parse_body(doc: Any, book: RuleBook) -> tuple[list[routing.Rule], dict[str, list[str]]]:
    """``{"routing_rules": [...], "topology": {...}}`` (a key left out keeps what is in force)
    as rules and topology; ConfigError names what is wrong."""
    if not isinstance(doc, Mapping):
        raise ConfigError('expected a JSON object {"routing_rules": [...], "topology": {...}}')
    unknown = sorted(set(doc) - set(BODY_KEYS))
    if unknown:
        raise ConfigError(f"unknown keys {unknown}; a rules body has {', '.join(BODY_KEYS)}")
    if not set(doc) & set(BODY_KEYS):
        raise ConfigError(f"nothing to apply: give {' and/or '.join(BODY_KEYS)}")
    cur = book.current
    raw_rules = doc.get("routing_rules")
    for i, r in enumerate(raw_rules if isinstance(raw_rules, list) else ()):
        if isinstance(r, Mapping) and "import" in r:
            raise ConfigError(f"routing_rules[{i}].import: a PUT body cannot import files (lanewatch "
                              "reads no path a request names); put the import in the config file, or "
                              "send the rules `lanewatch rules import FILE` prints")
    try:
        rules = routing.parse_rules(doc["routing_rules"]) if "routing_rules" in doc else list(cur.rules)
    except TypeError as e:
        raise ConfigError(f"routing_rules: {e}") from None
    routing.check_rules("routing_rules", rules)
    try:
        topology = (routing.parse_topology(doc["topology"]) if "topology" in doc
                    else {s: list(v) for s, v in cur.topology.items()})
    except TypeError as e:
        raise ConfigError(f"topology: {e}") from None
    routing.check_topology("topology", topology)
    return rules, topology


class Reloader:
    """Applies new rules to ``book`` from the config file at ``path`` (watched while started;
    None: no file, the API only) or from an API body."""

    def __init__(self, book: RuleBook, path: str | None, poll_s: float = POLL_S, applies: bool = True) -> None:
        self.book, self.path, self.poll_s = book, path or None, poll_s
        #: this process judges spans with ``book`` (``up``, ``collect``); ``serve`` only shows it
        self.applies = applies
        #: settings other than the live ones that changed in the file since the start
        self.needs_restart: list[str] = []
        self._baseline = self._file_values() if self.path else {}
        self._stat = self._stat_of()
        self._digest = self._digest_of()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._source = "file"
        self._lock = threading.Lock()  # one reload at a time
        self._thread: threading.Thread | None = None

    # --- the files: the config and the routing manifests it imports ---------------------
    def watched(self) -> list[str]:
        """The config file and every file its ``routing_rules`` import (``{import: FILE}``)."""
        if self.path is None:
            return []
        try:
            doc = yaml.safe_load(Path(self.path).read_text())
        except (OSError, yaml.YAMLError, ValueError):
            return [self.path]  # a manifest file itself, or unreadable: the reload says why
        out = [self.path]
        entries = doc.get("routing_rules", doc.get("rules")) if isinstance(doc, Mapping) else None
        for e in entries if isinstance(entries, list) else ():
            files = e.get("import") if isinstance(e, Mapping) else None
            for f in [files] if isinstance(files, str) else files if isinstance(files, list) else ():
                if isinstance(f, str) and f not in out:
                    out.append(f)
        return out

    def _stat_of(self) -> tuple[tuple[int, int, int] | None, ...] | None:
        if self.path is None:
            return None
        out: list[tuple[int, int, int] | None] = []
        for path in self.watched():
            try:
                st = os.stat(path)
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def _digest_of(self) -> str | None:
        if self.path is None:
            return None
        h = hashlib.sha256()
        try:
            for path in self.watched():
                h.update(path.encode() + b"\0")
                with open(path, "rb") as f:
                    h.update(f.read())
        except OSError:
            return None
        return h.hexdigest()

    def _file_values(self) -> dict[str, Any]:
        """The settings the file gives (defaults elsewhere), validated; ConfigError if bad."""
        from lanewatch.config import load

        assert self.path is not None
        if not os.path.exists(self.path):
            raise ConfigError(f"config={self.path}: the file is gone")
        s = load(config_file=self.path, environ={})
        from lanewatch.config.sources import describe

        return {name: s.value(name) for name, *_ in describe()} | {
            "routing_rules": s.routing_rules, "topology": s.topology}

    def reload(self, source: str = "file") -> RuleVersion | None:
        """Read the file and apply its rules (None: unchanged or refused; see ``book.failure``)."""
        if self.path is None:
            return None
        with self._lock:
            self._stat, self._digest = self._stat_of(), self._digest_of()
            try:
                values = self._file_values()
            except ConfigError as e:
                said = str(e) if str(e).startswith("config=") else f"config={self.path}: {e}"
                log.error("rules not reloaded (%s): %s; the rules in force (version %d) stay",
                          source, said, self.book.current.version)
                self.book.fail(source, said)
                return None
            self.needs_restart = sorted(k for k, v in values.items()
                                        if k not in LIVE_SETTINGS and k != "config"
                                        and self._baseline.get(k) != v)
            if self.needs_restart:
                log.warning("config=%s: %s changed; only routing_rules and topology apply live, "
                            "restart to apply the rest", self.path, ", ".join(self.needs_restart))
            return self._apply(values["routing_rules"], values["topology"], source)

    def put(self, doc: Any) -> RuleVersion | None:
        """``PUT /api/v1/rules``: apply a body (ConfigError: refused, the rules in force stay)."""
        with self._lock:
            try:
                rules, topology = parse_body(doc, self.book)
            except ConfigError as e:
                self.refused("api", str(e))
                raise
            return self._apply(rules, topology, "api")

    def refused(self, source: str, error: str) -> None:
        """A change refused before it was read (e.g. a body that does not parse): said as a
        refused file is (log, health, banner)."""
        log.error("rules not replaced (%s): %s; the rules in force (version %d) stay",
                  source, error, self.book.current.version)
        self.book.fail(source, error)

    def _apply(self, rules: list[routing.Rule], topology: dict[str, list[str]], source: str) -> RuleVersion | None:
        new = self.book.apply(rules, topology, source)
        if new is None:
            log.info("rules reloaded (%s): unchanged, version %d stays", source, self.book.current.version)
        else:
            log.info("rules version %d in force (%s): %d routing rules, %d declared services",
                     new.version, source, len(new.rules), len(new.topology))
        return new

    # --- watching -----------------------------------------------------------------------------
    def trigger(self, source: str = "SIGHUP") -> None:
        """Reload soon, on the watcher's thread (callable from any thread)."""
        self._source = source
        self._wake.set()

    def _changed(self) -> bool:
        st = self._stat_of()
        if st == self._stat:
            return False
        self._stat = st
        digest = self._digest_of()
        return digest is None or digest != self._digest  # touched with the same content: no

    def _run(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.poll_s)
            if self._stop.is_set():
                return
            try:
                if woken:
                    self._wake.clear()
                    self.reload(self._source)
                elif self._changed():
                    self.reload("file")
            except Exception:  # the watcher must not die; the rules in force stay
                log.exception("rules reload failed; the rules in force stay")

    def start(self) -> None:
        if self.path is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="lanewatch-rules", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def health(self) -> dict[str, Any]:
        """``/api/v1/health``'s ``rules``: the version in force, the last refused reload, the
        settings waiting for a restart, the file watched."""
        cur, failure = self.book.current, self.book.failure
        return {"version": cur.version, "since": cur.since, "source": cur.source,
                "watched_file": self.path,
                "last_reload_error": failure.to_dict() if failure is not None else None,
                "needs_restart": list(self.needs_restart)}
