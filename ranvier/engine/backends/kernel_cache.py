"""Where the numba backend keeps its generated kernels, and when it may trust what it finds there.

numba's cache (``cache=True``) stores machine code beside an index file (``.nbi``) that it
*unpickles* when loading: whoever can write into the cache directory can make the next run
execute code of their choosing. So the directory (``$RANVIER_CACHE_DIR``, default
``~/.cache/ranvier``; kernels in its ``kernels/``) is used only when it, its ``kernels/`` and
``kernels/__pycache__`` are owned by the current user and not writable by group or others.
Otherwise kernels go to a private per-user directory (``<tmp>/ranvier-<uid>/kernels``, mode
0700, checked the same way) and a :class:`~ranvier.errors.RanvierWarning` says why, once. If no
trusted directory can be had, or the cache cannot be written or read (a full disk, a corrupted
index), kernels compile without a cache, with a warning, and the run goes on.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import stat
import sys
import tempfile
import types
import warnings
from pathlib import Path

from ...errors import RanvierWarning

#: what loading a damaged or unreadable cache entry raises inside numba (its index is a pickle)
CACHE_ERRORS = (OSError, EOFError, pickle.UnpicklingError, ValueError, KeyError, AttributeError, ImportError,
                IndexError, ModuleNotFoundError)

_WARNED: set[str] = set()
#: kernel module name -> (source, model functions), to compile again without the cache
_SOURCES: dict[str, tuple[str, dict]] = {}
_UNCACHED: dict[str, object] = {}


def warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RanvierWarning, stacklevel=3)


def configured_root() -> Path:
    """The cache directory asked for: ``$RANVIER_CACHE_DIR``, else ``~/.cache/ranvier``."""
    return Path(os.environ.get("RANVIER_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "ranvier"))


def untrusted(path: Path) -> str | None:
    """Why ``path`` (a directory) cannot be trusted with code, or None when it can (or does not exist)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as error:
        return f"{path} cannot be inspected ({error})"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return f"{path} is owned by user id {info.st_uid}, not by this user ({os.getuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"{path} is writable by {'others' if info.st_mode & stat.S_IWOTH else 'its group'}"
    return None


def _prepare(root: Path) -> tuple[Path | None, str | None]:
    """``root/kernels``, made (mode 0700) and checked: (the directory, None) or (None, why not)."""
    kernels = root / "kernels"
    try:
        kernels.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as error:
        return None, f"{kernels} cannot be created ({type(error).__name__}: {error})"
    for path in (root, kernels, kernels / "__pycache__"):
        reason = untrusted(path)
        if reason is not None:
            return None, reason
    if not os.access(kernels, os.W_OK | os.X_OK):
        return None, f"{kernels} is not writable"
    return kernels, None


def cache_dir() -> Path | None:
    """The trusted directory for kernels, or None: compile without a cache (warned once)."""
    root = configured_root()
    kernels, reason = _prepare(root)
    if kernels is not None:
        return kernels
    private = Path(tempfile.gettempdir()) / f"ranvier-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    if private != root:
        fallback, second = _prepare(private)
        if fallback is not None:
            warn_once(f"ranvier: not using the kernel cache {root}: {reason}; numba unpickles files there, so "
                      f"only a directory of your own that others cannot write is used. Using {fallback} instead "
                      "(set RANVIER_CACHE_DIR to a private directory to choose one)")
            return fallback
        reason = f"{reason}; and {second}"
    warn_once(f"ranvier: compiling kernels without a cache: {reason}")
    return None


def remove_stale_temporaries(directory: Path) -> None:
    """Remove kernel sources half-written by killed processes (``<name>.<pid>.tmp``)."""
    from ..storage import remove_stale_temporaries as remove

    remove(directory, "*.tmp")


def load(name: str, source: str, functions: dict) -> object:
    """The ``advance`` function of kernel module ``name``: from the trusted cache, or compiled without one."""
    _SOURCES[name] = (source, functions)
    directory = cache_dir()
    if directory is not None:
        try:
            remove_stale_temporaries(directory)
            path = directory / f"{name}.py"
            if not path.exists() or path.read_text() != source:
                temporary = path.with_suffix(f".{os.getpid()}.tmp")
                temporary.write_text(source)
                os.replace(temporary, path)
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # numba's cache looks the module up by name when loading
            vars(module).update(functions)
            spec.loader.exec_module(module)
            return module.advance
        except (OSError, UnicodeDecodeError) as error:
            warn_once(f"ranvier: the kernel cache {directory} cannot be used ({type(error).__name__}: {error}); "
                      "compiling without it")
    return _compile_uncached(name)


def _compile_uncached(name: str) -> object:
    if name not in _UNCACHED:
        source, functions = _SOURCES[name]
        module = types.ModuleType(f"{name}_uncached")
        vars(module).update(functions)
        exec(compile(source.replace("cache=True", "cache=False"), f"<ranvier kernel {name}>", "exec"),  # noqa: S102
             vars(module))
        _UNCACHED[name] = module.advance
    return _UNCACHED[name]


def without_cache(kernel, error: BaseException) -> object:
    """``kernel`` compiled again without the cache, after loading it from the cache raised ``error``
    (a damaged index or machine-code file); the damaged entries are removed."""
    name = getattr(getattr(kernel, "py_func", None), "__module__", None)
    if name not in _SOURCES:
        raise error
    warn_once(f"ranvier: the cached kernel {name} cannot be loaded ({type(error).__name__}: {error}); "
              "compiling it without the cache")
    directory = cache_dir()
    if directory is not None:
        for entry in (directory / "__pycache__").glob(f"{name}*"):
            try:
                entry.unlink()
            except OSError:
                pass
    return _compile_uncached(name)
