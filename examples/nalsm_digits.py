"""Neuron-astrocyte liquid state machine on real digits: accuracy with the astrocyte on and off.

The scikit-learn digits become N-MNIST-like event streams (``ranvier.datasets.digits_events``).
A NALSM liquid organises itself with STDP on 20 ms of each of ``--organise`` training digits
(gated by the astrocyte, or plain STDP with ``astrocyte=False``); its weights are then frozen,
every digit runs through it, and a logistic-regression readout learns from the liquid's spike
counts. A logistic regression on the raw 8 x 8 pixels of the same split is the reference.

    python examples/nalsm_digits.py [--liquid 1000] [--organise 600] [--train 0] [--test 0] [--output nalsm_digits.png]
"""

import argparse

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import ranvier as rv
from ranvier import datasets
from ranvier.networks.nalsm import branching_factor, plastic_projections, stream
from ranvier.plasticity import freeze
from ranvier.units import ms

plt.switch_backend("Agg")

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--liquid", type=int, default=1000, help="liquid neurons")
parser.add_argument("--organise", type=int, default=600, help="training digits streamed (20 ms each) while STDP learns")
parser.add_argument("--train", type=int, default=0, help="training digits for the readout (0: all 1347)")
parser.add_argument("--test", type=int, default=0, help="test digits (0: all 450)")
parser.add_argument("--backend", default="numba", help="simulation backend: numba, numpy or cuda (default numba)")
parser.add_argument("--output", default="nalsm_digits.png", help="where to save the figure (default nalsm_digits.png)")
args = parser.parse_args()

train = datasets.digits_events(train=True)
test = datasets.digits_events(train=False)
train_indices = range(args.train or len(train))
test_indices = range(args.test or len(test))
duration = 0.32  # three saccades of 100 ms and the 1 ms start, with room for the last spikes


def readout_accuracy(train_features, test_features) -> float:
    scaler = StandardScaler().fit(train_features)
    model = LogisticRegression(max_iter=3000).fit(scaler.transform(train_features), train.targets[train_indices])
    return model.score(scaler.transform(test_features), test.targets[test_indices])


results = {}
for astrocyte in (True, False):
    source = stream(train, range(min(args.organise, len(train))), 20 * ms)
    net = rv.networks.nalsm(n_liquid=args.liquid, astrocyte=astrocyte, input_source=source, seed=1)
    spikes = net.record("liquid", "spikes")
    # past the last input spike (event times are finer than dt), in whole steps
    net.run((np.ceil(source.times.max() / net.dt) + 5) * net.dt, backend=args.backend)
    liquid = [p for p in net.projections if p.pre.name == "liquid" and p.post.name == "liquid"]
    late = spikes.steps >= spikes.steps.max() - 1000
    sigma = branching_factor(spikes.steps[late], spikes.ids[late], liquid)
    net.spike_monitors.remove(spikes)
    freeze(plastic_projections(net))
    fit = datasets.run_samples(net, train, duration, "liquid", indices=train_indices, backend=args.backend,
                               progress=False)
    score = datasets.run_samples(net, test, duration, "liquid", indices=test_indices, backend=args.backend,
                                 progress=False)
    accuracy = readout_accuracy(np.log1p(fit.features), np.log1p(score.features))
    results["astrocyte on" if astrocyte else "astrocyte off"] = (accuracy, sigma)
    print(f"astrocyte {'on ' if astrocyte else 'off'}: branching factor {sigma:.2f} after self-organisation, "
          f"{fit.features.sum(axis=1).mean():.0f} liquid spikes per digit, test accuracy {accuracy:.3f}")

pixels = readout_accuracy(train.images[train_indices].reshape(len(train_indices), -1),
                          test.images[test_indices].reshape(len(test_indices), -1))
results["raw pixels"] = (pixels, np.nan)
print(f"raw pixels (logistic regression): test accuracy {pixels:.3f}")
print(f"{len(train_indices)} train / {len(test_indices)} test digits, liquid of {args.liquid} LIF neurons")

figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.5))
names = list(results)
left.bar(names, [results[name][0] for name in names], color=["tab:green", "tab:orange", "tab:gray"])
left.set_ylim(0, 1)
left.set_ylabel("test accuracy")
right.bar(names[:2], [results[name][1] for name in names[:2]], color=["tab:green", "tab:orange"])
right.axhline(1.0, color="k", lw=0.8, ls="--")
right.set_ylabel("branching factor (last 1 s)")
figure.tight_layout()
figure.savefig(args.output, dpi=120)
print(f"saved {args.output}")
