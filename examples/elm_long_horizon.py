"""An ELM neuron recalls a spike-train cue across a long delay; an equal-size recurrent LIF network cannot.

Task (ranvier.train.tasks.delayed_cue_recall): 8 spike channels; in the first 10 steps one half of
them bursts (the cue), then only background spikes follow until the answer is read at the last
step. Both models have about the same number of trained parameters.
"""

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import ranvier as rv  # noqa: E402
from ranvier.train import to_torch  # noqa: E402
from ranvier.train.elm import RecurrentLIF, accuracy, fit, parameter_count  # noqa: E402
from ranvier.train.tasks import delayed_cue_recall  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--steps", type=int, default=500, help="sequence length (delay = steps - 10)")
parser.add_argument("--samples", type=int, default=1024, help="training sequences")
parser.add_argument("--iterations", type=int, default=150, help="Adam steps of batch 64")
parser.add_argument("--memory", type=int, default=16, help="ELM memory units (the LIF network gets 2x neurons)")
parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
args = parser.parse_args()

torch.manual_seed(args.seed)
x, y = delayed_cue_recall(args.samples, steps=args.steps, seed=args.seed)
x_test, y_test = delayed_cue_recall(512, steps=args.steps, seed=args.seed + 1)
models = {"ELM": to_torch(rv.neurons.ELM(8, 2, n_memory=args.memory, seed=args.seed)),
          "recurrent LIF": RecurrentLIF(8, 2 * args.memory, 2)}
curves, scores = {}, {}
for name, model in models.items():
    curves[name] = fit(model, x, y, iterations=args.iterations, seed=args.seed)
    scores[name] = accuracy(model, x_test, y_test)
    print(f"{name}: {parameter_count(model)} parameters, test accuracy {scores[name]:.3f} "
          f"over a {args.steps - 10}-step delay")

fig, (raster, learning) = plt.subplots(1, 2, figsize=(11, 3.8))
times, channels = np.nonzero(x_test[0])
raster.plot(times, channels, "|k", markersize=6)
raster.axvspan(0, 10, color="tab:orange", alpha=0.3, label=f"cue (label {y_test[0]})")
raster.set(xlabel="step", ylabel="input channel", title="one input sequence")
raster.legend(loc="upper right")
for name, losses in curves.items():
    learning.plot(np.convolve(losses, np.ones(5) / 5, mode="valid"), label=f"{name} (test acc. {scores[name]:.2f})")
learning.axhline(np.log(2), color="gray", linestyle=":", label="chance")
learning.set(xlabel="iteration", ylabel="cross-entropy", title="training")
learning.legend()
fig.tight_layout()
fig.savefig("elm_long_horizon.png", dpi=120)
print("saved elm_long_horizon.png")
