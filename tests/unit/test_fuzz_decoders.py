"""A small budget of coverage-guided fuzzing (atheris) over the decoders, through Engine.ingest
and through the real OTLP/HTTP receiver, seeded from tests/testdata/fuzz (bench/fuzz_decoders.py
runs the 1M-input benchmark). Every input must end in a clean answer."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "fuzz_decoders.py"
SEEDS = ROOT / "tests" / "testdata" / "fuzz"


def fuzz(tmp_path: Path, *args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    corpus = tmp_path / "corpus"
    shutil.copytree(SEEDS, corpus)  # libFuzzer writes new inputs into the first corpus directory
    (tmp_path / "art").mkdir()
    cli = [*args, "--artifacts", str(tmp_path / "art"), str(corpus)]
    cmd = [sys.executable, str(SCRIPT), *cli] if code is None else [sys.executable, "-c", code, *cli]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240, cwd=tmp_path)


def summary(run: subprocess.CompletedProcess[str]) -> re.Match[str]:
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    m = re.search(r"fuzz_decoders target=(\w+): (\d+) inputs .*; findings: 0", run.stdout)
    assert m, run.stdout[-2000:]
    return m


@pytest.mark.parametrize(("target", "runs"), [("engine", 20_000), ("http", 5_000)])
def test_every_input_ends_in_a_clean_answer(tmp_path: Path, target: str, runs: int) -> None:
    m = summary(fuzz(tmp_path, "--runs", str(runs), "--target", target, "--seed", "7"))
    assert m.group(1) == target and int(m.group(2)) == runs
    # the seeds were read and the fuzzer found inputs of its own
    assert len(list((tmp_path / "corpus").iterdir())) > len(list(SEEDS.iterdir()))


def test_an_exception_other_than_decode_error_is_a_finding(tmp_path: Path) -> None:
    """The harness is able to fail: an engine that raises KeyError on one seed stops the run."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); sys.argv = [sys.argv[0], *sys.argv[2:]]\n"
            "import fuzz_decoders as f\n"
            "ingest = f.Engine.ingest\n"
            "def broken(self, signal, body, fmt):\n"
            "    if signal == 'logs':\n"
            "        raise KeyError('a bug')\n"
            "    return ingest(self, signal, body, fmt)\n"
            "f.Engine.ingest = broken\n"
            "f.main()\n")
    run = fuzz(tmp_path, str(ROOT / "bench"), "--runs", "2000", code=code)
    assert run.returncode != 0
    assert "KeyError: 'a bug'" in run.stdout + run.stderr
    assert list((tmp_path / "art").glob("crash-*"))
