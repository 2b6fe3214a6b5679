"""Population stability index, vectorised over features.

PSI compares two distributions over the same bins:
``sum((a - e) * ln(a / e))`` where ``e`` are the reference shares and ``a`` the
shares seen live. An empty bin on either side would make the logarithm
infinite, so both sides are floored at ``epsilon`` first (the usual smoothing;
it caps a bin's contribution instead of reallocating mass, so a row that sums
to one keeps doing so up to epsilon). Rules of thumb read below 0.1 as stable,
0.1 to 0.2 as a moderate shift, above 0.2 as a significant one.

Sampling noise alone gives a window of ``n`` samples over ``k`` bins a PSI of
roughly ``(k - 1) / n``: a window of a few thousand samples keeps that well
under the thresholds above.
"""

from __future__ import annotations

import numpy as np

DEFAULT_EPSILON = 1e-4


def population_stability_index(
    expected: np.ndarray,
    actual_counts: np.ndarray,
    *,
    epsilon: float = DEFAULT_EPSILON,
) -> np.ndarray:
    """PSI per row of ``expected`` (shares) against ``actual_counts`` (raw counts).

    Both arrays have shape (features, bins). Rows of ``actual_counts`` that sum
    to zero have no live data: their PSI is NaN, never a made-up zero.
    """
    if expected.shape != actual_counts.shape:
        raise ValueError(f"shape mismatch: expected {expected.shape}, actual "
                         f"{actual_counts.shape}")
    if epsilon <= 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")

    totals = actual_counts.sum(axis=-1, keepdims=True, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        actual = actual_counts / totals
    actual = np.maximum(actual, epsilon)
    reference = np.maximum(expected, epsilon)
    scores = ((actual - reference) * np.log(actual / reference)).sum(axis=-1)
    return np.where(totals[..., 0] > 0, scores, np.nan)
