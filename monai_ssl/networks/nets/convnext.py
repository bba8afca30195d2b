"""ConvNeXt (2D/3D) classifier: stem, four stages of ConvNeXt blocks, GAP -> LayerNorm -> Linear head.

ConvNeXt: Liu et al., "A ConvNet for the 2020s", CVPR 2022. Parameter names follow the common ConvNeXt layout
(``downsample_layers.{i}``, ``stages.{i}.{j}.{dwconv,norm,pwconv1,pwconv2,gamma}``, ``head.{norm,fc}``) so that the
encoder of :class:`~monai_ssl.networks.nets.ConvNeXtMAE` maps onto it by a prefix change only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers import Conv, DropPath
from torch import nn

__all__ = [
    "LayerNormChannelsFirst",
    "ConvNeXtBlock",
    "ConvNeXt",
    "convnext_tiny",
    "convnext_small",
    "CONVNEXT_CONFIGS",
]

CONVNEXT_CONFIGS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "tiny": ((3, 3, 9, 3), (96, 192, 384, 768)),
    "small": ((3, 3, 27, 3), (96, 192, 384, 768)),
}


class LayerNormChannelsFirst(nn.Module):
    """LayerNorm over the channel axis of ``(B, C, *spatial)`` tensors (2D or 3D).

    Args:
        num_channels: ``C``.
        eps: numerical epsilon.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.movedim(1, -1)
        x = F.layer_norm(x, (self.num_channels,), self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


class ConvNeXtBlock(nn.Module):
    """7x7(x7) depthwise conv -> LayerNorm -> Linear(4C) -> GELU -> Linear(C) -> layer scale -> drop path -> + x.

    Args:
        spatial_dims: 2 or 3.
        dim: channels ``C``.
        drop_path: stochastic depth probability of the residual branch.
        layer_scale_init_value: initial value of the per-channel scale ``gamma`` (<= 0 disables it).
        kernel_size: depthwise kernel size.

    Forward: ``(B, C, *spatial) -> (B, C, *spatial)``.
    """

    def __init__(
        self,
        spatial_dims: int,
        dim: int,
        drop_path: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        kernel_size: int = 7,
    ) -> None:
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.dwconv = conv(dim, dim, kernel_size=kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = None
        if layer_scale_init_value > 0:
            self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dwconv(x).movedim(1, -1)  # channels last for LN + Linear
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        if self.gamma is not None:
            x = x * self.gamma
        return shortcut + self.drop_path(x.movedim(-1, 1))


class ConvNeXt(nn.Module):
    """ConvNeXt for 2D or 3D inputs (Liu et al. 2022, "A ConvNet for the 2020s").

    Layout: stem (k4 s4 conv -> LN) and three downsamplers (LN -> k2 s2 conv) in ``downsample_layers``;
    ``stages[i]`` holds ``depths[i]`` :class:`ConvNeXtBlock` of width ``dims[i]``; head = global average
    pool -> LayerNorm -> Linear. Total stride ``4 * 2 ** (len(depths) - 1)`` (32 for four stages).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        num_classes: outputs of the linear head; 0 makes ``head.fc`` an identity (pooled features out).
        depths: blocks per stage, e.g. ``(3, 3, 9, 3)`` (tiny).
        dims: widths per stage, e.g. ``(96, 192, 384, 768)``.
        drop_path_rate: stochastic depth rising linearly from 0 to this value over all blocks.
        layer_scale_init_value: layer-scale init (1e-6 as in the paper).
        head_init_scale: multiplies the initial head weights and bias.
        use_head: build the classification head; ``False`` gives a pure encoder (used by the MAE).

    Example::

        net = convnext_tiny(spatial_dims=2, in_channels=1, num_classes=2)
        feats = net.forward_features(torch.rand(2, 1, 224, 224))  # (2, 768, 7, 7)
        logits = net.forward_head(feats)                           # (2, 2)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        head_init_scale: float = 1.0,
        use_head: bool = True,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
        depths, dims = tuple(int(d) for d in depths), tuple(int(d) for d in dims)
        if len(depths) != len(dims) or not depths:
            raise ValueError(f"depths {depths} and dims {dims} must be non-empty and of equal length.")
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {drop_path_rate}.")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.depths, self.dims = depths, dims
        self.num_features = dims[-1]
        self.stride = 4 * 2 ** (len(dims) - 1)
        conv = Conv[Conv.CONV, spatial_dims]

        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(conv(in_channels, dims[0], kernel_size=4, stride=4), LayerNormChannelsFirst(dims[0]))]
        )
        for i in range(len(dims) - 1):
            self.downsample_layers.append(
                nn.Sequential(LayerNormChannelsFirst(dims[i]), conv(dims[i], dims[i + 1], kernel_size=2, stride=2))
            )
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # linear 0 -> rate
        self.stages = nn.ModuleList()
        start = 0
        for depth, dim in zip(depths, dims):
            self.stages.append(
                nn.Sequential(
                    *[ConvNeXtBlock(spatial_dims, dim, rates[start + j], layer_scale_init_value) for j in range(depth)]
                )
            )
            start += depth

        self.head: nn.Module | None = None
        if use_head:
            self.head = nn.Module()
            self.head.norm = nn.LayerNorm(dims[-1], eps=1e-6)
            self.head.fc = nn.Linear(dims[-1], num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes = num_classes if use_head else 0
        self.apply(self._init_weights)
        if use_head and isinstance(self.head.fc, nn.Linear):
            with torch.no_grad():
                self.head.fc.weight.mul_(head_init_scale)
                self.head.fc.bias.mul_(head_init_scale)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error for a wrong rank, channel count or a size not divisible by the total stride."""
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(f"expected (B, C, *spatial) with {self.spatial_dims} spatial dims, got {tuple(x.shape)}.")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {x.shape[1]} (shape {tuple(x.shape)}).")
        if any(s % self.stride for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} must be divisible by the total stride {self.stride}.")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *spatial) -> (B, dims[-1], *spatial / stride)`` feature map (before pooling)."""
        self.check_input(x)
        for down, stage in zip(self.downsample_layers, self.stages):
            x = stage(down(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(B, C, *spatial)`` map -> GAP -> LayerNorm -> ``(B, C)`` (``pre_logits``) or ``(B, num_classes)``."""
        if self.head is None:
            raise RuntimeError("this ConvNeXt was built with use_head=False; it has no classification head.")
        x = self.head.norm(x.flatten(2).mean(-1))
        return x if pre_logits else self.head.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C_in, *spatial) -> (B, num_classes)`` logits (pooled features when ``num_classes == 0``)."""
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the linear layer by a fresh one with ``num_classes`` outputs (0: identity)."""
        if self.head is None:
            raise RuntimeError("this ConvNeXt was built with use_head=False; it has no classification head.")
        self.num_classes = num_classes
        ref = self.head.norm.weight
        fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        if isinstance(fc, nn.Linear):
            nn.init.trunc_normal_(fc.weight, std=0.02)
            nn.init.zeros_(fc.bias)
        self.head.fc = fc.to(device=ref.device, dtype=ref.dtype)


def _factory(name: str, spatial_dims: int, in_channels: int, num_classes: int, **kwargs) -> ConvNeXt:
    depths, dims = CONVNEXT_CONFIGS[name]
    return ConvNeXt(spatial_dims, in_channels, num_classes, depths=depths, dims=dims, **kwargs)


def convnext_tiny(spatial_dims: int = 2, in_channels: int = 3, num_classes: int = 1000, **kwargs) -> ConvNeXt:
    """ConvNeXt-Tiny: depths (3, 3, 9, 3), widths (96, 192, 384, 768), ~28 M parameters in 2D."""
    return _factory("tiny", spatial_dims, in_channels, num_classes, **kwargs)


def convnext_small(spatial_dims: int = 2, in_channels: int = 3, num_classes: int = 1000, **kwargs) -> ConvNeXt:
    """ConvNeXt-Small: depths (3, 3, 27, 3), widths (96, 192, 384, 768), ~50 M parameters in 2D."""
    return _factory("small", spatial_dims, in_channels, num_classes, **kwargs)
