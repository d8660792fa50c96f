"""``sparsemax-nb figures``: the PNG files are written (skipped without matplotlib)."""

import pytest

pytest.importorskip("matplotlib")

from sparsemax_nb import cli  # noqa: E402
from sparsemax_nb.cli.figures import FILES  # noqa: E402


def test_figures_written(tmp_path, capsys):
    out = tmp_path / "figs"
    assert cli.main(["figures", str(out), "--dpi", "40"]) == 0
    for name in FILES:
        f = out / name
        assert f.is_file() and f.stat().st_size > 1000
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out.split()
    assert len(printed) == len(FILES)
