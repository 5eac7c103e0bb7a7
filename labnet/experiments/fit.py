"""Ordinary least squares for the experiments' linear models, small enough to need no numpy
(a plot is optional, an experiment's numbers are not)."""

from __future__ import annotations

from collections.abc import Sequence


def least_squares(rows: Sequence[Sequence[float]], values: Sequence[float]) -> list[float]:
    """The coefficients ``c`` minimizing sum((row . c - value)^2): the normal equations
    solved by Gauss-Jordan elimination with partial pivoting. Add a column of ones to a row
    for an intercept. ValueError when the columns are linearly dependent."""
    if len(rows) != len(values) or not rows:
        raise ValueError("least squares needs as many rows as values, and at least one")
    width = len(rows[0])
    # the normal equations A^T A c = A^T b, as an augmented matrix
    matrix = [
        [sum(r[i] * r[j] for r in rows) for j in range(width)]
        + [sum(r[i] * v for r, v in zip(rows, values, strict=True))]
        for i in range(width)
    ]
    for column in range(width):
        pivot = max(range(column, width), key=lambda r: abs(matrix[r][column]))
        if abs(matrix[pivot][column]) < 1e-12:
            raise ValueError("the model's columns are linearly dependent on these points")
        matrix[column], matrix[pivot] = matrix[pivot], matrix[column]
        lead = matrix[column][column]
        matrix[column] = [x / lead for x in matrix[column]]
        for other in range(width):
            if other != column:
                factor = matrix[other][column]
                matrix[other] = [
                    x - factor * y for x, y in zip(matrix[other], matrix[column], strict=True)
                ]
    return [matrix[i][width] for i in range(width)]


def line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Slope and intercept of the least-squares line through the points."""
    slope, intercept = least_squares([(x, 1.0) for x in xs], ys)
    return slope, intercept
