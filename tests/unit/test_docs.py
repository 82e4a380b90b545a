"""What users read first must be true: README commands, links and the configuration table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_readme_links_point_at_files_users_have() -> None:
    assert "shared/" not in README and "LANES.md" not in README  # the project's private notes
    for target in re.findall(r"\]\(([^)#\s]+)(?:#([^)\s]+))?\)", README):
        path, anchor = target
        if path.startswith("http"):
            continue
        assert (ROOT / path).exists(), path
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), flags=re.MULTILINE)
            assert anchor in {_slug(h) for h in headings}, f"{path}#{anchor}"


def test_quick_start_runs_the_demo_without_test_extras_and_tests_match_ci() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)
    assert blocks[0].strip() == "pip install -e . && lanewatch demo"
    assert "pip install -e '.[test]' && python -m pytest -q" in [b.strip() for b in blocks]
    ci = (ROOT / ".ci/run").read_text()
    assert "pip install -q -e '.[test]'" in ci and "python -m pytest -q" in ci


def test_readme_states_the_measured_demo_start_up() -> None:
    assert "about 10 s" not in README
    assert re.search(r"up in [0-9.]+-[0-9.]+ s", README), "the measured start-up, e.g. 'up in 2.5-4 s'"


def test_configuration_doc_has_the_current_table() -> None:
    doc = (ROOT / "docs/configuration.md").read_text()
    table = doc.split("<!-- generated: python -m lanewatch.cli config --markdown -->\n")[1]
    table = table.split("<!-- end generated -->")[0]
    out = subprocess.run([sys.executable, "-m", "lanewatch.cli", "config", "--markdown"],
                         capture_output=True, text=True, check=True).stdout
    assert table == out, "regenerate: python -m lanewatch.cli config --markdown"
