"""The ranvier command line."""

import subprocess
import sys

from ranvier.cli import main


def test_demo_prints_summary_and_saves_plot(in_tmp, capsys):
    assert main(["demo", "--n", "400", "--duration", "0.05", "--quiet", "--output", "demo.png"]) == 0
    out = capsys.readouterr().out
    for label in ("rate  exc", "rate  inh", "spikes:", "synaptic events:", "run time:", "demo.png"):
        assert label in out
    assert (in_tmp / "demo.png").stat().st_size > 10_000


def test_info_lists_backends_and_gpu(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numba" in out and "numpy  available" in out and "GPU:" in out


def test_bad_input_exits_1_with_a_message(capsys):
    assert main(["demo", "--n", "0", "--quiet"]) == 1
    assert "population 'exc'" in capsys.readouterr().err


def test_run_executes_a_script(in_tmp, capsys):
    script = in_tmp / "hello.py"
    script.write_text("import sys\nprint('ran with', sys.argv[1:])\n")
    assert main(["run", str(script), "--flag", "x"]) == 0
    assert "ran with ['--flag', 'x']" in capsys.readouterr().out


def test_console_script_usage_error_exits_2():
    result = subprocess.run([sys.executable, "-m", "ranvier.cli", "frobnicate"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice" in result.stderr
