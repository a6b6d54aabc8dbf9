"""Equation strings of well-known neuron models, in Brian 2's syntax (they run unchanged in Brian 2).

Pass one to :class:`~ranvier.neurons.Equations` with the model's threshold, reset and parameter
values (SI floats), e.g. ``Equations(IZHIKEVICH, threshold="v >= 30*mV", reset="v = c; u += d",
method="euler", parameters={...})``; docs/models.md has the values of the worked examples.
"""

#: Izhikevich (2003), "Simple model of spiking neurons": ``v`` in volts, ``u`` and the drive ``I`` in V/s
IZHIKEVICH = """
    dv/dt = (0.04/ms/mV)*v**2 + (5/ms)*v + 140*mV/ms - u + I : volt
    du/dt = a*(b*v - u) : volt/second
    a : 1/second
    b : 1/second
    c : volt
    d : volt/second
    I : volt/second
"""

#: adaptive exponential integrate-and-fire (Brette & Gerstner 2005); reset to ``V_r``
ADEX = """
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
    V_r : volt
    I : amp
"""

#: Brian 2's CUBA neuron: a LIF with exponential excitatory and inhibitory currents (volt-equivalent)
CUBA_LIF = """
    dv/dt = (v_rest - v + I_exc + I_inh) / tau_m : volt (unless refractory)
    dI_exc/dt = -I_exc / tau_exc : volt
    dI_inh/dt = -I_inh / tau_inh : volt
    tau_m : second
    tau_exc : second
    tau_inh : second
    v_rest : volt
    v_th : volt
    v_reset : volt
"""
