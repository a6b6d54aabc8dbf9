"""The fingerprint that names a generated kernel: a hash of everything its compiled code depends on.

The kernel cache (:mod:`.kernel_cache`) finds a kernel by name, and numba's cache checks only
the kernel's own source file; so the name must change whenever anything compiled into the
kernel changes: its source, numba's version, the model language and the shared kernels it
calls, and the code of the model functions handed to it.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import types

import numba
import numpy as np

from .. import model as model_language
from . import numba_kernels


def _hash_code(function, digest, seen: set[int]) -> None:
    """Add ``function``'s compiled code and the module globals it reads to ``digest``.

    The code object, not the source file: a function defined where no source exists (a REPL)
    hashes as well as one in a module, and editing anything the function reads, such as a
    row-index constant, changes the hash.
    """
    if id(function) in seen:
        return
    seen.add(id(function))
    function = getattr(function, "py_func", function)
    code = getattr(function, "__code__", None)
    if code is None:
        digest.update(repr(function).encode())
        return
    namespace = getattr(function, "__globals__", {})
    for part in _code_parts(code):
        digest.update(part)
    names = set(_global_names(code))
    for name in sorted(names):
        if name in namespace:
            _hash_value(name, namespace[name], names, digest, seen)
    # a closure's values are compiled in as constants, as globals are
    for name, cell in zip(code.co_freevars, getattr(function, "__closure__", None) or (), strict=False):
        try:
            value = cell.cell_contents
        except ValueError:
            digest.update(f"{name}: empty".encode())
            continue
        _hash_value(name, value, names, digest, seen)


def _hash_value(name: str, value, names: set[str], digest, seen: set[int]) -> None:
    """Add what numba compiles in of the global or closure value ``name``: a function's code, a
    number's or an array's value (numba freezes global arrays), a module's attributes the code names."""
    if callable(value) and hasattr(getattr(value, "py_func", value), "__code__"):
        _hash_code(value, digest, seen)
    elif isinstance(value, int | float | complex | str | bytes | bool | np.generic | tuple):
        digest.update(f"{name}={type(value).__qualname__}:{value!r}".encode())
    elif isinstance(value, np.ndarray):
        digest.update(f"{name}=array:{value.dtype.str}:{value.shape}".encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, types.ModuleType):
        digest.update(f"{name}:module {value.__name__}".encode())
        if id(value) in seen:
            return
        seen.add(id(value))
        # ``helpers.decay(v)``: the attributes of the module the code names (a helper edited there)
        for attribute in sorted(names):
            if attribute in vars(value):
                _hash_value(f"{value.__name__}.{attribute}", vars(value)[attribute], names, digest, seen)
    else:
        digest.update(f"{name}:{type(value).__module__}.{type(value).__qualname__}".encode())


def _code_parts(code):
    yield code.co_code
    yield repr(code.co_names).encode()
    yield repr(code.co_varnames).encode()
    for constant in code.co_consts:
        if hasattr(constant, "co_code"):
            yield from _code_parts(constant)
        else:
            yield f"{type(constant).__name__}:{constant!r}".encode()


def _global_names(code):
    yield from code.co_names
    for constant in code.co_consts:
        if hasattr(constant, "co_code"):
            yield from _global_names(constant)


@functools.cache
def _library_source() -> bytes:
    """numba's version and the source of the modules every kernel calls into, read once per process."""
    return b"\n".join((numba.__version__.encode(), inspect.getsource(model_language).encode(),
                       inspect.getsource(numba_kernels).encode()))


def kernel_fingerprint(source: str, model_functions: dict[str, object]) -> str:
    """Hash of everything the compiled kernel depends on."""
    digest = hashlib.sha256(source.encode())
    digest.update(_library_source())
    seen: set[int] = set()
    for alias, function in model_functions.items():
        digest.update(alias.encode())
        _hash_code(function, digest, seen)
    return digest.hexdigest()[:20]


