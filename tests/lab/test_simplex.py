"""``python -m gumbel_softmax.lab.simplex`` writes its figure where it is told (``--out``), by
default into the current directory, and refuses bad options with a message and exit status 2."""

from __future__ import annotations

import pytest

from gumbel_softmax.lab import records, simplex

PNG = b"\x89PNG\r\n\x1a\n"
FEW = ["--samples", "2000"]  # the measured facts, cheaply


def test_out_is_where_the_figure_goes_and_nothing_else_is_written(tmp_path, monkeypatch, capsys):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "figs" / "nested" / "simplex.png"  # missing directories are created
    simplex.main(["--out", str(out), *FEW])
    assert out.read_bytes()[:8] == PNG
    assert list(cwd.iterdir()) == []  # the old version wrote ./docs/concrete_simplex.png
    assert sorted(p.name for p in out.parent.iterdir()) == ["simplex.png"]  # no temp file left
    printed = capsys.readouterr().out
    assert f"figure: {out}" in printed and "argmax freq" in printed


def test_default_is_a_file_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    simplex.main(FEW)
    assert [p.name for p in tmp_path.iterdir()] == ["concrete_simplex.png"]
    assert (tmp_path / "concrete_simplex.png").read_bytes()[:8] == PNG


def test_help_states_the_default(capsys):
    with pytest.raises(SystemExit) as exc:
        simplex.main(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: concrete_simplex.png in the current directory" in text


def test_the_format_follows_the_suffix_and_an_old_figure_is_replaced(tmp_path):
    out = tmp_path / "simplex.svg"
    out.write_text("an older figure")
    simplex.main(["--out", str(out), *FEW])
    assert out.read_text().lstrip().startswith("<?xml") and "<svg" in out.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--out", "{tmp}"], "is a directory; give a file name"),
        (["--out", "{tmp}/fig.txt"], "unknown figure format '.txt'"),
        (["--out", "{tmp}/fig"], "unknown figure format '(no suffix)'"),
        (["--out", "{tmp}/file/fig.png"], "is a file, not a directory"),
        (["--ou", "{tmp}/fig.png"], "unrecognized arguments: --ou"),  # no abbreviations
        (["--seed", "-1"], "--seed must be >= 0, got -1"),
        (["--samples", "0"], "--samples must be >= 1, got 0"),
        (["--seed", "x"], "invalid int value"),
    ],
)
def test_bad_options_end_with_a_message_and_status_2(tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exc:
        simplex.main([a.format(tmp=tmp_path) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "python -m gumbel_softmax.lab.simplex: error:" in err and message in err
    assert "Traceback" not in err


def test_a_failed_write_is_a_message_and_keeps_the_old_figure(tmp_path, monkeypatch, capsys):
    out = tmp_path / "simplex.png"
    out.write_bytes(b"old")

    def disk_full(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(records, "write_atomic", disk_full)  # the lab's one writer
    with pytest.raises(SystemExit) as exc:
        simplex.main(["--out", str(out), *FEW])
    assert exc.value.code == 2
    assert "cannot write the figure" in capsys.readouterr().err
    assert out.read_bytes() == b"old"
