import subprocess
import sys

from scalinglab.cli import main
from scalinglab.errors import DataError


def test_help_lists_commands(capsys):
    assert main([]) == 2
    out = capsys.readouterr().out
    assert "usage: scalinglab" in out


def test_module_entry_point_runs():
    r = subprocess.run(
        [sys.executable, "-m", "scalinglab", "--version"], capture_output=True, text=True
    )
    assert r.returncode == 0
    assert r.stdout.startswith("scalinglab ")


def test_library_errors_become_one_line(monkeypatch, capsys):
    import scalinglab.cli as cli

    def boom(args):
        raise DataError("corpus.txt: byte 17: invalid UTF-8")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    sub = next(a for a in parser._actions if a.dest == "command")
    p = sub.add_parser("boom")
    p.set_defaults(func=boom)
    assert cli.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err == "error: corpus.txt: byte 17: invalid UTF-8\n"
