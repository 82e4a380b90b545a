"""The config file watched, SIGHUP and API bodies: a good change becomes a new rule version, a
bad one keeps the version in force and says why."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lanewatch import config
from lanewatch.config.fields import ConfigError
from lanewatch.rules.reload import Reloader, parse_body
from lanewatch.rules.versions import RuleBook
from lanewatch.testing import wait_until

GOOD = "routing_rules:\n  - {service: B, match: {x-user-id: '100'}, lane: gray}\ntopology: {C: [base, gray]}\n"
OTHER = "routing_rules:\n  - {service: B, match: {x-user-id: '200'}, lane: gray}\ntopology: {C: [base, gray]}\n"


def _book(path: Path) -> RuleBook:
    s = config.load(config_file=str(path), environ={})
    return RuleBook(s.routing_rules, s.topology)


def _write(path: Path, text: str) -> None:
    """Replace the file as editors and Kubernetes do (a new inode), mtime visibly later."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_the_watched_file_applies_within_two_seconds_and_a_bad_one_keeps_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "lanewatch.yaml"
    path.write_text(GOOD)
    book = _book(path)
    r = Reloader(book, str(path))
    r.start()
    try:
        t = time.monotonic()
        _write(path, OTHER)
        wait_until(lambda: book.current.version == 2, 2.0, "the new file in force")
        assert time.monotonic() - t < 2.0
        assert book.current.rules[0].match == {"x-user-id": "200"} and book.current.source == "file"
        _write(path, "routing_rules:\n  - {service: B, match: {}, lane: gray}\n")
        wait_until(lambda: book.failure is not None, 2.0, "the bad file refused")
        assert book.current.version == 2
        assert book.failure is not None and "routing_rules[0]: needs service" in book.failure.error
        assert r.health()["last_reload_error"]["error"] == book.failure.error
        _write(path, "routing_rules: [\n")  # not YAML
        wait_until(lambda: book.failure is not None and "config=" in book.failure.error, 2.0, "YAML error")
        path.unlink()
        wait_until(lambda: book.failure is not None and "gone" in book.failure.error, 2.0, "file gone")
        assert book.current.version == 2
        _write(path, GOOD)
        wait_until(lambda: book.current.version == 3, 2.0, "a good file again")
        assert book.failure is None and r.health()["last_reload_error"] is None
    finally:
        r.stop()


def test_touching_the_file_without_a_change_makes_no_version(tmp_path: Path) -> None:
    path = tmp_path / "lanewatch.yaml"
    path.write_text(GOOD)
    book = _book(path)
    r = Reloader(book, str(path), poll_s=0.05)
    r.start()
    try:
        _write(path, GOOD)
        time.sleep(0.5)
        assert book.current.version == 1 and book.failure is None
    finally:
        r.stop()


def test_sighup_reloads_and_other_settings_wait_for_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "lanewatch.yaml"
    path.write_text(GOOD)
    book = _book(path)
    r = Reloader(book, str(path), poll_s=60)  # no polling in time: only the trigger
    r.start()
    try:
        path.write_text(OTHER + "liveness_ttl_s: 30\n")
        r.trigger("SIGHUP")
        wait_until(lambda: book.current.version == 2, 2.0, "SIGHUP reload")
        assert book.current.source == "SIGHUP" and r.needs_restart == ["liveness_ttl_s"]
        assert r.health()["needs_restart"] == ["liveness_ttl_s"]
    finally:
        r.stop()


def test_an_api_body_replaces_what_it_names_and_keeps_the_rest() -> None:
    book = RuleBook(config.parse_rules([{"service": "B", "match": {"u": "1"}, "lane": "gray"}]), {"C": ["gray"]})
    r = Reloader(book, None)
    new = r.put({"routing_rules": [{"service": "A", "match": {"u": "2"}, "lane": "gray"}]})
    assert new is not None and new.source == "api" and dict(new.topology) == {"C": ("gray",)}
    assert [x.service for x in new.rules] == ["A"]
    assert r.put({"topology": {"C": ["base", "gray"]}}) is not None and book.current.rules == new.rules
    assert r.put({"topology": {"C": ["base", "gray"]}}) is None  # unchanged: no version


@pytest.mark.parametrize("doc,message", [
    ([1], "expected a JSON object"),
    ({}, "nothing to apply"),
    ({"rules": []}, r"unknown keys \['rules'\]"),
    ({"routing_rules": {"service": "B"}}, "routing_rules: expected a list"),
    ({"routing_rules": [{"service": "B", "lane": "gray"}]}, r"routing_rules: \[0\]: expected"),
    ({"routing_rules": [{"service": "B", "match": {"u": "1"}, "lane": "no spaces"}]}, "valid lane"),
    ({"topology": {"C": ["bad lane"]}}, "topology.C: invalid lane names"),
    ({"topology": ["C"]}, "topology: expected a mapping"),
])
def test_a_bad_body_is_refused_naming_what_is_wrong(doc: object, message: str) -> None:
    book = RuleBook([], {})
    r = Reloader(book, None)
    with pytest.raises(ConfigError, match=message):
        parse_body(doc, book)
    with pytest.raises(ConfigError):
        r.put(doc)
    assert book.current.version == 1 and book.failure is not None and book.failure.source == "api"


def test_an_imported_manifest_is_watched_with_the_config(tmp_path: Path) -> None:
    """``routing_rules: [{import: FILE}]``: editing the Ingress file is a reload too."""
    src = Path(__file__).parents[1] / "testdata" / "routing" / "ingress-gray.yaml"
    manifest = tmp_path / "ingress.yaml"
    manifest.write_text(src.read_text())
    path = tmp_path / "lanewatch.yaml"
    path.write_text(f"routing_rules:\n  - {{import: {manifest}}}\n")
    book = _book(path)
    first = book.current.rules
    assert first and Reloader(book, str(path)).watched() == [str(path), str(manifest)]
    r = Reloader(book, str(path))
    r.start()
    try:
        _write(manifest, src.read_text().replace('"100"', '"200"').replace("'100'", "'200'"))
        wait_until(lambda: book.current.version == 2, 2.0, "the edited manifest in force")
        assert book.current.rules != first and book.current.source == "file"
    finally:
        r.stop()


def test_what_get_rules_shows_can_be_put_back_unchanged() -> None:
    raw = [{"service": "B", "match": {"x-user-id": "100"}, "lane": "gray"},
           {"service": "C", "lane": "gray", "when": {"any": [{"header": "x-user-id", "in": ["1", "2"]},
                                                             {"cookie": "canary", "equals": "always"}]}}]
    book = RuleBook(config.parse_rules(raw), {"C": ["base", "gray"]})
    shown = book.state()
    r = Reloader(book, None)
    assert r.put({"routing_rules": shown["routing_rules"], "topology": shown["topology"]}) is None
    assert book.current.version == 1


def test_rule_changes_close_together_share_one_mark() -> None:
    from lanewatch.dashboard.figures import rule_change_marks

    t = 1_800_000_000.0
    changes = [{"version": v, "since": t + dt, "source": "file", "routing_rules": 1}
               for v, dt in ((2, 0.0), (3, 1.0), (4, 2.5), (5, 60.0))]
    shapes, notes = rule_change_marks(changes, "UTC")
    assert [n["text"] for n in notes] == ["rules v2-v4, 3 changes", "rules v5 (file)"]
    assert len(shapes) == 2 and shapes[0]["x0"] == "2027-01-15T08:00:02.500"
    assert "version 3: 1 rules" in notes[0]["hovertext"]


def test_a_put_that_imports_is_refused_saying_why() -> None:
    book = RuleBook([], {})
    with pytest.raises(ConfigError, match=r"routing_rules\[0\].import: a PUT body cannot import files"):
        Reloader(book, None).put({"routing_rules": [{"import": "/etc/passwd"}]})
    assert book.failure is not None and book.current.version == 1
