"""Learning per-synapse delays: spiking motifs that only delays can tell apart.

``ranvier.train.delayed_coincidence`` draws samples of one of several motifs: every input
channel spikes once, the classes differ only in which channel comes when, at a random onset in
background noise. The hidden layer is made of coincidence detectors: LIF neurons with a 3 ms
leak (as long as the gap between a motif's spikes) whose input weights are held in
``[0, W_MAX]``, a quarter of the threshold, so that a neuron fires only when at least four input
spikes arrive within a step or two. Without delays it sees a motif's spikes one at a time;
synapses with delays ``d_i = D - o_ci`` (``o_ci`` channel ``i``'s offset in class ``c``'s motif)
bring class ``c``'s whole motif into one coincidence. Five networks with the same number of
trained parameters and the same bound are trained with surrogate gradients; the readout
integrates the hidden spikes (a nearly non-leaking LIF, its membrane potential at the last step
is the score):

* no delays (every synapse one step), BPTT, hidden layer of ``2 h`` neurons;
* no delays, trained by SLTT (``module.sltt_backward``), ``2 h`` neurons;
* fixed random delays (uniform in ``1 .. max_delay`` steps), ``2 h`` neurons;
* learned delays (``SpikingModule(..., learn_delays=True)``, one delay per synapse on both
  projections, starting from random delays), ``h`` neurons, whose weights and delays
  together are as many parameters as the others' weights; once with ``delay_method="shift"``
  (the rounded delays forward, the network the engine runs, a smoothed gradient back) and once
  with DCLS (Gaussian kernels forward).

After training, the delays the shift method learned are written into the network
(``write_back``); the event engine then runs it and its predictions are compared with torch's.

    python examples/learn_delays.py [--classes 8] [--hidden 32] [--epochs 30] [--output learn_delays.png]
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np
import torch

import ranvier as rv
from ranvier.train import SpikingModule, delayed_coincidence, sigma_schedule, simulate
from ranvier.units import ms, mV

plt.switch_backend("Agg")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--classes", type=int, default=8, help="motifs to tell apart (default 8)")
parser.add_argument("--channels", type=int, default=8, help="input channels (default 8)")
parser.add_argument("--hidden", type=int, default=32, help="hidden neurons of the learned-delay network (default 32)")
parser.add_argument("--max-delay", type=int, default=25, help="longest delay in steps of 1 ms (default 25)")
parser.add_argument("--epochs", type=int, default=30, help="training epochs (default 30)")
parser.add_argument("--train", type=int, default=1024, help="training samples (default 1024)")
parser.add_argument("--test", type=int, default=512, help="test samples (default 512)")
parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
parser.add_argument("--output", default="learn_delays.png", help="figure file (default learn_delays.png)")
args = parser.parse_args()
torch.manual_seed(0)

W_MAX = 2.5 * mV  # a quarter of the hidden threshold: at least four coincident input spikes fire a neuron
TAIL = 5  # silent steps after each sample, so a motif late in the sample still arrives before the readout
task = {"channels": args.channels, "steps": 100, "classes": args.classes, "gap": 3, "noise_probability": 0.02}


def samples(n: int, seed: int):
    x, y = delayed_coincidence(n, seed=seed, **task)
    x = np.concatenate([x, np.zeros((n, TAIL, args.channels), np.float32)], axis=1)
    # (samples, T, channels) -> (T, samples, channels), the layout of SpikingModule
    return torch.from_numpy(x.transpose(1, 0, 2).copy()), torch.from_numpy(y)


x_train, y_train = samples(args.train, 1)
x_test, y_test = samples(args.test, 2)


def network(hidden: int, delays) -> rv.Network:
    net = rv.Network(dt=1 * ms, seed=3)
    source = net.population(rv.neurons.SpikeSource([], [], n=args.channels), name="input")
    cells = net.population(rv.neurons.LIF(tau_m=3 * ms, v_rest=0.0, v_th=10 * mV, v_reset=0.0, t_ref=0.0,
                                          tau_syn={"in": 0.0}), n=hidden, name="hidden")
    # nearly an integrator (tau_m 1 s against a trial of about 0.1 s): its final potential sums the hidden spikes
    out = net.population(rv.neurons.LIF(tau_m=1.0, v_rest=0.0, v_th=1.0, v_reset=0.0, t_ref=0.0,
                                        tau_syn={"in": 0.0}), n=args.classes, name="out")
    net.connect(source, cells, rv.connect.AllToAll(), weight=rv.init.Normal(0.6 * W_MAX, 0.12 * W_MAX), delay=delays)
    net.connect(cells, out, rv.connect.AllToAll(), weight=rv.init.Normal(0.0, 0.1))
    return net


def scores(module: SpikingModule, x) -> torch.Tensor:
    return module(x).v["out"][-1] / module.readout_scale("out")


def accuracy(module: SpikingModule, x, y) -> float:
    with torch.no_grad():
        return float((scores(module, x).argmax(1) == y).float().mean())


#: the delays' Adam step: DCLS moves its kernels' positions by 0.1 steps per update (as Hammouamri et al. 2024
#: train them); the shift method's delay gradient is taken at the rounded delay, constant within a step, and
#: overshoots at that rate (0.84 at the defaults, against 0.97-0.98 at 0.03 for torch seeds 0, 1, 2)
DELAY_STEP = {"shift": 0.03, "dcls": 0.1}


def train(name: str, hidden: int, delays, learn: bool, sltt: bool = False, method: str = "shift"):
    net = network(hidden, delays)
    module = SpikingModule(net, "input", learn_delays=learn, max_delay=args.max_delay * ms if learn else None,
                           **({"delay_method": method} if learn else {}))
    parameters = sum(p.numel() for p in module.parameters())
    # the input weights barely move (with larger steps they learn partial coincidences before the delays
    # align whole motifs); the delays take a far larger step, as DCLS trains its positions (Hammouamri et al. 2024)
    groups = [{"params": [module.weights[0]], "lr": 1e-5}, {"params": [module.weights[1]], "lr": 5e-3}]
    if learn:
        groups.append({"params": module.delays.parameters(), "lr": DELAY_STEP[method]})
    optimiser = torch.optim.Adam(groups)
    with torch.no_grad():
        module.weights[0].clamp_(0.0, W_MAX)
    # sigma narrows from max_delay / 2 to 0.23 over the first half; the last quarter trains the weights
    # around the rounded delays (sigma = 0, no delay gradient), the network the engine will run
    narrowing = int(0.75 * args.epochs)
    history = []
    for epoch in range(args.epochs):
        if learn:
            module.sigma = 0.0 if epoch >= narrowing else sigma_schedule(epoch, narrowing, args.max_delay, end=0.23,
                                                                         fraction=0.5 / 0.75)
        order = torch.randperm(args.train)
        for first in range(0, args.train, args.batch):
            chosen = order[first:first + args.batch]
            optimiser.zero_grad()
            if sltt:
                module.sltt_backward(x_train[:, chosen], y_train[chosen], "out")
            else:
                torch.nn.functional.cross_entropy(scores(module, x_train[:, chosen]), y_train[chosen]).backward()
            optimiser.step()
            with torch.no_grad():
                module.weights[0].clamp_(0.0, W_MAX)
            if learn:
                module.clamp_delays()
        history.append(accuracy(module, x_test, y_test))
    print(f"{name}: {parameters} parameters, test accuracy {history[-1]:.3f}")
    return net, module, history, history[-1]


random_delays = rv.init.Uniform(1 * ms, args.max_delay * ms)
results = {}
for name, hidden, delays, learn, sltt, method in [
        ("no delays", 2 * args.hidden, 1 * ms, False, False, None),
        ("no delays, SLTT", 2 * args.hidden, 1 * ms, False, True, None),
        ("fixed random delays", 2 * args.hidden, random_delays, False, False, None),
        ("learned delays (shift)", args.hidden, random_delays, True, False, "shift"),
        ("learned delays (DCLS)", args.hidden, random_delays, True, False, "dcls")]:
    results[name] = train(name, hidden, delays, learn, sltt, method or "shift")

net, module, _, _ = results["learned delays (shift)"]
module.write_back()
with torch.no_grad():
    torch_predictions = scores(module, x_test).argmax(1).numpy()
engine = simulate(net, x_test.numpy(), "input", record_v=["out"])
engine_predictions = engine["out.v"][-1].argmax(1)
agreement = float(np.mean(engine_predictions == torch_predictions))
print(f"learned delays in the event engine: predictions agree with torch's on {agreement:.1%} of the test set; "
      f"engine accuracy {np.mean(engine_predictions == y_test.numpy()):.3f}")

figure, (curves, learned) = plt.subplots(1, 2, figsize=(12, 4))
for name, (_, _, history, final) in results.items():
    curves.plot(np.arange(1, len(history) + 1), history, label=f"{name} ({final:.2f})")
curves.axhline(1 / args.classes, color="grey", ls=":", label="chance")
curves.set(xlabel="epoch", ylabel="test accuracy", title=f"{args.classes} motifs, equal parameter counts")
curves.legend()
delays = net.projections[0].delays.reshape(args.channels, args.hidden) / ms
image = learned.imshow(delays, aspect="auto", cmap="viridis")
learned.set(xlabel="hidden neuron", ylabel="input channel", title="learned delays (ms), as written back")
figure.colorbar(image, ax=learned)
figure.tight_layout()
figure.savefig(args.output, dpi=100)
print(f"saved {args.output}")
