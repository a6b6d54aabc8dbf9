"""SI unit helpers: every quantity in ranvier is a plain float in SI units.

Multiply by a unit to write a quantity and divide by it to read one::

    from ranvier.units import ms, mV
    tau_m = 20 * ms          # 0.02 (seconds)
    print(v / mV)            # volts -> millivolts
"""

second = 1.0
ms = 1e-3
us = 1e-6
minute = 60.0

volt = 1.0
mV = 1e-3
uV = 1e-6

Hz = 1.0
kHz = 1e3

amp = 1.0
nA = 1e-9
pA = 1e-12

farad = 1.0
pF = 1e-12

ohm = 1.0
Mohm = 1e6

siemens = 1.0
nS = 1e-9

radian = 1.0

__all__ = [
    "second", "ms", "us", "minute", "volt", "mV", "uV", "Hz", "kHz",
    "amp", "nA", "pA", "farad", "pF", "ohm", "Mohm", "siemens", "nS", "radian",
]
