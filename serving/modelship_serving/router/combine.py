"""How member outputs become the ensemble's: voting, weighted averages, concatenation.

Plain numpy over whole batches (no per-row Python loops), so combining costs
microseconds next to the member calls. Rows are the first dimension.

Voting rule: each row's label is the class most members predicted. A tie goes
to the tied class with the highest averaged probability when members give
probabilities (and the class indexes a probability column); what is still
tied, or without probabilities, goes to the lowest class label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from modelship_serving.protocol.errors import InferenceError, InternalError


# Above this many (member, row, class) triples the vote counts without broadcasting.
_BROADCAST_LIMIT = 1 << 20


class MembersDisagree(InferenceError):
    """Members answered tensors that cannot be combined (a member misbehaves)."""

    http_status = 502
    grpc_code = InternalError.grpc_code


def same_shapes(name: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Raise MembersDisagree unless every member's `name` output has one shape."""
    shapes = {member: a.shape for member, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"'{m}' {list(s)}" for m, s in shapes.items())
        raise MembersDisagree(f"members answered output '{name}' in different shapes: {listed}")


def average(arrays: Sequence[np.ndarray], weights: Sequence[float] | None = None
            ) -> np.ndarray:
    """The (weighted) mean of equally shaped arrays, in their own floating-point type.

    Accumulates in float64, one array at a time: members are few, and a loop of
    in-place adds is several times cheaper than stacking for small batches.
    """
    if weights is None:
        weights = [1.0] * len(arrays)
    total = float(sum(weights))
    mean = arrays[0].astype(np.float64) * (weights[0] / total)
    for array, weight in zip(arrays[1:], weights[1:], strict=True):
        mean += array * (weight / total)
    return mean.astype(arrays[0].dtype, copy=False)


def argmax_labels(probabilities: np.ndarray, *, like: tuple[int, ...] | None = None,
                  dtype: np.dtype | type = np.int64) -> np.ndarray:
    """Each row's most probable class, shaped `like` ([rows] when not given)."""
    labels = np.argmax(probabilities, axis=-1).astype(dtype)
    return labels.reshape(like) if like is not None else labels


def majority_vote(labels: Sequence[np.ndarray], probabilities: np.ndarray | None = None
                  ) -> np.ndarray:
    """Each row's voted class (see the module docstring for ties).

    `labels` are the members' predictions, each [rows] or [rows, 1];
    `probabilities` the averaged [rows, classes] when members give them.
    The result has the first member's shape and datatype.
    """
    first = labels[0]
    votes = np.stack([np.asarray(a).reshape(-1) for a in labels])  # members x rows
    classes = np.unique(votes)
    if votes.size * classes.size <= _BROADCAST_LIMIT:
        counts = (votes[:, :, None] == classes).sum(axis=0)  # rows x classes
    else:  # many rows of many classes: count member by member, not in one cube
        rows = votes.shape[1]
        counts = np.zeros((rows, classes.size), dtype=np.int64)
        for member_votes in np.searchsorted(classes, votes):
            counts[np.arange(rows), member_votes] += 1
    tied = counts == counts.max(axis=1, keepdims=True)

    # Among tied classes the highest averaged probability wins. np.argmax takes
    # the first of equal scores and classes are sorted: the lowest label wins the rest.
    score = tied - 2.0  # tied -1, others -2
    if probabilities is not None and probabilities.ndim == 2:
        usable = (classes >= 0) & (classes < probabilities.shape[1])
        if usable.any():
            picked = np.full(counts.shape, -1.0)
            picked[:, usable] = probabilities[:, classes[usable].astype(np.int64)]
            score = np.where(tied, picked, -2.0)
    winners = classes[np.argmax(score, axis=1)]
    return winners.astype(first.dtype, copy=False).reshape(first.shape)


def concat(arrays: Sequence[np.ndarray], *, columns: bool) -> np.ndarray:
    """Join along the last axis; `columns`: [rows] arrays become [rows, 1] first."""
    if columns:
        arrays = [a.reshape(-1, 1) for a in arrays]
    try:
        return np.concatenate(arrays, axis=-1)
    except ValueError as exc:
        shapes = [list(a.shape) for a in arrays]
        raise MembersDisagree(f"member outputs of shapes {shapes} cannot be joined along "
                              f"the last axis: {exc}") from None
