"""The ``ranvier`` command line: ``demo``, ``run``, ``info``.

Exit codes: 0 success, 1 a simulation or input error (the message says which), 2 bad usage.
"""

from __future__ import annotations

import argparse
import platform
import runpy
import sys
import time
from importlib import metadata
from pathlib import Path

from .errors import RanvierError


def _demo(args: argparse.Namespace) -> int:
    from . import networks
    from .plots import raster_and_rate

    print(f"Brian 2's CUBA network: {args.n} LIF neurons, {args.duration:g} s, backend {args.backend}")
    started = time.perf_counter()
    net = networks.cuba(n=args.n, seed=args.seed)
    monitors = [net.record(population, "spikes") for population in net.populations.values()]
    built = time.perf_counter()
    net.run(args.duration, backend=args.backend, progress=not args.quiet)
    finished = time.perf_counter()
    stats = net.stats
    synapses = sum(len(p) for p in net.projections)
    print(f"  synapses:          {synapses}")
    for population in net.populations.values():
        print(f"  rate {population.name:>4}:         {stats.rate(population.name, population.n):.2f} Hz")
    print(f"  spikes:            {stats.spikes}")
    print(f"  synaptic events:   {stats.synaptic_events}")
    print(f"  build time:        {built - started:.3f} s")
    print(f"  run time:          {finished - built:.3f} s (including compilation on a first run)")
    path = Path(args.output)
    raster_and_rate(monitors, args.duration, path, title=f"CUBA, {args.n} neurons")
    print(f"  plot:              {path}")
    return 0


def _run(args: argparse.Namespace) -> int:
    script = Path(args.script)
    if not script.is_file():
        print(f"ranvier run: no such script {script}", file=sys.stderr)
        return 2
    sys.argv = [str(script), *args.arguments]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _info(args: argparse.Namespace) -> int:
    from . import __version__
    from .engine import backends

    print(f"ranvier {__version__}")
    print(f"python {platform.python_version()} on {platform.platform()}")
    for package in ("numpy", "numba", "matplotlib", "tqdm", "torch", "h5py", "tonic", "snntorch"):
        print(f"  {package:<11} {_version(package)}")
    print("backends:")
    for name, status in backends.available().items():
        print(f"  {name:<6} {'available' if status == 'yes' else status}")
    print(f"GPU: {_gpu()}")
    return 0


def _gpu() -> str:
    try:
        from numba import cuda

        if cuda.is_available():
            return ", ".join(device.name.decode() if isinstance(device.name, bytes) else str(device.name)
                             for device in cuda.gpus)
    except Exception as error:  # noqa: BLE001 - any driver failure means "no usable GPU"
        return f"none ({type(error).__name__})"
    return "none"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ranvier", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="simulate Brian 2's CUBA network, print a summary and plot it")
    demo.add_argument("--n", type=int, default=4000, help="number of neurons (default 4000)")
    demo.add_argument("--duration", type=float, default=1.0, help="biological time in seconds (default 1)")
    demo.add_argument("--backend", default="numba", choices=["numba", "numpy"], help="backend (default numba)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--output", default="ranvier_demo.png", help="where to save the plot")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(handler=_demo)

    run = commands.add_parser("run", help="run a Python simulation script")
    run.add_argument("script", help="path of the script")
    run.add_argument("arguments", nargs=argparse.REMAINDER, help="arguments passed to the script")
    run.set_defaults(handler=_run)

    info = commands.add_parser("info", help="print versions, available backends and whether a GPU is present")
    info.set_defaults(handler=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except RanvierError as error:
        print(f"ranvier: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
