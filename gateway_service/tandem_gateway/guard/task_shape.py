"""The shape of a coding task, for the difficulty model beside its n-grams.

A task's words say what it is about; its shape says how much it asks: how long
the statement is, how many worked examples and constraints it carries, and how
large its input bounds are (a bound of 10^5 rules out a quadratic answer, an
answer "modulo 10^9 + 7" is counting at scale). Problem statements copied from
judges lose their superscripts, so ``10^4`` often arrives as ``104``; a bound
written ``10`` then one or two digits is read as a power of ten.

The features are raw numbers; training standardises them and folds the scaling
into the weights, so scoring reads them as they are. A text that is not a
judge-style task (no examples, no constraints) has zeros there and is rated on
its words and length.
"""

from __future__ import annotations

import math
import re

import numpy as np
import numpy.typing as npt

_BOUND = re.compile(r"(?:<=|<|≤)\s*(10\s*(?:\^|\*\*)\s*\d+|\d+)")
_POWER = re.compile(r"10\s*(?:\^|\*\*)\s*(\d+)")
_MODULO = re.compile(r"10\s*(?:\^|\*\*)?\s*9\s*\+\s*7|\bmodulo\b", re.I)
SHAPE_NAMES = (
    "log statement chars",
    "log text chars",
    "examples",
    "constraint lines",
    "largest bound exponent",
    "bounds of 10^5 or more",
    "answer modulo a large prime",
    "queries",
    "statement lines",
)


def _exponent(bound: str) -> float:
    power = _POWER.fullmatch(bound)
    if power:
        return float(power.group(1))
    if len(bound) in (3, 4) and bound.startswith("10") and 1 <= int(bound[2:]) <= 18:
        return float(bound[2:])  # "104": 10^4 with its superscript lost
    return math.log10(max(int(bound[:19]), 1))


def task_shape(text: str) -> npt.NDArray[np.float32]:
    """The features named in ``SHAPE_NAMES``, in that order."""
    statement = text.split("Example 1", 1)[0]
    constraints = text.partition("Constraints")[2]
    exponents = [_exponent(b) for b in _BOUND.findall(constraints)] or [0.0]
    return np.array(
        [
            math.log1p(len(statement)),
            math.log1p(len(text)),
            text.count("Example "),
            constraints.count("\n"),
            max(exponents),
            sum(e >= 5 for e in exponents),
            float(bool(_MODULO.search(text))),
            float("queries" in text),
            statement.count("\n"),
        ],
        dtype=np.float32,
    )
