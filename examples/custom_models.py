"""Your own neuron models: Izhikevich, AdEx and a conductance-based LIF from equations, and one by hand.

Each model below is a few lines of Brian 2-style equations (docs/models.md). The script runs
Izhikevich's regular-spiking neuron, the adaptive exponential integrate-and-fire neuron
(Brette & Gerstner 2005) and a conductance-based LIF driven by Poisson input, checks that the
numpy and numba backends give the same spikes, and plots each membrane potential. A fourth
panel runs the Izhikevich neuron written by hand in the model language, which gives the same
spikes as its equations.

    python examples/custom_models.py [--duration 0.5] [--output custom_models.png]
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np

import ranvier as rv
from ranvier.units import ms, mV, nA, nS, pF

plt.switch_backend("Agg")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--duration", type=float, default=0.5, help="simulated seconds")
parser.add_argument("--output", default="custom_models.png",
                    help="where to save the figure (default custom_models.png)")
args = parser.parse_args()

izhikevich = rv.neurons.Equations("""
    dv/dt = (0.04/ms/mV)*v**2 + (5/ms)*v + 140*mV/ms - u + I : volt
    du/dt = a*(b*v - u) : volt/second
    a : 1/second
    b : 1/second
    c : volt
    d : volt/second
    I : volt/second
    """, threshold="v >= 30*mV", reset="v = c; u += d", method="euler",
    parameters={"a": 0.02 / ms, "b": 0.2 / ms, "c": -65 * mV, "d": 8 * mV / ms, "I": 10 * mV / ms})

adex = rv.neurons.Equations("""
    dv/dt = (g_L*(E_L - v) + g_L*Delta_T*exp((v - V_T)/Delta_T) - w + I)/C : volt
    dw/dt = (a*(v - E_L) - w)/tau_w : amp
    C : farad
    g_L : siemens
    E_L : volt
    V_T : volt
    Delta_T : volt
    tau_w : second
    a : siemens
    b : amp
    I : amp
    """, threshold="v > V_T + 5*Delta_T", reset="v = E_L; w += b", method="rk4",
    parameters={"C": 281 * pF, "g_L": 30 * nS, "E_L": -70.6 * mV, "V_T": -50.4 * mV, "Delta_T": 2 * mV,
                "tau_w": 144 * ms, "a": 4 * nS, "b": 0.0805 * nA, "I": 1 * nA})

conductance_lif = rv.neurons.Equations("""
    dv/dt = (g_L*(E_L - v) + g_e*(E_e - v) + g_i*(E_i - v)) / C : volt (unless refractory)
    dg_e/dt = -g_e / tau_e : siemens
    dg_i/dt = -g_i / tau_i : siemens
    g_L : siemens
    C : farad
    E_L : volt
    E_e : volt
    E_i : volt
    tau_e : second
    tau_i : second
    v_th : volt
    """, threshold="v > v_th", reset="v = E_L", refractory=2 * ms, method="exponential_euler",
    parameters={"g_L": 10 * nS, "C": 200 * pF, "E_L": -70 * mV, "E_e": 0 * mV, "E_i": -80 * mV, "tau_e": 5 * ms,
                "tau_i": 10 * ms, "v_th": -50 * mV},
    receptors={"exc": "g_e", "inh": "g_i"})

STATE = rv.rows("v", "u")
CONSTS = rv.rows("dt", "quadratic", "linear", "drive", "a", "b", "v_peak", "c", "d")


def izhikevich_step(state, consts, arriving, i, col, k, key):
    """Izhikevich (2003) by hand, Euler's method: the same arithmetic as the equations above."""
    v = state[STATE.v, i]
    u = state[STATE.u, i]
    v_new = v + consts[CONSTS.dt, col] * (-u + consts[CONSTS.linear, col] * v
                                          + consts[CONSTS.quadratic, col] * (v * v) + consts[CONSTS.drive, col])
    u_new = u + consts[CONSTS.a, col] * (-u + consts[CONSTS.b, col] * v)
    fired = rv.spike(v_new - consts[CONSTS.v_peak, col])  # v_new >= v_peak, and trainable in torch
    state[STATE.v, i] = rv.select(fired, consts[CONSTS.c, col], v_new)
    state[STATE.u, i] = rv.select(fired, u_new + consts[CONSTS.d, col], u_new)
    return fired


class HandIzhikevich(rv.Model):
    """The Izhikevich neuron in the model language; ``state_rows`` names its state once."""

    step = staticmethod(izhikevich_step)
    state_rows = STATE

    def __init__(self, a=0.02 / ms, b=0.2 / ms, c=-65 * mV, d=8 * mV / ms, I=10 * mV / ms):  # noqa: E741
        super().__init__()
        self.parameters = {"a": a, "b": b, "c": c, "d": d, "I": I}

    def constants(self, params, dt):
        rows = {"dt": dt, "quadratic": 0.04 / ms / mV, "linear": 5 / ms, "drive": params["I"] + 140 * mV / ms,
                "a": params["a"] * dt, "b": params["b"], "v_peak": 30 * mV, "c": params["c"], "d": params["d"]}
        return np.asarray(np.broadcast_arrays(*(rows[name] for name in CONSTS._fields)), dtype=np.float64)


def simulate(model, backend, init, drive=False):
    net = rv.Network(dt=0.1 * ms, seed=7)
    cell = net.population(model, 1, name="cell", init=init)
    if drive:
        poisson = net.population(rv.neurons.PoissonSource(rate=10.0), 400, name="drive")
        net.connect(poisson, cell, rv.connect.AllToAll(), weight=0.6 * nS, receptor="exc")
    spikes = net.record(cell, "spikes")
    trace = net.record(cell, "v")
    net.run(args.duration, backend=backend)
    return spikes.steps.copy(), trace.t.copy(), trace.values[:, 0].copy()


runs = {
    "Izhikevich, regular spiking (euler)": (izhikevich, {"v": -65 * mV, "u": -13 * mV / ms}, False),
    "AdEx, adapting (rk4)": (adex, {"v": -70.6 * mV}, False),
    "conductance-based LIF, Poisson drive (exponential_euler)": (conductance_lif, {"v": -70 * mV}, True),
    "Izhikevich by hand (model language)": (HandIzhikevich(), {"v": -65 * mV, "u": -13 * mV / ms}, False),
}
results = {}
for title, (model, init, drive) in runs.items():
    reference = simulate(model, "numpy", init, drive)
    compiled = simulate(model, "numba", init, drive)
    same = np.array_equal(reference[0], compiled[0]) and np.array_equal(reference[2], compiled[2])
    results[title] = compiled
    print(f"{title}: {len(compiled[0])} spikes in {args.duration:g} s; numpy and numba identical: {same}")
hand, by_equations = results["Izhikevich by hand (model language)"], results["Izhikevich, regular spiking (euler)"]
print(f"hand-written and Equations Izhikevich give the same spikes: {np.array_equal(hand[0], by_equations[0])}")

figure, axes = plt.subplots(len(results), 1, figsize=(10, 2.4 * len(results)), sharex=True)
for axis, (title, (steps, times, v)) in zip(axes, results.items(), strict=True):
    axis.plot(times, v / mV, lw=0.8)
    axis.plot((steps + 1) * 0.1 * ms, np.full(len(steps), 35.0), "|", color="crimson", ms=8, label="spikes")
    axis.set(ylabel="v (mV)", title=title)
axes[-1].set(xlabel="time (s)")
axes[0].legend(loc="upper right")
figure.tight_layout()
figure.savefig(args.output, dpi=100)
print(f"saved {args.output}")
