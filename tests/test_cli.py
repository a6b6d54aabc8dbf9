"""The ranvier command line."""

import subprocess
import sys

from ranvier.cli import main


def test_demo_prints_summary_and_saves_plot(in_tmp, capsys):
    assert main(["demo", "--n", "400", "--duration", "0.05", "--quiet", "--output", "demo.png"]) == 0
    out = capsys.readouterr().out
    for label in ("rate  exc", "rate  inh", "spikes:", "synaptic events:", "run time:", "demo.png",
                  "hardware (loihi2):", "demo_hardware.png"):
        assert label in out
    assert (in_tmp / "demo.png").stat().st_size > 10_000
    assert (in_tmp / "demo_hardware.png").stat().st_size > 10_000


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


_SCRIPT = """
import ranvier as rv
net = rv.networks.cuba(n=300, seed=1)
if RUN:
    net.run(0.02, backend="numpy")
"""


def test_estimate_a_script_on_one_target(in_tmp, capsys):
    script = in_tmp / "model.py"
    script.write_text(_SCRIPT.replace("RUN", "True"))
    assert main(["estimate", str(script), "--target", "loihi", "--json", "r.json", "--plot", "r.png"]) == 0
    out = capsys.readouterr().out
    assert "Intel Loihi" in out and "measured counts" in out and "saved r.png" in out
    assert '"target": "loihi"' in (in_tmp / "r.json").read_text() and (in_tmp / "r.png").stat().st_size > 5000


def test_estimate_on_all_targets_reports_those_that_cannot_run_it(in_tmp, capsys):
    script = in_tmp / "model.py"
    script.write_text(_SCRIPT.replace("RUN", "False"))
    assert main(["estimate", str(script), "--target", "all", "--rate", "5"]) == 0
    out = capsys.readouterr().out
    assert "truenorth: cannot run this network" in out and "ESTIMATE" in out and "[spinnaker2]" in out


def test_estimate_errors_exit_1_with_a_message(in_tmp, capsys):
    script = in_tmp / "model.py"
    script.write_text(_SCRIPT.replace("RUN", "False"))
    assert main(["estimate", str(script)]) == 1
    assert "did not run" in capsys.readouterr().err
    assert main(["estimate", str(script), "--target", "loihi9", "--rate", "5"]) == 1
    assert "known targets:" in capsys.readouterr().err
    other = in_tmp / "model.txt"
    other.write_text("")
    assert main(["estimate", str(other)]) == 1
    assert "model.txt must be a .py script" in capsys.readouterr().err


def test_estimate_a_saved_network_and_a_nir_file(in_tmp, capsys):
    import importlib.util

    import pytest

    import ranvier as rv

    if not hasattr(rv.Network, "save"):
        pytest.skip("saving networks (HDF5) is not in this checkout")
    net = rv.networks.cuba(n=300, seed=1)
    net.run(0.02, backend="numpy")
    net.save("run.h5")
    assert main(["estimate", "run.h5", "--target", "loihi"]) == 0
    out = capsys.readouterr().out
    assert "Intel Loihi" in out and "measured counts" in out  # the saved run's counts came along
    (in_tmp / "graph.nir").write_bytes(b"")
    if importlib.util.find_spec("ranvier.nir") is None:
        assert main(["estimate", "graph.nir"]) == 1
        assert "needs ranvier.nir" in capsys.readouterr().err


def test_estimate_runs_a_bundled_example_with_its_own_arguments(in_tmp, capsys):
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "cuba.py"
    argv = sys.argv[:]
    assert main(["estimate", str(example), "--target", "loihi2", "--", "--n", "300", "--duration", "0.02"]) == 0
    assert sys.argv == argv  # the script saw its own arguments, and the process's came back
    out = capsys.readouterr().out
    assert "[loihi2]: measured counts" in out and "in 0.02 s (200 steps)" in out
    assert "faster than real time" in out or "slower than real time" in out


def test_errors_have_one_prefix_naming_the_command(in_tmp, capsys):
    assert main(["estimate", "no_such_model.py"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ranvier estimate: no such file") and "ranvier: ranvier" not in err
    assert main(["demo", "--n", "0", "--quiet"]) == 1
    assert capsys.readouterr().err.startswith("ranvier demo: ")


def test_help_has_no_raw_markup(capsys):
    import pytest

    for command in ([], ["estimate"], ["run"], ["bench"], ["demo"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        out = capsys.readouterr().out
        assert "``" not in out and "`" not in out, out


def test_speed_against_real_time_is_said_in_words(in_tmp, capsys):
    from ranvier.hardware import realtime_text

    assert realtime_text(12.5) == "12.5x faster than real time"
    assert realtime_text(0.25) == "4x slower than real time"
    assert realtime_text(1.0) == realtime_text(0.9994) == realtime_text(1.0004) == "as fast as real time"
    assert main(["bench", "--n", "200", "--duration", "0.02", "--repeats", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "x real time" not in out and "wall s per bio s" in out and "below 1 is faster than real time" in out
