"""The model language, public: what a model's ``step`` (and a value model's ``finish``) may call, and
:class:`ArrayStep`, a matrix value model's update as one ``xp`` function.

Every helper gives the same bits on numpy, numba and numba.cuda (see docs/models.md)::

    from ranvier.language import exp, rows, select

The definitions live in :mod:`ranvier.engine.model`; the most used are also at the top level
(``rv.select``, ``rv.rows``, ...).
"""

from .engine.model import (
    NOT_FINITE,
    ArrayStep,
    any_true,
    exp,
    fill_row,
    floor,
    model_function,
    row_sum,
    rows,
    select,
    sin_cos,
    spike,
    sqrt,
    store_where,
    tanh,
    uniform01,
)

__all__ = ["NOT_FINITE", "ArrayStep", "any_true", "exp", "fill_row", "floor", "model_function", "row_sum", "rows",
           "select", "sin_cos", "spike", "sqrt", "store_where", "tanh", "uniform01"]
