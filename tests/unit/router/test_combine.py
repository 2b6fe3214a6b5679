"""Combining member outputs: the voting rule and its ties, weighted means, concatenation."""

from __future__ import annotations

import numpy as np
import pytest

from modelship_serving.router.combine import (
    MembersDisagree,
    argmax_labels,
    average,
    concat,
    majority_vote,
    same_shapes,
)


def test_each_row_gets_the_class_most_members_predicted() -> None:
    labels = [np.array([0, 1, 2, 1]), np.array([0, 1, 1, 2]), np.array([1, 0, 1, 2])]
    np.testing.assert_array_equal(majority_vote(labels), [0, 1, 1, 2])


def test_a_tie_without_probabilities_goes_to_the_lowest_class() -> None:
    labels = [np.array([3, 1]), np.array([1, 3])]
    np.testing.assert_array_equal(majority_vote(labels), [1, 1])


def test_a_tie_goes_to_the_class_with_the_highest_averaged_probability() -> None:
    labels = [np.array([0, 0]), np.array([1, 1])]
    averaged = np.array([[0.4, 0.6], [0.5, 0.5]])
    # Row 0: class 1 is more probable. Row 1: probabilities tie too, so the lower class wins.
    np.testing.assert_array_equal(majority_vote(labels, averaged), [1, 0])


def test_a_majority_beats_a_higher_probability() -> None:
    labels = [np.array([0]), np.array([0]), np.array([1])]
    np.testing.assert_array_equal(majority_vote(labels, np.array([[0.1, 0.9]])), [0])


def test_a_tied_class_without_a_probability_column_loses_to_one_with_it() -> None:
    labels = [np.array([7]), np.array([1])]
    np.testing.assert_array_equal(majority_vote(labels, np.array([[0.9, 0.1]])), [1])


def test_the_vote_keeps_the_members_label_shape_and_datatype() -> None:
    labels = [np.array([[2], [0]], dtype=np.int32)] * 3
    voted = majority_vote(labels)
    assert voted.shape == (2, 1) and voted.dtype == np.int32


def test_large_batches_of_many_classes_count_the_same_way() -> None:
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 400, 4000) for _ in range(5)]
    voted = majority_vote(labels)
    for row in range(0, 4000, 97):
        values, counts = np.unique([m[row] for m in labels], return_counts=True)
        assert voted[row] == values[np.argmax(counts)]


def test_a_weighted_average_normalises_weights_and_keeps_the_datatype() -> None:
    a = np.array([[1.0, 0.0]], np.float32)
    b = np.array([[0.0, 1.0]], np.float32)
    mean = average([a, b], [3.0, 1.0])
    np.testing.assert_allclose(mean, [[0.75, 0.25]])
    assert mean.dtype == np.float32
    np.testing.assert_allclose(average([a, b]), [[0.5, 0.5]])


def test_argmax_labels_take_the_shape_asked_for() -> None:
    probabilities = np.array([[0.2, 0.8], [0.9, 0.1]])
    np.testing.assert_array_equal(argmax_labels(probabilities), [1, 0])
    assert argmax_labels(probabilities, like=(2, 1), dtype=np.int32).shape == (2, 1)


def test_concat_joins_on_the_last_axis_and_stacks_columns() -> None:
    a, b = np.ones((2, 2)), np.zeros((2, 3))
    assert concat([a, b], columns=False).shape == (2, 5)
    np.testing.assert_array_equal(concat([np.array([1, 2]), np.array([3, 4])], columns=True),
                                  [[1, 3], [2, 4]])


def test_members_answering_different_shapes_are_named() -> None:
    with pytest.raises(MembersDisagree, match=r"'a' \[2, 2\], 'b' \[3, 2\]") as error:
        same_shapes("p", {"a": np.ones((2, 2)), "b": np.ones((3, 2))})
    assert error.value.http_status == 502
    with pytest.raises(MembersDisagree, match="cannot be joined"):
        concat([np.ones((2, 2)), np.ones((3, 2))], columns=False)
