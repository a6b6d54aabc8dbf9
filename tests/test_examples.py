"""Every example in examples/ runs, at a small size."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SMALL = {
    "cuba.py": ["--n", "500", "--duration", "0.1"],
    "custom_models.py": ["--duration", "0.2"],
    "brunel.py": ["--n", "1250", "--duration", "0.1"],
    "digits_events.py": ["--train", "60", "--test", "30", "--hidden", "100"],
    "elephant_statistics.py": ["--n", "500", "--duration", "0.3"],
    "elm_long_horizon.py": ["--steps", "40", "--samples", "64", "--iterations", "3", "--memory", "4"],
    "hardware_cost.py": ["--n", "500", "--duration", "0.05"],
    "hybrid_ann_snn.py": ["--train", "150", "--test", "16", "--epochs", "50"],
    "kuramoto.py": ["--n", "200", "--duration", "10"],
    "mixed_rates.py": ["--duration", "0.3", "--cells", "100", "--readout", "ltc"],
    "nalsm_digits.py": ["--liquid", "120", "--organise", "40", "--train", "60", "--test", "30"],
    "sweep_cuba.py": ["--n", "300", "--duration", "0.05", "--steps", "2", "--workers", "2"],
    "train_lif.py": ["--hidden", "24", "--epochs", "1", "--train", "300"],
    "learn_delays.py": ["--classes", "3", "--channels", "6", "--hidden", "6", "--max-delay", "12", "--epochs", "2",
                        "--train", "64", "--test", "32"],
}


def test_every_example_has_a_small_configuration():
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(SMALL)


#: examples that need an optional extra: the packages they import
NEEDS = {"elephant_statistics.py": ("neo", "elephant")}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_example_runs(name, in_tmp):
    for package in NEEDS.get(name, ()):
        pytest.importorskip(package, reason=f"{name} needs {package} (pip install 'ranvier[neo]')")
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *SMALL[name]], capture_output=True, text=True,
                            cwd=in_tmp, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "saved" in result.stdout
    assert list(in_tmp.glob("*.png"))


def test_custom_models_agree_across_backends_and_with_the_hand_written_model(in_tmp):
    result = subprocess.run([sys.executable, str(EXAMPLES / "custom_models.py"), "--duration", "0.2"],
                            capture_output=True, text=True, cwd=in_tmp, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("numpy and numba identical: True") == 4
    assert "hand-written and Equations Izhikevich give the same spikes: True" in result.stdout
