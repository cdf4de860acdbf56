"""PyTorch versions of the primitives (CPU and CUDA tensors)."""

from __future__ import annotations

from types import ModuleType

import torch

from .._array_api import accumulation_dtype


def segment_sum(
    X_block: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    n_clusters: int,
    *,
    xp: ModuleType,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``_primitives.segment_sum`` by ``Tensor.index_add_`` into float64 accumulators."""
    acc = accumulation_dtype(xp, X_block.device)
    d = X_block.shape[1]
    sums = torch.zeros((n_clusters, d), dtype=acc, device=X_block.device)
    counts = torch.zeros((n_clusters,), dtype=acc, device=X_block.device)
    w = weights.to(acc)
    sums.index_add_(0, labels, X_block.to(acc) * w[:, None])
    counts.index_add_(0, labels, w)
    return sums, counts
