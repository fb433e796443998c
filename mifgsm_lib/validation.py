"""Checks of the values users pass in, made once at the boundary of the library (scikit-learn's rule).

Every check returns the value in the form the library works with, or raises a ``ValueError`` that names the
parameter and says what was expected. This module needs NumPy only, so that setting B's worker processes can
import it without torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _as_numpy(values: Any) -> np.ndarray:
    """An array of ``values``, taking torch tensors back to the CPU without importing torch."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def check_labels(
    y: Any, *, n: int | None = None, num_classes: int | None = None, min_classes: int = 2, name: str = "y"
) -> np.ndarray:
    """Class labels as a 1-D ``int64`` array: integers in ``0..num_classes-1`` (any non-negative integer when
    ``num_classes`` is None), ``n`` of them when given, with at least ``min_classes`` distinct classes.

    With one class only the vCLUB estimate (Eq. 7) is identically 0 and has no gradient, and no classifier can
    be fitted, hence ``min_classes=2`` by default. Unknown labels (-1) must be left out before the check.
    """
    labels = _as_numpy(y)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name}: expected integer class labels (e.g. 0 = male, 1 = female), got dtype {labels.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D vector of labels, got shape {labels.shape}")
    if n is not None and len(labels) != n:
        raise ValueError(f"{name}: expected {n} labels (one per sample), got {len(labels)}")
    labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name}: expected non-negative class labels (leave unknown ones, -1, out), got "
                         f"{int(labels.min())}")
    if num_classes is not None and labels.size and labels.max() >= num_classes:
        raise ValueError(f"{name}: labels must lie in 0..{num_classes - 1} (num_classes={num_classes}), "
                         f"got values in {int(labels.min())}..{int(labels.max())}")
    present = np.unique(labels)
    if present.size < min_classes:
        raise ValueError(f"{name}: only class(es) {present.tolist()} present in {labels.size} labels; expected at "
                         f"least {min_classes} classes (with one class the vCLUB estimate is 0 and has no gradient, "
                         "and no classifier can be fitted)")
    return labels


def check_templates(z: Any, *, n: int | None = None, dim: int | None = None, name: str = "templates") -> np.ndarray:
    """Templates as a finite 2-D ``float64`` array (``n`` rows and ``dim`` columns when given)."""
    x = np.asarray(_as_numpy(z), dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, dim), got shape {x.shape}")
    if n is not None and len(x) != n:
        raise ValueError(f"{name}: expected {n} templates, got {len(x)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name}: expected templates of dimension {dim}, got {x.shape[1]}")
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.all(np.isfinite(x), axis=1))
        raise ValueError(f"{name}: expected finite values, rows {bad[:5].tolist()} contain NaN/inf")
    return x


def check_eps(eps: Any, name: str = "eps") -> float:
    """ε as a float on the [0, 1] pixel scale; a clear error unless 0 ≤ ε ≤ 1."""
    try:
        value = float(eps)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}={eps!r}: expected a number in [0, 1] on the [0, 1] pixel scale") from exc
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name}={eps!r}: expected a number in [0, 1] on the [0, 1] pixel scale")
    return value


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1 (booleans refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer")
    return int(value)


def check_distinct(values: Sequence[Any], name: str) -> list[Any]:
    """``values`` as a list, refused when one appears twice (a repeated ε or method would be computed once and
    reported twice)."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{name}={values!r}: expected a list of values, not a single string")
    seen: list[Any] = []
    for v in values:
        if v in seen:
            raise ValueError(f"{name}: {v!r} is given twice; expected distinct values")
        seen.append(v)
    return seen


def check_eps_list(eps_list: Sequence[Any], name: str = "eps_list") -> list[float]:
    """Attacked levels: a non-empty list of distinct ε in (0, 1] (a sweep adds the clean row, ε = 0, itself)."""
    if isinstance(eps_list, (str, bytes)) or not hasattr(eps_list, "__len__") or len(eps_list) == 0:
        raise ValueError(f"{name}={eps_list!r}: expected a non-empty list of levels ε > 0")
    values = check_distinct([check_eps(e, name) for e in eps_list], name)
    if min(values) <= 0.0:
        raise ValueError(f"{name}={list(eps_list)!r}: expected levels ε > 0 (the clean row, ε = 0, is added by the "
                         "sweep)")
    return values
