"""A Dask sweep of Brian 2's CUBA network over its excitatory and inhibitory weights: a rate map.

Each grid point builds and runs one CUBA network (``0.8 n`` excitatory, ``0.2 n`` inhibitory
LIF neurons, connection probability 0.02 scaled to keep 80 inputs per neuron) on a worker of
a local Dask cluster, and returns the excitatory rate; the map shows where the balance of
excitation and inhibition holds the network quiet and where it runs away.

    python examples/sweep_cuba.py [--n 2000] [--duration 0.5] [--steps 5] [--workers 2] [--output sweep_cuba.png]
    python examples/sweep_cuba.py --scheduler tcp://host:8786     # a cluster that is already running
"""

import argparse

import numpy as np

import ranvier as rv
from ranvier.units import ms, mV


def cuba_rates(w_exc: float, w_inh: float, n: int, duration: float, seed: int) -> dict:
    """Mean rates (Hz) of CUBA with excitatory weight ``w_exc`` and inhibitory weight ``w_inh`` (V)."""
    net = rv.Network(dt=0.1 * ms, seed=seed)
    lif = rv.neurons.LIF(tau_m=20 * ms, v_rest=-49 * mV, v_th=-50 * mV, v_reset=-60 * mV, t_ref=5 * ms,
                         tau_syn={"exc": 5 * ms, "inh": 10 * ms})
    start = {"v": rv.init.Uniform(-60 * mV, -50 * mV)}
    exc = net.population(lif, n=int(0.8 * n), name="exc", init=start)
    inh = net.population(lif, n=n - int(0.8 * n), name="inh", init=start)
    rule = rv.connect.Bernoulli(p=min(1.0, 80 / n))
    net.connect(exc, [exc, inh], rule, weight=w_exc, delay=0.1 * ms, receptor="exc")
    net.connect(inh, [exc, inh], rule, weight=w_inh, delay=0.1 * ms, receptor="inh")
    net.run(duration)
    return {"rate_exc": net.stats.rate("exc", exc.n), "rate_inh": net.stats.rate("inh", inh.n)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="neurons per network (default 2000)")
    parser.add_argument("--duration", type=float, default=0.5, help="biological time per point, s (default 0.5)")
    parser.add_argument("--steps", type=int, default=5, help="weights per axis (default 5: 25 points)")
    parser.add_argument("--workers", type=int, default=2, help="local Dask workers (default 2)")
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler instead")
    parser.add_argument("--seed", type=int, default=1, help="random seed of every network (default 1)")
    parser.add_argument("--output", default="sweep_cuba.png", help="where to save the rate map (default %(default)s)")
    args = parser.parse_args()

    w_exc = np.linspace(0.5, 3.0, args.steps) * mV
    w_inh = -np.linspace(3.0, 15.0, args.steps) * mV
    grid = {"w_exc": list(w_exc), "w_inh": list(w_inh), "n": [args.n], "duration": [args.duration],
            "seed": [args.seed]}
    results = rv.sweep(cuba_rates, grid, client=args.scheduler, n_workers=args.workers, progress=True)
    rates = results.column("rate_exc").reshape(len(w_exc), len(w_inh))
    for row in results:
        print(f"  w_exc {row['w_exc'] / mV:5.2f} mV  w_inh {row['w_inh'] / mV:6.2f} mV  "
              f"exc {row.get('rate_exc', float('nan')):7.2f} Hz")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ax = plt.subplots(figsize=(6, 5))
    x, y = -w_inh / mV, w_exc / mV

    def edges(centres: np.ndarray) -> np.ndarray:  # cell edges halfway between the swept values
        half = np.diff(centres) / 2 if len(centres) > 1 else np.array([0.5])
        return np.concatenate([[centres[0] - half[0]], centres[:-1] + half, [centres[-1] + half[-1]]])

    image = ax.pcolormesh(edges(x), edges(y), rates, cmap="viridis", shading="flat")
    for i, j in np.ndindex(rates.shape):  # each value at the centre of its cell, on the swept weights
        ax.text(x[j], y[i], f"{rates[i, j]:.1f}", ha="center", va="center", fontsize="x-small",
                color="white" if rates[i, j] < np.nanmax(rates) / 2 else "black")
    ax.set_xticks(x, [f"{value:.3g}" for value in x])
    ax.set_yticks(y, [f"{value:.3g}" for value in y])
    figure.colorbar(image, ax=ax, label="excitatory rate (Hz)")
    ax.set_xlabel("inhibitory weight |w_inh| (mV)")
    ax.set_ylabel("excitatory weight w_exc (mV)")
    ax.set_title(f"CUBA, {args.n} neurons, {args.duration:g} s per point")
    figure.tight_layout()
    figure.savefig(args.output, dpi=120)
    print(f"saved {args.output} ({len(results)} points, {len(results.failed)} failed)")


if __name__ == "__main__":
    main()
