"""Benchmark data: seeded float32 Gaussian mixtures, and the tutorial's 150 points."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Shape:
    n: int
    d: int
    k: int
    tutorial: bool = False

    @property
    def label(self) -> str:
        return "tutorial (150, 2, 3)" if self.tutorial else f"({self.n:,}, {self.d}, {self.k})"


def parse_shapes(text: str) -> list[Shape]:
    """``"tutorial,100000x32x64"`` -> shapes; ``tutorial`` is the seed tutorial's three blobs."""
    shapes = []
    for item in text.split(","):
        item = item.strip()
        if item == "tutorial":
            shapes.append(Shape(150, 2, 3, tutorial=True))
            continue
        try:
            n, d, k = (int(v) for v in item.lower().split("x"))
        except ValueError:
            raise SystemExit(f"bad shape {item!r}: expected NxDxK, e.g. 100000x32x64") from None
        shapes.append(Shape(n, d, k))
    return shapes


def make_data(shape: Shape, seed: int = 0) -> np.ndarray:
    """float32: the tutorial's blobs, or a mixture of k unit Gaussians with means ~ N(0, 4²)."""
    if shape.tutorial:
        from kmeans_xp._tools.demo import tutorial_blobs

        return tutorial_blobs().astype(np.float32)
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(shape.k, shape.d)).astype(np.float32)
    X = rng.standard_normal((shape.n, shape.d), dtype=np.float32)
    X += means[rng.integers(0, shape.k, size=shape.n)]
    return X


def initial_centers(X: np.ndarray, k: int, seed: int = 1) -> np.ndarray:
    """One set of initial centers shared by every implementation: k distinct rows of X."""
    rows = np.random.default_rng(seed).choice(X.shape[0], size=k, replace=False)
    return np.ascontiguousarray(X[np.sort(rows)])
