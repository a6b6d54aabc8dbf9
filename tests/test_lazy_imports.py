"""``import ranvier`` is light: submodules load on first use, optional packages come with extras."""

import subprocess
import sys

import pytest

import ranvier as rv
from ranvier import MissingExtraError


def _python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_ranvier_leaves_the_heavy_packages_unimported():
    out = _python("import sys, ranvier\n"
                  "print(sorted(m for m in ('torch', 'sympy', 'dask', 'distributed', 'tonic', 'sklearn', 'nir',"
                  " 'neo', 'elephant', 'matplotlib', 'h5py', 'snntorch') if m in sys.modules))")
    assert out.strip() == "[]"


def test_submodules_are_attributes_after_import_ranvier():
    out = _python("import ranvier as rv\n"
                  "print(rv.datasets.digits_events.__name__, rv.plots.raster.__name__, rv.testing.check_model.__name__,"
                  " rv.language.select.__name__, rv.train.SpikingModule.__name__, rv.neurons.Equations.__name__,"
                  " rv.sweep.grid_points.__name__)")
    assert out.split() == ["digits_events", "raster", "check_model", "select", "SpikingModule", "Equations",
                           "grid_points"]
    assert "plots" in dir(rv) and "train" in dir(rv)
    with pytest.raises(AttributeError, match="no attribute 'frobnicate'"):
        rv.frobnicate  # noqa: B018


def test_sweep_is_the_function_and_the_module_however_it_was_imported():
    import ranvier.sweep
    from ranvier.sweep import grid_points

    assert callable(rv.sweep) and rv.sweep is ranvier.sweep and rv.sweep.grid_points is grid_points
    assert "sweep" in rv.__all__ and all(hasattr(rv, name) for name in rv.__all__)


def _without(monkeypatch, module: str, *loaded: str):
    """As if ``module`` were not installed and the ranvier modules ``loaded`` never imported."""
    monkeypatch.setitem(sys.modules, module, None)
    for name in list(sys.modules):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in loaded):
            monkeypatch.delitem(sys.modules, name)


def test_train_without_torch_names_the_extra(monkeypatch):
    _without(monkeypatch, "torch", "ranvier.train")
    monkeypatch.delitem(vars(rv), "train", raising=False)
    with pytest.raises(MissingExtraError, match=r"ranvier.train needs torch.*pip install 'ranvier\[torch\]'"):
        rv.train  # noqa: B018
    with pytest.raises(ImportError):  # a MissingExtraError is an ImportError too
        rv.train  # noqa: B018


def test_equations_without_sympy_names_the_extra(monkeypatch):
    _without(monkeypatch, "sympy", "ranvier.neurons.equations")
    monkeypatch.delitem(vars(rv.neurons), "Equations", raising=False)
    with pytest.raises(MissingExtraError, match=r"Equations needs sympy.*pip install 'ranvier\[equations\]'"):
        rv.neurons.Equations  # noqa: B018


def test_sweep_without_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingExtraError, match=r"ranvier.sweep needs distributed.*ranvier\[dask\]"):
        rv.sweep(lambda x: x, {"x": [1]})


def test_nir_without_nir_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)
    with pytest.raises(MissingExtraError, match=r"ranvier.nir needs nir.*ranvier\[nir\]"):
        rv.nir.load("graph.nir")


def test_neo_io_without_neo_names_the_extra(monkeypatch):
    _without(monkeypatch, "neo", "ranvier.neo_io")
    monkeypatch.delitem(vars(rv), "neo_io", raising=False)
    with pytest.raises(MissingExtraError, match=r"needs neo.*ranvier\[neo\]"):
        rv.neo_io  # noqa: B018


def test_the_core_dependencies_are_the_light_ones():
    tomllib = pytest.importorskip("tomllib")
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    core = {dep.split(">")[0].split(";")[0].split("=")[0].strip() for dep in project["dependencies"]}
    assert core == {"numpy", "numba", "h5py", "matplotlib", "tqdm", "tomli"}
    extras = project["optional-dependencies"]
    assert {"torch", "datasets", "dask", "nir", "equations", "neo", "all", "test"} <= set(extras)
