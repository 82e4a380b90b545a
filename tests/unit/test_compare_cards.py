"""The Overview's headline cards as plain functions on literal summary dicts (the fields of
``Query.summary`` with ``dead_lanes``, ``entry_rate``, ``hop_rate``... and without them)."""

from __future__ import annotations

from typing import Any

from dash import dcc, html
from dash_tree import find, text

from lanewatch.dashboard import components as C
from lanewatch.dashboard import theme as T

COLOURS = T.lane_colours(["base", "gray", "blue"])
NEW = {  # a summary with the extended per-lane fields
    "window_s": 300, "covered_s": 38, "traces_violated": 0,
    "lanes": {
        "base": {"traces": 50_000, "stayed": 50_000, "stayed_share": 1.0, "violated": 0, "requests": 150_000,
                 "errors": 60, "error_rate": 0.0004, "hop_rate": 3947.4, "entry_rate": 1315.8, "covered_s": 38},
        "gray": {"traces": 12_408, "stayed": 12_309, "stayed_share": 0.992, "violated": 99, "requests": 37_000,
                 "errors": 11_544, "error_rate": 0.312, "hop_rate": 973.7, "entry_rate": 326.5, "covered_s": 38},
    },
    "dead_lanes": [],
}
GRAY_WORSE = {"service": "B", "lane": "gray", "base": "base", "worse": True, "confidence": 0.9999,
              "text": "gray is worse than base (errors 31.2% vs 0.40%, confidence >99.9%)"}


def card(cards: list[Any], lane: str) -> Any:
    return next(c for c in cards if c.__dict__["data-lane"] == lane)


def test_cards_say_stayed_share_entry_rate_hop_rate_and_coverage() -> None:
    cards = C.headline_cards(NEW, COLOURS, "last 5 min", window_s=300)
    assert [c.__dict__["data-lane"] for c in cards] == ["base", "gray"]
    gray = text(card(cards, "gray"))
    assert "99.2%of 12,408 gray traces stayed in lane, last 38 s of data; 99 violated" in gray
    assert "326.5 entry req/s" in gray and "973.7 hops/s over all services" in gray
    assert "31.2% of hops failed" in gray and "req/s over" not in gray
    assert card(cards, "gray").__dict__["data-state"] == "violated"
    assert card(cards, "base").__dict__["data-state"] == "ok"
    assert "all stayed in lane" in text(card(cards, "base"))
    full = C.headline_cards({**NEW, "covered_s": 300, "lanes": {k: {**v, "covered_s": 300}
                                                                for k, v in NEW["lanes"].items()}},
                            COLOURS, "last 5 min", window_s=300)
    assert "stayed in lane, last 5 min" in text(full[1])


def test_worst_compare_verdict_is_on_the_card_linked_to_compare() -> None:
    clean = {**NEW, "lanes": {**NEW["lanes"], "gray": {**NEW["lanes"]["gray"], "stayed": 12_408, "violated": 0}}}
    rows = [GRAY_WORSE, {**GRAY_WORSE, "service": "A", "worse": False, "text": "no significant difference"}]
    cards = C.headline_cards(clean, COLOURS, "last 5 min", window_s=300, verdicts=rows)
    gray = card(cards, "gray")
    assert gray.__dict__["data-state"] == "worse" and "gray worse" in text(gray)
    link = find(gray, dcc.Link)[0]
    assert link.href == "/compare?service=B&lane=gray&window=300"
    assert text(link) == "B: gray is worse than base (errors 31.2% vs 0.40%, confidence >99.9%)"
    assert "worse" in text(gray) and gray.style["borderLeftColor"] == T.FIRST_LANE_COLOUR
    assert not find(card(cards, "base"), dcc.Link)  # base is never compared with itself
    calm = C.headline_cards(clean, COLOURS, "last 5 min", window_s=300, verdicts=rows[1:])
    assert card(calm, "gray").__dict__["data-state"] == "ok" and "not worse" in text(card(calm, "gray"))


def test_a_dead_lane_keeps_its_card_and_says_so() -> None:
    dead = {**NEW, "lanes": {"base": NEW["lanes"]["base"]}, "dead_lanes": [
        {"service": "A", "lane": "gray", "live_instances": 1, "idle_s": 125.0, "last_hop_ts": None,
         "service_requests": 4000},
        {"service": "C", "lane": "gray", "live_instances": 2, "idle_s": 70.0, "last_hop_ts": 1_767_225_500,
         "service_requests": 4000}]}
    cards = C.headline_cards(dead, COLOURS, "last 5 min", window_s=300)
    gray = card(cards, "gray")
    assert gray.__dict__["data-state"] == "dead"
    assert "no gray traffic for 2 min while 3 gray instances are live (A, C)" in text(gray)
    assert "dead" in text(gray) and "hops/s" not in text(gray)  # no zero rates on a lane without traffic
    assert [c.__dict__["data-lane"] for c in C.headline_cards(dead, COLOURS, "last 5 min", lane="gray")] == ["gray"]


def test_live_instances_without_traffic_keep_the_card_before_dead_lanes_exist() -> None:
    old = {"window_s": 60, "lanes": {"base": {"traces": 10, "stayed": 10, "requests": 30, "errors": 0,
                                              "error_rate": 0.0, "qps": 0.5}}}
    inst = [{"service": "A", "lane": "gray", "instance": "a-g", "live": True},
            {"service": "C", "lane": "gray", "instance": "c-g", "live": True},
            {"service": "C", "lane": "blue", "instance": "c-b", "live": False}]
    cards = C.headline_cards(old, COLOURS, "last 1 min", window_s=60, instances=inst)
    assert [c.__dict__["data-lane"] for c in cards] == ["base", "gray"]
    assert "no gray traffic while 2 gray instances are live" in text(cards[1])
    base = text(cards[0])  # an old summary: no entry_rate / hop_rate / covered_s
    assert "0.17 traces/s entered" in base and "0.50 hops/s over all services" in base
    assert "stayed in lane, last 1 min" in base


def test_cards_render_with_almost_nothing() -> None:
    cards = C.headline_cards({"lanes": {"gray": {}}}, COLOURS, "last 5 min")
    assert "no finished gray traces" in text(cards[0]) and "—" in text(cards[0])
    assert C.headline_cards({}, COLOURS, "last 5 min") == []


def test_estimated_lanes_mark_their_counts_and_say_why_on_hover() -> None:
    sampled = {**NEW, "estimated": True,
               "lanes": {**NEW["lanes"], "gray": {**NEW["lanes"]["gray"], "estimated": True}}}
    cards = C.headline_cards(sampled, COLOURS, "last 5 min", window_s=300)
    gray, base = card(cards, "gray"), card(cards, "base")
    assert "≈99.2%" in text(gray) and "of ≈12,408 gray traces" in text(gray) and "≈37,000 hops" in text(gray)
    marks = [c for c in find(gray, html.Span) + find(gray, html.Div) if getattr(c, "title", None) == C.ESTIMATED_TITLE]
    assert len(marks) == 2 and C.ESTIMATED_TITLE == "estimated from sampled spans"  # the badge and the share
    assert "≈" not in text(base)  # the exact lane keeps plain numbers
    assert "estimates from sampled traces" in text(C.counters_line(sampled))
