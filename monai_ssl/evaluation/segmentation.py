"""Segmentation on a pretrained (MAE) encoder: MONAI ``SwinUNETR`` / ``UNETR`` + Dice-CE + sliding-window Dice.

METHODS.md §4.4 (VIS-MAE fine-tuning) and §4.7 (ViT-MAE -> UNETR). ``build_segmentation_model`` builds the MONAI
network and, given a checkpoint, loads the pretrained encoder through the explicit key maps of
:mod:`monai_ssl.networks` with a :class:`~monai_ssl.networks.weights.WeightLoadReport`. What is transferred:

* ``arch="swinunetr"`` from a :class:`~monai_ssl.networks.nets.SwinMAE`: the whole Swin encoder
  (``swinViT.*``: patch embedding, the four Swin stages with their relative position tables and the patch
  mergings). **Not** transferred: the MAE mask token and the Swin-Unet MAE decoder. VIS-MAE's own segmenter
  is a Swin-Unet whose up-path matches the MAE decoder, but MONAI's SwinUNETR decoder is convolutional
  (``encoder1..4/10`` residual conv blocks on the skips, ``decoder1..5`` transposed-conv up blocks, ``out``), so
  no decoder tensor has a counterpart of the same role and shape; it starts from MONAI's random init.
* ``arch="unetr"`` from a :class:`~monai_ssl.networks.nets.MaskedAutoencoderViT`: the ViT encoder
  (``vit.*``: patch embedding incl. position table, the 12 transformer blocks, final norm). The MAE decoder
  has no counterpart in UNETR's convolutional decoder and is dropped.

The loss is MONAI ``DiceCELoss`` with 0.4 CE + 0.6 Dice; training and evaluation are MONAI
``SupervisedTrainer`` / ``SupervisedEvaluator`` (sliding-window inference, ``MeanDice`` per foreground class).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from monai_ssl.networks.nets.swin_mae import swin_mae_to_swinunetr
from monai_ssl.networks.transfer import TARGET_SCOPES
from monai_ssl.networks.weights import (
    WeightLoadReport,
    load_checkpoint_weights,
    load_mapped_state_dict,
    mae_vit_to_monai_vit,
)

__all__ = [
    "SEGMENTATION_ARCHS",
    "build_segmentation_evaluator",
    "build_segmentation_model",
    "build_segmentation_trainer",
    "mean_dice_per_class",
    "segmentation_loss",
]

SEGMENTATION_ARCHS = ("swinunetr", "unetr")


# ---------------------------------------------------------------------------------------------- config checks
def _swin_signature(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, Any]:
    """Structural settings of a MONAI ``SwinTransformer`` read from tensor names/shapes under ``prefix``."""
    w = state.get(prefix + "patch_embed.proj.weight")
    if w is None:
        return {}
    sig: dict[str, Any] = {
        "spatial_dims": w.ndim - 2,
        "feature_size": int(w.shape[0]),
        "in_channels": int(w.shape[1]),
        "patch_size": tuple(int(s) for s in w.shape[2:]),
        "use_v2": any(k.startswith(prefix + "layers1c.") for k in state),
    }
    depths, heads, windows, mlp, qkv_bias = [], [], [], None, None
    for stage in range(1, 5):
        pat = re.compile(re.escape(f"{prefix}layers{stage}.0.blocks.") + r"(\d+)\.")
        blocks = {int(m.group(1)) for k in state if (m := pat.match(k))}
        depths.append(len(blocks))
        table = state.get(f"{prefix}layers{stage}.0.blocks.0.attn.relative_position_bias_table")
        heads.append(None if table is None else int(table.shape[1]))
        windows.append(None if table is None else int(table.shape[0]))
        if stage == 1:
            lin = state.get(f"{prefix}layers1.0.blocks.0.mlp.linear1.weight")
            mlp = None if lin is None else int(lin.shape[0])
            qkv_bias = f"{prefix}layers1.0.blocks.0.attn.qkv.bias" in state
    sig.update(depths=tuple(depths), num_heads=tuple(heads), mlp_hidden=mlp, qkv_bias=qkv_bias)
    sig["relative_position_table_rows (window_size)"] = tuple(windows)
    return sig


def _vit_signature(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, Any]:
    """Structural settings of a (MONAI-named) ViT encoder read from tensor names/shapes under ``prefix``."""
    w = state.get(prefix + "patch_embedding.patch_embeddings.weight")
    if w is None:
        return {}
    pos = state.get(prefix + "patch_embedding.position_embeddings")
    pat = re.compile(re.escape(prefix + "blocks.") + r"(\d+)\.")
    lin = state.get(prefix + "blocks.0.mlp.linear1.weight")
    return {
        "spatial_dims": w.ndim - 2,
        "hidden_size": int(w.shape[0]),
        "in_channels": int(w.shape[1]),
        "patch_size": tuple(int(s) for s in w.shape[2:]),
        "num_tokens (img_size / patch_size)": None if pos is None else int(pos.shape[1]),
        "num_layers": len({int(m.group(1)) for k in state if (m := pat.match(k))}),
        "mlp_dim": None if lin is None else int(lin.shape[0]),
        "qkv_bias": (prefix + "blocks.0.attn.qkv.bias") in state,
    }


def _check_compatible(source: dict, target: dict, src_name: str, dst_name: str, hint: str) -> None:
    diffs = [f"{k} (checkpoint {source[k]}, model {target.get(k)})" for k in source if source[k] != target.get(k)]
    if diffs:
        raise ValueError(
            f"pretrained {src_name} does not match the {dst_name} to build: " + "; ".join(diffs) + f". {hint}"
        )


def _as_state_dict(pretrained: str | os.PathLike | Mapping[str, torch.Tensor], checkpoint_key: str | None) -> dict:
    if isinstance(pretrained, Mapping):
        from ..networks.transfer import _unwrap  # same container handling as load_pretrained (DDP prefix, "network")

        return _unwrap(pretrained, checkpoint_key)
    return load_checkpoint_weights(pretrained, key=checkpoint_key)


def _check_img_size(img_size: Sequence[int], spatial_dims: int, divisor: int, arch: str, why: str) -> tuple:
    size = (int(img_size),) * spatial_dims if isinstance(img_size, int) else tuple(int(s) for s in img_size)
    if len(size) != spatial_dims or any(s <= 0 or s % divisor for s in size):
        raise ValueError(f"{arch}: img_size {tuple(size)} must have {spatial_dims} positive entries divisible by "
                         f"{divisor} ({why}).")
    return size


# ---------------------------------------------------------------------------------------------- model
def build_segmentation_model(
    arch: str = "swinunetr",
    spatial_dims: int = 3,
    in_channels: int = 1,
    out_channels: int = 2,
    img_size: Sequence[int] | int | None = None,
    pretrained: str | os.PathLike | Mapping[str, torch.Tensor] | None = None,
    min_loaded_fraction: float = 0.9,
    checkpoint_key: str | None = None,
    **kwargs: Any,
) -> tuple[nn.Module, WeightLoadReport | None]:
    """MONAI ``SwinUNETR`` or ``UNETR``, optionally initialised from an MAE checkpoint.

    Args:
        arch: ``"swinunetr"`` (load a :class:`SwinMAE`) or ``"unetr"`` (load a :class:`MaskedAutoencoderViT`).
        spatial_dims: 2 or 3.
        in_channels: image channels.
        out_channels: classes including background (softmax outputs).
        img_size: training/ROI size per spatial dim. Required for UNETR (its position table is sized by it;
            must match the MAE's ``img_size`` when loading). For SwinUNETR it is optional and only checked:
            each dim must be divisible by ``patch_size ** 5`` (MONAI's input check; 32 for ``patch_size=2``).
        pretrained: ``None`` (random init), a checkpoint path (read with ``torch.load(weights_only=True)``;
            containers such as ``{"network": ...}`` are unwrapped) or a state dict. Accepted layouts: a
            ``SwinMAE`` (``encoder.*``) or a ``SwinUNETR`` (``swinViT.*``) for SwinUNETR; a
            ``MaskedAutoencoderViT`` (``patch_embedding.*``, ``blocks.*``) or a ``UNETR`` (``vit.*``) for UNETR.
        min_loaded_fraction: fail when fewer than this share of the mapped encoder tensors load.
        checkpoint_key: entry of a container checkpoint holding the weights (``None``: auto-detect).
        kwargs: passed to ``SwinUNETR`` (``feature_size``, ``patch_size``, ``depths``, ``num_heads``,
            ``window_size``, ``mlp_ratio``, ``qkv_bias``, ``use_v2``, ``downsample``, ``norm_name``,
            ``dropout_path_rate``, ...) or ``UNETR`` (``feature_size``, ``hidden_size``, ``mlp_dim``,
            ``num_heads``, ``qkv_bias``, ``norm_name``, ...). The structural ones must equal the MAE's:
            SwinUNETR needs the same ``feature_size``, ``patch_size``, ``depths``, ``num_heads``, ``window_size``,
            ``mlp_ratio``, ``qkv_bias``, ``use_v2`` (and ``downsample``, which cannot be read from weights);
            UNETR needs ``hidden_size``, ``mlp_dim``, ``qkv_bias``, ``img_size``, an MAE with 12 blocks and patch
            16 (UNETR's fixed values) and the same ``num_heads`` (not readable from weights either).

    Returns:
        ``(model, report)``; ``report`` is ``None`` without ``pretrained``.

    Raises:
        ValueError: unknown ``arch``; bad ``img_size``; a checkpoint of the wrong family; settings that differ
            between checkpoint and model (each difference named); fewer than ``min_loaded_fraction`` loaded.
        FileNotFoundError: ``pretrained`` path does not exist.

    Example::

        mae = SwinMAE(spatial_dims=2, in_channels=1, feature_size=24)
        net, report = build_segmentation_model("swinunetr", 2, 1, 4, img_size=96, pretrained=mae.state_dict(),
                                               feature_size=24)
    """
    from monai.networks.nets import UNETR, SwinUNETR

    arch = str(arch).lower()
    if arch not in SEGMENTATION_ARCHS:
        raise ValueError(f"arch must be one of {SEGMENTATION_ARCHS}, got {arch!r}.")
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
    if arch == "swinunetr":
        model: nn.Module = SwinUNETR(in_channels=in_channels, out_channels=out_channels, spatial_dims=spatial_dims,
                                     **kwargs)
        if img_size is not None:
            _check_img_size(img_size, spatial_dims, int(model.patch_size) ** 5, arch,
                            "SwinUNETR's input check: patch_size ** 5")
    else:
        if img_size is None:
            raise ValueError("unetr: img_size is required (it sizes the ViT position table).")
        size = _check_img_size(img_size, spatial_dims, 16, arch, "UNETR's fixed ViT patch size 16")
        model = UNETR(in_channels=in_channels, out_channels=out_channels, img_size=size, spatial_dims=spatial_dims,
                      **kwargs)
    if pretrained is None:
        return model, None

    state = _as_state_dict(pretrained, checkpoint_key)
    target = model.state_dict()
    if arch == "swinunetr":
        if any(k.startswith("encoder.patch_embed.") for k in state):
            mapped, src_name = swin_mae_to_swinunetr(state, prefix="swinViT."), "SwinMAE"
        elif any(k.startswith("swinViT.patch_embed.") for k in state):
            mapped, src_name = {k: v for k, v in state.items() if k.startswith("swinViT.")}, "SwinUNETR"
        else:
            raise ValueError(
                "pretrained weights for swinunetr must come from a SwinMAE (keys 'encoder.patch_embed.*', ...) or a "
                f"SwinUNETR ('swinViT.*'); got keys like {sorted(state)[:5]}. A ViT-MAE checkpoint goes with "
                "arch='unetr'."
            )
        _check_compatible(_swin_signature(mapped, "swinViT."), _swin_signature(target, "swinViT."), src_name,
                          "SwinUNETR", "Pass the MAE's settings (feature_size, patch_size, depths, num_heads, "
                          "window_size, mlp_ratio, qkv_bias, use_v2) as keyword arguments.")
    else:
        if any(k.startswith("patch_embedding.patch_embeddings.") for k in state):
            mapped, src_name = mae_vit_to_monai_vit(state, prefix="vit."), "MaskedAutoencoderViT"
        elif any(k.startswith("vit.patch_embedding.") for k in state):
            mapped, src_name = {k: v for k, v in state.items() if k.startswith("vit.")}, "UNETR"
        else:
            raise ValueError(
                "pretrained weights for unetr must come from a MaskedAutoencoderViT (keys "
                f"'patch_embedding.patch_embeddings.*', 'blocks.*') or a UNETR ('vit.*'); got keys like "
                f"{sorted(state)[:5]}. A SwinMAE checkpoint goes with arch='swinunetr'."
            )
        _check_compatible(_vit_signature(mapped, "vit."), _vit_signature(target, "vit."), src_name, "UNETR",
                          "UNETR always uses patch 16 and 12 blocks; pass the MAE's hidden_size, mlp_dim, "
                          "num_heads, qkv_bias and img_size.")
    scope = TARGET_SCOPES["swin_mae_swinunetr" if arch == "swinunetr" else "mae_vit_unetr"]
    report = load_mapped_state_dict(model, mapped, None, min_loaded_fraction=min_loaded_fraction, target_scope=scope)
    return model, report


# ---------------------------------------------------------------------------------------------- loss and metrics
def segmentation_loss(lambda_ce: float = 0.4, lambda_dice: float = 0.6, **kwargs: Any) -> nn.Module:
    """MONAI ``DiceCELoss(to_onehot_y=True, softmax=True)`` weighted 0.4 CE + 0.6 Dice (METHODS.md §4.4).

    Input ``(B, C, *spatial)`` logits and ``(B, 1, *spatial)`` integer labels. With MONAI's defaults the Dice
    term is the soft Dice loss averaged over all ``C`` classes and the batch (background included,
    ``Σp + Σq`` denominator). VIS-MAE's variant excludes background from the sum but divides by ``C`` and
    squares the denominator terms; ``include_background=False, squared_pred=True`` is the closest MONAI setting
    (it divides by ``C - 1``). ``kwargs`` go to ``DiceCELoss``.
    """
    from monai.losses import DiceCELoss

    kwargs.setdefault("to_onehot_y", True)
    kwargs.setdefault("softmax", True)
    return DiceCELoss(lambda_dice=lambda_dice, lambda_ce=lambda_ce, **kwargs)


def _to_onehot(x: torch.Tensor, num_classes: int, name: str) -> torch.Tensor:
    if x.shape[1] == 1:
        if x.is_floating_point() and not torch.equal(x, x.round()):
            raise ValueError(f"{name} with one channel must hold integer class indices, got non-integer values.")
        idx = x.long()
        if idx.numel() and (idx.min() < 0 or idx.max() >= num_classes):
            raise ValueError(f"{name} class indices must be in [0, {num_classes - 1}], got "
                             f"[{int(idx.min())}, {int(idx.max())}].")
        return torch.zeros(x.shape[0], num_classes, *x.shape[2:], device=x.device).scatter_(1, idx, 1.0)
    if x.shape[1] != num_classes:
        raise ValueError(f"{name} has {x.shape[1]} channels; expected 1 (indices) or num_classes={num_classes}.")
    return torch.nn.functional.one_hot(x.argmax(1), num_classes).movedim(-1, 1).float()


def mean_dice_per_class(
    pred: torch.Tensor,
    label: torch.Tensor,
    num_classes: int,
    include_background: bool = False,
    pooled: bool = False,
) -> torch.Tensor:
    """Hard Dice per class, averaged over the images of the batch that contain the class.

    Args:
        pred: ``(B, C, *spatial)`` logits/probabilities (argmax taken) or ``(B, 1, *spatial)`` class indices.
        label: ``(B, 1, *spatial)`` class indices or ``(B, C, *spatial)`` one-hot.
        num_classes: ``C`` including background.
        include_background: keep class 0.
        pooled: treat the whole batch as one image (e.g. a stack of 2D slices -> the volume Dice).

    Returns:
        ``(C - 1,)`` (or ``(C,)``) float tensor; NaN for a class absent from every ground truth.
    """
    from monai.metrics import compute_dice

    if pred.ndim < 3 or pred.shape[0] != label.shape[0] or pred.shape[2:] != label.shape[2:]:
        raise ValueError(f"pred {tuple(pred.shape)} and label {tuple(label.shape)} must be (B, C, *spatial) with "
                         "the same batch and spatial sizes.")
    p, y = _to_onehot(pred.detach(), num_classes, "pred"), _to_onehot(label.detach(), num_classes, "label")
    if pooled:
        p, y = p.movedim(0, -1).unsqueeze(0), y.movedim(0, -1).unsqueeze(0)
    dice = compute_dice(p, y, include_background=include_background, ignore_empty=True, num_classes=num_classes)
    return torch.nanmean(dice.float(), dim=0)


# ---------------------------------------------------------------------------------------------- engines
def build_segmentation_trainer(
    device: str | torch.device,
    max_epochs: int,
    train_data_loader: Any,
    network: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_function: Callable | None = None,
    train_handlers: Sequence | None = None,
    amp: bool = False,
    **kwargs: Any,
):
    """MONAI ``SupervisedTrainer`` on ``{"image": (B, C, *S), "label": (B, 1, *S)}`` batches.

    ``loss_function`` defaults to :func:`segmentation_loss`; the step loss is in ``engine.state.output["loss"]``.
    Validation, checkpoints, LR schedules and logging are attached as handlers (``train_handlers``), e.g.
    ``monai.handlers.ValidationHandler(interval, evaluator)`` with :func:`build_segmentation_evaluator`.
    ``kwargs`` go to ``SupervisedTrainer`` (``epoch_length``, ``inferer``, ``amp_kwargs``, ...).
    """
    from monai.engines import SupervisedTrainer

    return SupervisedTrainer(
        device=torch.device(device),
        max_epochs=max_epochs,
        train_data_loader=train_data_loader,
        network=network,
        optimizer=optimizer,
        loss_function=segmentation_loss() if loss_function is None else loss_function,
        train_handlers=train_handlers,
        amp=amp,
        **kwargs,
    )


def build_segmentation_evaluator(
    device: str | torch.device,
    val_data_loader: Any,
    network: nn.Module,
    num_classes: int,
    roi_size: Sequence[int] | int,
    sw_batch_size: int = 4,
    overlap: float = 0.25,
    val_handlers: Sequence | None = None,
    amp: bool = False,
    metric_name: str = "val_mean_dice",
    **kwargs: Any,
):
    """MONAI ``SupervisedEvaluator`` with sliding-window inference and foreground Dice.

    Post-processing: ``AsDiscreted`` argmax + one-hot on ``pred``, one-hot on ``label``. Metrics in
    ``engine.state.metrics``: ``metric_name`` = mean foreground Dice (scalar, key metric) and
    ``f"{metric_name}_per_class"`` = ``(num_classes - 1,)`` tensor of per-class Dice, each averaged over the
    images that contain the class (MONAI ``MeanDice``, ``ignore_empty``). ``kwargs`` go to
    ``SupervisedEvaluator``.
    """
    from monai.engines import SupervisedEvaluator
    from monai.handlers import MeanDice, from_engine
    from monai.inferers import SlidingWindowInferer
    from monai.transforms import AsDiscreted, Compose

    if num_classes < 2:
        raise ValueError(f"num_classes must count background and at least one class, got {num_classes}.")
    post = Compose([
        AsDiscreted(keys="pred", argmax=True, to_onehot=num_classes),
        AsDiscreted(keys="label", to_onehot=num_classes),
    ])
    out = from_engine(["pred", "label"])
    return SupervisedEvaluator(
        device=torch.device(device),
        val_data_loader=val_data_loader,
        network=network,
        inferer=SlidingWindowInferer(roi_size=roi_size, sw_batch_size=sw_batch_size, overlap=overlap),
        postprocessing=post,
        key_val_metric={metric_name: MeanDice(include_background=False, output_transform=out)},
        additional_metrics={
            f"{metric_name}_per_class": MeanDice(include_background=False, reduction="mean_batch",
                                                 output_transform=out)
        },
        val_handlers=val_handlers,
        amp=amp,
        **kwargs,
    )
