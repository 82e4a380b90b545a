"""``lanewatch check --compare``: the verdict of ``/api/v1/gate`` (containment plus gray vs base).

With ``--compare`` the exit status is the gate's ``pass``: true 0, false 1 (a violation, a dead
lane, a lane worse than base, or a marginal score), null 3 (inconclusive: no finished trace,
or nothing to compare had enough requests; ``--allow-empty`` makes it 0). The same codes as
without ``--compare``; the containment rules are the same function (:mod:`lanewatch.containment`).
Standard library only, like :mod:`lanewatch.check`.
"""

from __future__ import annotations

from typing import Any


class GateAnswerError(ValueError):
    """The gate's answer is not what this version understands."""


def gate_pass(gate: Any) -> bool | None:
    """The gate's ``pass`` (True, False or None); raises GateAnswerError on anything else."""
    if not isinstance(gate, dict) or "pass" not in gate or not isinstance(gate.get("checks"), list):
        raise GateAnswerError("the gate's answer lacks pass/checks: is this a lanewatch API of this "
                              "version or newer (/api/v1/gate)?")
    verdict = gate["pass"]
    if verdict is not None and not isinstance(verdict, bool):
        raise GateAnswerError(f"the gate's pass is {verdict!r}: expected true, false or null")
    return verdict


def gate_lines(gate: dict[str, Any], allow_empty: bool) -> list[str]:
    """The gray-vs-base lines of the report, then its conclusion: the gate's sentence, which
    names every failed check."""
    comparisons = [c for c in gate.get("comparisons") or [] if isinstance(c, dict)]
    lane = gate.get("lane")
    if comparisons:
        lines = [f"  {lane or 'each lane'} vs base ({len(comparisons)} compared):"]
    elif lane == "base":
        lines = ["  vs base: base is the baseline, nothing to compare"]
    else:
        lines = [f"  {lane or 'each lane'} vs base: no {lane or 'non-base'} instance served traffic "
                 + "in scope, nothing to compare"]
    lines += [f"    {c.get('text')}" for c in comparisons]
    text = str(gate.get("text") or "")
    if allow_empty and gate["pass"] is None:
        text = "PASS (allowed empty): " + text.split("): ", 1)[-1]
    return [*lines, text]
