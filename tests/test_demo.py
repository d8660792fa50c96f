"""``sparsemax-nb demo``: the walk-through runs, and its speed table pairs its timings."""

import re
import time

import numpy as np

from sparsemax_nb.cli import main


def _table(out):
    """``{row label: (/ copyto, / softmax, / NumPy sort)}`` of the speed section."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\s+(NumPy \S+(?: \S+)?|sparsemax_nb method=\w+)\s+(\S+)\s+(\S+)\s+(\S+)$",
                     line)
        if m:
            rows[m.group(1)] = tuple(float(v) for v in m.groups()[1:])
    return rows


def test_demo_without_speed(capsys):
    assert main(["demo", "--no-speed"]) == 0
    out = capsys.readouterr().out
    assert "exact zeros" in out and "mean loss" in out
    assert "speed" not in out


def test_demo_speed_references_read_one_against_themselves(capsys, monkeypatch):
    # A clock under which every timed call looks slower than the one before, as when the
    # machine's load grows during the run: a reference timed apart from its own row then
    # reads, e.g., "NumPy softmax at 1.22 x NumPy softmax". Ratios of times taken in the
    # same round are immune: a reference against itself is 1 exactly.
    clock = {"now": 0.0, "step": 1e-3}

    def drifting():
        clock["now"] += clock["step"]
        clock["step"] *= 1.05
        return clock["now"]

    monkeypatch.setattr(time, "perf_counter", drifting)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert set(rows) == {"sparsemax_nb method=select", "sparsemax_nb method=sort",
                         "NumPy softmax", "NumPy sort-based sparsemax"}, out
    assert rows["NumPy softmax"][1] == 1.0
    assert rows["NumPy sort-based sparsemax"][2] == 1.0
    for ratios in rows.values():
        assert all(np.isfinite(r) and r > 0 for r in ratios)
