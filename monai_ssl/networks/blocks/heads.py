"""Projection heads for contrastive learning."""

from __future__ import annotations

from torch import nn

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Sequential):
    """SimCLR(v2) projection MLP ``g``: ``num_layers`` linear layers, BatchNorm + ReLU between them.

    Args:
        in_features: encoder feature size (e.g. 512 for ResNet-18).
        hidden_features: width of the hidden layers.
        out_features: embedding size (SimCLR: 128).
        num_layers: number of linear layers (SimCLR v1: 2, v2: 3); 1 gives a linear projection.
        batch_norm: BatchNorm1d after each hidden linear layer (and a non-affine one after the last when
            ``last_batch_norm``), as in SimCLR v2.
        last_batch_norm: normalise the output embedding too.

    Input (B, in_features); output (B, out_features).
    """

    def __init__(
        self,
        in_features: int,
        hidden_features: int = 2048,
        out_features: int = 128,
        num_layers: int = 2,
        batch_norm: bool = True,
        last_batch_norm: bool = False,
    ) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(width, hidden_features, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_features))
            layers.append(nn.ReLU(inplace=True))
            width = hidden_features
        layers.append(nn.Linear(width, out_features, bias=not last_batch_norm))
        if last_batch_norm:
            layers.append(nn.BatchNorm1d(out_features, affine=False))
        super().__init__(*layers)
        self.in_features, self.out_features = in_features, out_features
