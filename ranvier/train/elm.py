"""Training ELM neurons in torch, and the equal-size recurrent LIF network they are compared with.

:class:`ELMModule` runs :func:`ranvier.neurons.elm.elm_sequence` with ``xp = torch`` on its
parameters. :class:`RecurrentLIF` is the spiking baseline: snnTorch ``Leaky`` neurons with
recurrent weights, trained with a fast-sigmoid surrogate gradient, read out by a leaky
integrator. :func:`fit` and :func:`accuracy` train and score either on a classification task
answered at the last step (e.g. :func:`ranvier.train.tasks.delayed_cue_recall`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..neurons.elm import ELMWeights, elm_sequence


class ELMModule(nn.Module):
    """ELM neurons as a ``torch.nn.Module``: ``forward(inputs (batch, T, n_in)) -> (outputs, state)``.

    ``w_s``, the MLP and the readout are trained; the timescales ``tau_s`` and ``tau_m`` are
    buffers (fixed, as in the paper's default ``learn_memory_tau=False``).
    """

    def __init__(self, weights: ELMWeights, dt: float = 1.0):
        super().__init__()
        self.w_s = nn.Parameter(torch.tensor(weights.w_s, dtype=torch.float32))
        self.register_buffer("tau_s", torch.tensor(weights.tau_s, dtype=torch.float32))
        self.register_buffer("tau_m", torch.tensor(weights.tau_m, dtype=torch.float32))
        self.mlp = nn.ModuleList()
        for weight, bias in weights.mlp:
            layer = nn.Linear(weight.shape[1], weight.shape[0])
            with torch.no_grad():
                layer.weight.copy_(torch.tensor(weight))
                layer.bias.copy_(torch.tensor(bias))
            self.mlp.append(layer)
        self.readout = nn.Linear(weights.w_y.shape[1], weights.w_y.shape[0])
        with torch.no_grad():
            self.readout.weight.copy_(torch.tensor(weights.w_y))
            self.readout.bias.copy_(torch.tensor(weights.b_y))
        self.lam = weights.lam
        self.dt = dt
        self.n_in = weights.n_in

    def weights(self) -> ELMWeights:
        """The current parameters as an :class:`ELMWeights` of tensors (gradients flow through it)."""
        return ELMWeights(w_s=self.w_s, tau_s=self.tau_s, tau_m=self.tau_m,
                          mlp=tuple((layer.weight, layer.bias) for layer in self.mlp),
                          w_y=self.readout.weight, b_y=self.readout.bias, lam=self.lam)

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check("ELMModule", self.n_in, inputs)
        state = inputs.new_zeros(inputs.shape[0], self.n_in + self.tau_m.shape[0])
        return elm_sequence(torch, self.weights(), inputs, state, self.dt)


class RecurrentLIF(nn.Module):
    """A recurrent LIF network (snnTorch ``Leaky``, subtractive reset, threshold 1) with a leaky readout.

    ``I_t = W_in x_t + W_rec z_{t-1}``, ``v_t = beta v_{t-1} + I_t - z_{t-1}``, ``z_t = H(v_t - 1)`` with a
    fast-sigmoid surrogate derivative (Zenke & Ganguli 2018, slope 25); the readout integrates
    ``u_t = beta_out u_{t-1} + W_out z_t``. ``beta = exp(-dt / tau_m)``: 0.95 is a 20 ms membrane at
    1 ms steps.
    """

    def __init__(self, n_in: int, hidden: int, n_out: int, beta: float = 0.95, beta_out: float = 0.95):
        import snntorch
        from snntorch import surrogate

        super().__init__()
        self.n_in = n_in
        self.input = nn.Linear(n_in, hidden)
        self.recurrent = nn.Linear(hidden, hidden, bias=False)
        self.lif = snntorch.Leaky(beta=beta, spike_grad=surrogate.fast_sigmoid(slope=25))
        self.readout = nn.Linear(hidden, n_out)
        self.beta_out = beta_out

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check("RecurrentLIF", self.n_in, inputs)
        batch = inputs.shape[0]
        drive = self.input(inputs)
        spikes = inputs.new_zeros(batch, self.recurrent.in_features)
        membrane = torch.zeros_like(spikes)
        readout = inputs.new_zeros(batch, self.readout.out_features)
        outputs = []
        for drive_t in drive.unbind(1):
            spikes, membrane = self.lif(drive_t + self.recurrent(spikes), membrane)
            readout = self.beta_out * readout + self.readout(spikes)
            outputs.append(readout)
        return torch.stack(outputs, 1), membrane


def _check(module: str, n_in: int, inputs: torch.Tensor) -> None:
    if inputs.dim() != 3 or inputs.shape[-1] != n_in:
        raise InputError(f"{module}: inputs must have shape (batch, T, {n_in}); got {tuple(inputs.shape)}")
    if not bool(torch.isfinite(inputs).all()):
        raise InputError(f"{module}: inputs contain NaN or infinite values")


def parameter_count(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def fit(module: nn.Module, inputs: np.ndarray, labels: np.ndarray, iterations: int, batch_size: int = 64,
        lr: float = 3e-3, seed: int = 0) -> list[float]:
    """Train ``module`` with Adam on cross-entropy of its last-step output; return the loss of every iteration."""
    generator = np.random.default_rng(seed)
    x = torch.as_tensor(inputs)
    y = torch.as_tensor(labels)
    optimiser = torch.optim.Adam(module.parameters(), lr=lr)
    losses = []
    for _ in range(iterations):
        rows = torch.as_tensor(generator.choice(len(x), size=min(batch_size, len(x)), replace=False))
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(module(x[rows])[0][:, -1], y[rows])
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        optimiser.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def accuracy(module: nn.Module, inputs: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of samples whose last-step output picks the right class."""
    outputs = module(torch.as_tensor(inputs))[0][:, -1]
    return float((outputs.argmax(1) == torch.as_tensor(labels)).float().mean())
