"""The ``ranvier`` command line: ``demo``, ``run``, ``estimate``, ``bench``, ``info``.

Every command takes ``--help``. Exit codes, for scripts:

* 0: success;
* 1: a simulation or input error (a :class:`~ranvier.RanvierError`; the message on stderr says which);
* 2: bad usage (unknown command or option, missing script);
* 130: interrupted (Ctrl-C).

``ranvier run SCRIPT`` ends with the script's own exit status when the script calls ``sys.exit``.
"""

from __future__ import annotations

import argparse
import json
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
    _demo_hardware(net, path)
    return 0


def _demo_hardware(net, plot_path: Path) -> None:
    """The demo's last lines: the CUBA run's cost on Loihi 2 and a comparison plot across targets."""
    from . import hardware

    report = hardware.estimate(net, "loihi2")
    print(f"  hardware (loihi2): {len(report.placement.cores)} cores, {report.energy * 1e3:.3g} mJ "
          f"({report.power * 1e3:.3g} mW) for the {report.counts.duration:g} s run, "
          f"{report.step_time * 1e6:.3g} us per step, {hardware.realtime_text(report.realtime_factor)}")
    cost_path = plot_path.with_name(f"{plot_path.stem}_hardware.png")
    hardware.compare(report.counts, ["loihi2", "loihi", "spinnaker2", "fpga_u55c", "cpu"], cost_path)
    print(f"  cost plot:         {cost_path}")


def _estimate(args: argparse.Namespace) -> int:
    from . import hardware

    net = _load_model(Path(args.model), args.run, args.arguments)
    if args.rate is None and net.stats.steps == 0:
        raise hardware.NotRunError(f"the network of {args.model} did not run; pass --run SECONDS "
                                   "to run it, or --rate HZ for an estimate from a stated rate")
    names = hardware.targets() if args.target == "all" else [args.target]
    reports = []
    for name in names:
        try:
            reports.append(hardware.estimate(net, name, rates=args.rate, duration=args.duration,
                                             inferences=args.inferences))
        except (hardware.UnsupportedModelError, hardware.PlacementError) as error:
            if args.target != "all":
                raise
            print(f"{name}: cannot run this network: {error}\n")
            continue
        print(reports[-1].table() + "\n")
    if args.json and reports:
        Path(args.json).write_text("[" + ",\n".join(r.to_json() for r in reports) + "]\n")
        print(f"saved {args.json}")
    if args.plot and reports:
        if len(reports) == 1:
            reports[0].plot(args.plot)
        else:
            hardware.plot(reports, args.plot)
        print(f"saved {args.plot}")
    return 0


def _run_script(path: Path, arguments: list[str]) -> dict:
    """Run ``path`` as ``__main__`` with ``sys.argv = [path, *arguments]`` (not the command line of
    ``ranvier`` itself, which the script's own argument parser would reject); sys.argv is restored."""
    saved = sys.argv
    sys.argv = [str(path), *arguments]
    try:
        return runpy.run_path(str(path), run_name="__main__")
    finally:
        sys.argv = saved


def _load_model(path: Path, run_seconds: float | None, arguments: list[str] = ()):
    """A network from a script defining ``net`` (.py, run with ``arguments``), a saved network (.h5)
    or a NIR graph (.nir)."""
    from .engine import Network
    from .errors import HardwareError

    if not path.is_file():
        raise HardwareError(f"no such file {path}")
    suffix = path.suffix.lower()
    if suffix == ".py":
        namespace = _run_script(path, list(arguments))
        net = namespace.get("net")
        if not isinstance(net, Network):
            raise HardwareError(f"{path} must define a ranvier Network named 'net', "
                                f"got {type(net).__name__}")
    elif suffix in (".h5", ".hdf5"):
        import ranvier

        if not hasattr(ranvier, "load"):
            raise HardwareError(f"reading {path} needs ranvier.load (HDF5), not in this installation")
        net = ranvier.load(str(path))
    elif suffix == ".nir":
        try:
            from . import nir as ranvier_nir
        except ImportError:
            raise HardwareError(f"reading {path} needs ranvier.nir, not installed") from None
        net = ranvier_nir.load(str(path))
    else:
        raise HardwareError(f"{path} must be a .py script defining 'net', a .h5 network or a "
                            f".nir graph, got suffix {path.suffix!r}")
    if run_seconds is not None:
        net.run(run_seconds)
    return net


def _run(args: argparse.Namespace) -> int:
    script = Path(args.script)
    if not script.is_file():
        print(f"ranvier run: no such script {script}", file=sys.stderr)
        return 2
    _run_script(script, args.arguments)
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.full:
        suite = Path(__file__).resolve().parent.parent / "benchmarks" / "run_benchmarks.py"
        if not suite.is_file():
            print("ranvier bench --full: the side-by-side suite (benchmarks/run_benchmarks.py) comes with a source "
                  "checkout of ranvier, not with an installed package", file=sys.stderr)
            return 2
        sys.argv = [str(suite), *args.arguments]
        sys.path.insert(0, str(suite.parent))
        runpy.run_path(str(suite), run_name="__main__")
        return 0
    from . import networks

    rows = []
    for backend, n, duration in (("numba", args.n, args.duration), ("numpy", args.n, args.duration / 10)):
        times = []
        for _ in range(args.repeats + 1):  # the first run of each backend compiles; it is reported apart
            net = networks.cuba(n=n, seed=1)
            started = time.perf_counter()
            net.run(duration, backend=backend, progress=not args.quiet)
            times.append(time.perf_counter() - started)
        run = sorted(times[1:])[len(times[1:]) // 2]
        rows.append({"backend": backend, "n": n, "duration": duration, "first_run_s": times[0], "run_s": run,
                     "real_time_factor": run / duration, "wall_s_per_biological_s": run / duration,
                     "spikes": net.stats.spikes})
    print(f"CUBA benchmark (Brian 2's example), median of {args.repeats} warm runs:")
    print(f"  {'backend':<8}{'neurons':>8}{'biological (s)':>16}{'first run (s)':>15}{'run (s)':>10}"
          f"{'wall s per bio s':>18}")
    for row in rows:
        print(f"  {row['backend']:<8}{row['n']:>8}{row['duration']:>16g}{row['first_run_s']:>15.3f}"
              f"{row['run_s']:>10.3f}{row['real_time_factor']:>18.3f}")
    print("  (wall s per bio s: seconds of computer time per second of biological time; below 1 is faster "
          "than real time, 2 is twice slower)")
    numba, numpy = rows
    print(f"  numba is {numpy['real_time_factor'] / numba['real_time_factor']:.1f}x faster than the numpy reference "
          "per second of biological time")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
        print(f"saved {args.json}")
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
    for package in ("numpy", "numba", "matplotlib", "tqdm", "h5py", "torch", "snntorch", "tonic", "sympy", "dask",
                    "nir", "neo", "elephant"):
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


def _positive_int(text: str) -> int:
    """An argument that must be a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _output_path(text: str) -> str:
    """A file to write: its directory must exist, so that a run is not lost at its end for want of it."""
    directory = Path(text).expanduser().parent
    if not directory.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: directory {str(directory)!r} does not exist")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ranvier", description=_plain(__doc__.splitlines()[0]),
                                     epilog="exit codes: 0 success, 1 simulation or input error, 2 bad usage, "
                                            "130 interrupted; 'ranvier COMMAND --help' describes each command")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="simulate Brian 2's CUBA network, print a summary and plot it")
    demo.add_argument("--n", type=int, default=4000, help="number of neurons (default 4000)")
    demo.add_argument("--duration", type=float, default=1.0, help="biological time in seconds (default 1)")
    demo.add_argument("--backend", default="numba", choices=["numba", "numpy"], help="backend (default numba)")
    demo.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    demo.add_argument("--output", default="ranvier_demo.png", type=_output_path, help="where to save the plot")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(handler=_demo)

    run = commands.add_parser("run", help="run a Python simulation script")
    run.add_argument("script", help="path of the script")
    run.add_argument("arguments", nargs=argparse.REMAINDER, help="arguments passed to the script")
    run.set_defaults(handler=_run)

    estimate = commands.add_parser("estimate", help="estimate a network's hardware cost (energy, latency, cores)",
                                   description="Estimate a network's hardware cost: cores, energy, latency. "
                                               "A .py model runs with the arguments after '--' as its own "
                                               "command line ('ranvier estimate examples/cuba.py --target "
                                               "loihi2 -- --n 500 --duration 0.1'), never with ranvier's.")
    estimate.add_argument("model", help="a .py script defining a Network named net, a saved .h5 network or a "
                                        ".nir graph")
    estimate.add_argument("--target", default="loihi2", help="a target name, a target .toml file, or 'all'")
    estimate.add_argument("--run", type=float, default=None, help="run the network this many seconds first")
    estimate.add_argument("--rate", type=float, default=None,
                          help="estimate from this firing rate (Hz) instead of measured counts")
    estimate.add_argument("--duration", type=float, default=None, help="time (s) a rate estimate covers")
    estimate.add_argument("--inferences", type=_positive_int, default=1,
                          help="inferences (samples, trials) the counted time holds; with 1 (the default) the "
                               "figures are those of the whole run")
    estimate.add_argument("--json", default=None, type=_output_path, help="write the report(s) as JSON here")
    estimate.add_argument("--plot", default=None, type=_output_path, help="save an energy plot here")
    estimate.set_defaults(handler=_estimate)

    bench = commands.add_parser("bench", help="time the CUBA network on the numba and numpy backends",
                                description="Quick benchmark: Brian 2's CUBA network on the numba backend and "
                                            "the numpy reference, first (compiling) and warm runs. --full runs "
                                            "the side-by-side suite against Brian 2 and NEST from a source "
                                            "checkout (benchmarks/run_benchmarks.py; arguments after --full go "
                                            "to it).")
    bench.add_argument("--n", type=int, default=4000, help="number of neurons (default 4000)")
    bench.add_argument("--duration", type=float, default=1.0,
                       help="biological time of the numba runs in seconds; numpy runs a tenth of it (default 1)")
    bench.add_argument("--repeats", type=_positive_int, default=3, help="warm runs per backend (default 3)")
    bench.add_argument("--json", default=None, type=_output_path, help="also write the results as JSON here")
    bench.add_argument("--quiet", action="store_true", help="no progress bars")
    bench.add_argument("--full", action="store_true", help="run benchmarks/run_benchmarks.py instead")
    bench.add_argument("arguments", nargs=argparse.REMAINDER, help="with --full: arguments for run_benchmarks.py")
    bench.set_defaults(handler=_bench)

    info = commands.add_parser("info", help="print versions, available backends and whether a GPU is present")
    info.set_defaults(handler=_info)
    return parser


def _plain(text: str) -> str:
    """Docstring text for a terminal: without reStructuredText's ``literal`` markup."""
    return text.replace("``", "")


def _message(command: str, error: BaseException) -> str:
    """``ranvier COMMAND: message``, once, whether or not the message already starts with a prefix."""
    text = str(error)
    for prefix in (f"ranvier {command}: ", "ranvier: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    return f"ranvier {command}: {text}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_arguments: list[str] = []
    if argv[:1] == ["estimate"] and "--" in argv:  # ranvier estimate MODEL [options] -- [the script's arguments]
        split = argv.index("--")
        argv, script_arguments = argv[:split], argv[split + 1:]
    args = build_parser().parse_args(argv)
    args.arguments = script_arguments if args.command == "estimate" else getattr(args, "arguments", [])
    try:
        return args.handler(args)
    except RanvierError as error:
        print(_message(args.command, error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ranvier: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
