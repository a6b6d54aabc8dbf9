"""Compile every CUDA kernel the GPU check launches to PTX, without a GPU.

    .venv/bin/python benchmarks/gpu/ptx_check.py            # prints one JSON line; exit code 1 on a failure

numba.cuda compiles a kernel to PTX with NVIDIA's NVVM library alone (no driver, no device). This
builds the networks of the GPU check (``gpu_checks.py``: CUBA, CUBA-dense, the mixed network with
STDP, Kuramoto oscillators, an astrocyte and a CfC, the microcircuit) and a few more shapes
(per-synapse delays, a convolution, Poisson drives, an LTC, state monitors, Equations models
calling ``exp`` and ``sqrt``, AKOrN), each delivered by target and by spike, in cooperative launches of
``chunks`` and in a chunk's two launches (``update``, ``deliver``); lets the cuda backend
prepare and advance each with host arrays standing in for device arrays; records the arguments
of every launch; and compiles each launched kernel for those argument types with
``cuda.compile_ptx`` for compute capability 9.0 (H100/H200), as the backend compiles it (without
fused multiply-adds, ``cuda_chunk.unfused``), counting its parameter bytes against CUDA's limit and
the fused multiply-adds left in its PTX (a failure: they round unlike the CPU). numba's CUDA
simulator runs kernels as Python and types nothing, so this is what catches, before a GPU is
lent, a kernel that a GPU's compiler would reject. Needs libNVVM (the
CUDA toolkit); without it the JSON says so.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numba import cuda

if numba.config.ENABLE_CUDASIM:
    sys.exit("ptx_check compiles real CUDA kernels: run it without NUMBA_ENABLE_CUDASIM")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_checks  # noqa: E402  (benchmarks/gpu is not a package)

import ranvier as rv  # noqa: E402
from ranvier.engine.backends import cuda_backend, cuda_chunk  # noqa: E402
from ranvier.errors import RecordingError  # noqa: E402
from ranvier.units import ms  # noqa: E402

#: H100 and H200
COMPUTE_CAPABILITY = (9, 0)
#: the most bytes of kernel parameters CUDA 12.1 and later take on Volta and newer GPUs (4096 before)
MAX_PARAMETER_BYTES = 32_764
_PARAMETER = re.compile(r"\.param\s+(?:\.align\s+\d+\s+)?\.([busf])(\d+)\s+\w+(?:\[(\d+)\])?")


def parameter_bytes(ptx: str) -> int:
    """The bytes of the first kernel's parameters in ``ptx`` (numba passes an array as a dozen scalars)."""
    entry = ptx[ptx.index(".entry"):]
    entry = entry[:entry.index(")")]
    return sum(int(bits) // 8 * int(count or 1) for _, bits, count in _PARAMETER.findall(entry))


def fused(ptx: str) -> int:
    """The fused multiply-adds of floats in ``ptx`` (``fma.rn.f32``, ``fma.rn.f64`` and their variants)."""
    return len(re.findall(r"\bfma\.\w+(?:\.\w+)*\.f(?:32|64)\b", ptx))


class _HostArray(np.ndarray):
    """A numpy array with a device array's copy methods: what the backend allocates while recording."""

    def copy_to_host(self, out=None, stream=0):
        if out is None:
            return np.array(self)
        out[...] = self
        return out

    def copy_to_device(self, source, stream=0):
        self[...] = source


def _host(array) -> _HostArray:
    return np.array(array).view(_HostArray)


class _Recorder:
    """Stands in for a kernel: ``kernel[grid, block](*arguments)`` records the argument types and runs nothing."""

    def __init__(self, kernel, launches: dict):
        self.kernel, self.launches = kernel, launches

    def __getitem__(self, configuration):
        def launch(*arguments):
            self.compile(tuple(self.typeof_pyval(argument) for argument in arguments))
        return launch

    @staticmethod
    def typeof_pyval(argument):
        return numba.typeof(argument.view(np.ndarray) if isinstance(argument, np.ndarray) else argument)

    def compile(self, types: tuple):
        """Record the kernel for ``types``; what the backend asks of the compiled kernel (the blocks of a
        cooperative grid) answers one."""
        self.launches.setdefault((self.kernel.py_func, types), self.kernel.py_func.__name__)
        return _CompiledStandIn()


class _CompiledStandIn:
    @staticmethod
    def max_cooperative_grid_blocks(threads: int) -> int:
        return 1


@contextlib.contextmanager
def recording(launches: dict, cooperative: bool):
    """The cuda backend on host arrays, its kernels recorded into ``launches`` instead of launched: ``chunks``
    (``cooperative``), or ``update`` and ``deliver``."""
    names = ("is_available", "to_device", "device_array", "device_array_like")
    saved = {name: getattr(cuda, name) for name in names}
    load = cuda_chunk.load
    launches_cooperatively = cuda_backend._launches_cooperatively

    def recorded_load(lowered):
        kernels = load(lowered)
        kernels.update = _Recorder(kernels.update, launches)
        kernels.deliver = None if kernels.deliver is None else _Recorder(kernels.deliver, launches)
        kernels.chunks = _Recorder(kernels.chunks, launches)
        return kernels

    cuda.is_available = lambda: True
    cuda.to_device = lambda array, stream=0, copy=True, to=None: _host(array)
    cuda.device_array = lambda shape, dtype=np.float64, strides=None, order="C", stream=0: _host(
        np.zeros(shape, dtype=dtype))
    cuda.device_array_like = lambda array, stream=0: _host(np.zeros_like(array))
    cuda_chunk.load = recorded_load
    cuda_backend._launches_cooperatively = lambda: cooperative
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(cuda, name, value)
        cuda_chunk.load = load
        cuda_backend._launches_cooperatively = launches_cooperatively


@contextlib.contextmanager
def compiling_for(compute_capability: tuple[int, int]):
    """numba compiles a kernel's device functions for the current device's compute capability: while
    active, it takes ``compute_capability`` instead of asking the driver, which this machine lacks."""
    from numba.cuda import dispatcher

    class Device:
        pass

    device = Device()
    device.compute_capability = compute_capability
    current = dispatcher.get_current_device
    dispatcher.get_current_device = lambda: device
    try:
        yield
    finally:
        dispatcher.get_current_device = current


def networks() -> dict:
    """Every network to compile, by name, as builders."""
    sizes = gpu_checks.SMALL
    builds = {"cuba": lambda: rv.networks.cuba(n=sizes.cuba, seed=1),
              "cuba_dense": lambda: rv.networks.cuba(n=sizes.dense[0], mean_in_degree=sizes.dense[1], seed=1),
              "mixed": lambda: gpu_checks.mixed_network(*sizes.mixed)}
    builds.update(gpu_checks.shape_networks())
    builds["microcircuit"] = lambda: rv.networks.microcircuit(scale=sizes.microcircuit_scale, seed=1)
    return builds


def _shortened(message: str, keep: int = 1500) -> str:
    """``message``'s start (what failed) and end (where), if it is long."""
    return message if len(message) <= 2 * keep else f"{message[:keep]} ... {message[-keep:]}"


def main() -> int:
    started = time.perf_counter()
    record: dict = {"compute_capability": list(COMPUTE_CAPABILITY), "networks": {}, "failures": []}
    try:
        cuda.compile_ptx(lambda a: None, (numba.float32[:],), cc=COMPUTE_CAPABILITY)
    except Exception as error:  # noqa: BLE001  (no NVVM: nothing can be compiled here)
        record["unavailable"] = f"{type(error).__name__}: {error}"
        print(json.dumps(record))
        return 0
    for name, build in networks().items():
        for by_target in (True, False):
            launches: dict = {}
            for cooperative in (True, False):
                with recording(launches, cooperative), gpu_checks.delivering(by_target):
                    net = build()
                    for population in list(net.populations):
                        with contextlib.suppress(RecordingError):  # a value population has no spikes to record
                            net.record(population, "spikes")
                    net.run(3 * ms, backend="cuda")
            label = f"{name}/{'by_target' if by_target else 'by_spike'}"
            compiled = []
            for (function, types), kernel in launches.items():
                try:
                    with compiling_for(COMPUTE_CAPABILITY), cuda_chunk.unfused():  # as the backend compiles
                        ptx, _ = cuda.compile_ptx(function, types, cc=COMPUTE_CAPABILITY)
                    compiled.append({"kernel": kernel, "ptx_lines": ptx.count("\n"),
                                     "parameter_bytes": parameter_bytes(ptx), "fused_multiply_adds": fused(ptx)})
                    if compiled[-1]["parameter_bytes"] > MAX_PARAMETER_BYTES:
                        record["failures"].append({"network": label, "kernel": kernel, "error": (
                            f"{compiled[-1]['parameter_bytes']} bytes of parameters, more than CUDA takes "
                            f"({MAX_PARAMETER_BYTES})")})
                    if compiled[-1]["fused_multiply_adds"]:
                        record["failures"].append({"network": label, "kernel": kernel, "error": (
                            f"{compiled[-1]['fused_multiply_adds']} fused multiply-adds, which round unlike the CPU")})
                except Exception as error:  # noqa: BLE001  (every failing kernel is reported)
                    record["failures"].append({"network": label, "kernel": kernel,
                                               "error": f"{type(error).__name__}: {_shortened(str(error))}"})
            record["networks"][label] = compiled
    record["elapsed_s"] = time.perf_counter() - started
    print(json.dumps(record))
    return 1 if record["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
