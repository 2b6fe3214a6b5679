"""The promotion gate: does a freshly trained version go live?

Pure logic, so every branch is unit-tested. rmse and mae are errors (lower is
better: the threshold is a ceiling); accuracy, f1, auc and r2 are scores (the
threshold is a floor). With ``mustBeatServing`` the new version must also be
strictly better than the version now serving, on the same metric.
"""

from __future__ import annotations

from dataclasses import dataclass

LOWER_IS_BETTER = frozenset({"rmse", "mae"})


@dataclass(frozen=True)
class Verdict:
    promoted: bool
    reason: str  # CamelCase, for a condition
    message: str


def judge(
    *,
    metric: str,
    threshold: float | None,
    must_beat_serving: bool,
    new: dict[str, float],
    serving: dict[str, float] | None,
    new_version: int,
    serving_version: int | None,
) -> Verdict:
    """Decide whether ``new`` (test metrics of ``new_version``) passes the gate."""
    keeps = (f"version {serving_version} keeps serving" if serving_version
             else "the current version keeps serving")
    value = new.get(metric)
    if value is None:
        return Verdict(False, "MetricMissing",
                       f"the run reported no test {metric}; {keeps}")
    lower = metric in LOWER_IS_BETTER

    if threshold is not None:
        fails = value > threshold if lower else value < threshold
        if fails:
            word = "above the ceiling" if lower else "below the floor"
            return Verdict(False, "GateFailed",
                           f"version {new_version}: test {metric} {value:.4g} is {word} "
                           f"{threshold:.4g}; {keeps}")

    if must_beat_serving and serving and metric in serving:
        current = serving[metric]
        better = value < current if lower else value > current
        if not better:
            return Verdict(False, "NotBetterThanServing",
                           f"version {new_version}: test {metric} {value:.4g} does not beat "
                           f"{current:.4g} of version {serving_version}; {keeps}")

    bound = f" (threshold {threshold:.4g})" if threshold is not None else ""
    return Verdict(True, "Promoted",
                   f"version {new_version} promoted: test {metric} {value:.4g}{bound}")
