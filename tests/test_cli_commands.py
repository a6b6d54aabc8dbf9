"""The command line: --help on every command, ranvier bench, exit codes."""

import json
import subprocess
import sys

import pytest

from ranvier.cli import build_parser, main


def _commands() -> list[str]:
    parser = build_parser()
    choices = next(action.choices for action in parser._actions if getattr(action, "choices", None))
    return sorted(choices)


def test_every_api_command_exists():
    assert {"demo", "run", "estimate", "bench", "info"} <= set(_commands())


@pytest.mark.parametrize("command", [[], *([name] for name in ("demo", "run", "estimate", "bench", "info"))])
def test_help_everywhere_exits_0(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ranvier") and "--help" in out


def test_top_level_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "exit codes: 0 success, 1 simulation or input error, 2 bad usage" in capsys.readouterr().out


def test_bench_times_both_backends_and_writes_json(in_tmp, capsys):
    assert main(["bench", "--n", "300", "--duration", "0.05", "--repeats", "1", "--quiet", "--json", "b.json"]) == 0
    out = capsys.readouterr().out
    assert "numba" in out and "numpy" in out and "faster than the numpy reference" in out
    rows = json.loads((in_tmp / "b.json").read_text())
    assert [row["backend"] for row in rows] == ["numba", "numpy"]
    assert all(row["run_s"] > 0 and row["spikes"] > 0 for row in rows)


def test_bad_input_to_bench_exits_1(capsys):
    assert main(["bench", "--n", "-5", "--quiet"]) == 1
    assert "population 'exc'" in capsys.readouterr().err


def test_missing_script_exits_2(capsys):
    assert main(["run", "no_such_script.py"]) == 2
    assert "no such script" in capsys.readouterr().err


def test_run_passes_on_the_script_exit_status(in_tmp):
    (in_tmp / "fails.py").write_text("import sys\nsys.exit(3)\n")
    result = subprocess.run([sys.executable, "-m", "ranvier.cli", "run", "fails.py"], capture_output=True, text=True)
    assert result.returncode == 3


def test_interrupt_exits_130(in_tmp, capsys):
    (in_tmp / "interrupted.py").write_text("raise KeyboardInterrupt\n")
    assert main(["run", "interrupted.py"]) == 130
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["bench", "--repeats", "0"], ["bench", "--repeats", "-2"],
                                  ["estimate", "m.h5", "--inferences", "0"]])
def test_counts_below_one_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and "at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["demo", "--output", "no/such/dir/demo.png"],
                                  ["estimate", "m.h5", "--json", "no/such/dir/report.json"],
                                  ["estimate", "m.h5", "--plot", "no/such/dir/energy.png"],
                                  ["bench", "--json", "no/such/dir/bench.json"]])
def test_an_output_in_a_missing_directory_is_refused_before_running(argv, in_tmp, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and "directory 'no/such/dir' does not exist" in capsys.readouterr().err
