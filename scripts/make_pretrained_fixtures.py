"""Generate the third-party checkpoint fixtures of ``tests/networks/fixtures/pretrained/`` (a dev tool, run once).

Each fixture is a key layout read from the third-party model itself, its integer buffers, a seeded input and the
third-party model's output on it, with the weights of the one fill rule
:func:`tests.networks.pretrained_fixtures.fill_state_dict` (see that module). The tests rebuild the checkpoint
from the layout with the same rule, load it through ``load_pretrained`` and compare outputs.

Sources (none of them is a runtime dependency of monai-ssl):

* torchvision 0.28 (pairs with torch 2.13) and timm 1.0, installed into a throwaway directory::

      python -m pip download --no-deps "torchvision==0.28.*" "timm==1.0.*" -d /tmp/tpw/wheels
      python -m pip install --no-deps --target /tmp/tpw/site /tmp/tpw/wheels/*.whl
      PYTHONPATH=/tmp/tpw/site python scripts/make_pretrained_fixtures.py   # from the repository root

  The CUDA torchvision wheel imports on the CPU torch build once its C-op registrations are skipped: its
  ``torchvision._meta_registrations`` and ``torchvision._autograd_registrations`` modules register fake /
  autograd kernels for ``torchvision::nms``, ``roi_align``, ... , operators that only exist when ``_C.so`` loads.
  :func:`import_torchvision` puts empty modules under those two names into ``sys.modules`` before the import, so
  the registrations never run. Model definitions (ResNet, ConvNeXt) use none of those operators.
* the facebookresearch ConvNeXt release: its key names (``downsample_layers.{i}.{0,1}``,
  ``stages.{i}.{j}.{dwconv,norm,pwconv1,pwconv2,gamma}``, ``norm``, ``head``; the state dict under ``"model"``)
  are written from timm's ConvNeXt module by :func:`official_convnext_keys`, and the reference output comes from
  timm's own converter of those files (``timm.models.convnext.checkpoint_filter_fn``) into timm's ConvNeXt, which
  also proves that timm accepts exactly this layout (``load_state_dict(strict=True)``).
* the research-contributions SwinUNETR self-supervised pretraining (Tang et al. 2022): the ``SSLHead`` model
  of ``SwinUNETR/Pretrain`` is MONAI's ``SwinTransformer`` (``swin_vit``) + ``rotation_head`` (Linear to 4) +
  ``contrastive_head`` (Linear to 512) + a convolutional reconstruction decoder ``conv``; its training script
  saves ``{"state_dict": model.state_dict(), ...}`` of the DDP-wrapped model (``module.`` prefix). The released
  ``model_swinvit.pt`` uses the names MONAI's ``SwinUNETR.load_from`` reads (``module.patch_embed.*``,
  ``module.layers{1..4}.0.blocks.{b}.{..., mlp.fc1, mlp.fc2}``, ``module.layers{n}.0.downsample.*``); its
  reference output comes from ``SwinUNETR.load_from`` itself.

Small configurations replace the standard sizes where running them would slow the test suite; a family's key
layout is the same at every size, and the standard-size layouts are shipped as key/shape lists
(``*_layout`` fixtures).
"""

from __future__ import annotations

import re
import sys
import types
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.networks.pretrained_fixtures import FIXTURE_DIR, fill_state_dict, layout_of

SEED = 0


def import_torchvision():
    """Import torchvision without its C-op registrations (see the module docstring)."""
    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))
    import torchvision

    return torchvision


def seeded_input(shape, seed: int) -> torch.Tensor:
    """N(0, 1) input rounded to float16 values (stored as float16, exact in float32): half the fixture size."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)).half().float()


def fill_model(model: nn.Module, state: dict | None = None) -> OrderedDict:
    """Fill ``model`` with the fixture rule (applied to ``state``'s keys, default: the model's own) and return
    the filled state dict."""
    rows, ints = layout_of(state if state is not None else model.state_dict())
    filled = fill_state_dict(rows, ints, SEED)
    if state is None:
        model.load_state_dict(filled, strict=True)
    return filled


def save(name: str, meta: dict, state: dict, **tensors) -> None:
    rows, ints = layout_of(state)
    if meta.get("layout_only"):  # shapes are what counts; large index tables are left out
        ints = {k: v for k, v in ints.items() if v.numel() == 1}
    # integer buffers are index tables: int16 is enough and keeps the files small; fill_state_dict casts back
    ints = {k: v.to(torch.int16) if v.numel() > 1 else v for k, v in ints.items()}
    obj = {"meta": meta, "layout": rows, "int_tensors": ints, "seed": SEED}
    # inputs are float16-exact (seeded_input): stored as float16, the tests cast them back to float32
    for k, v in tensors.items():
        obj[k] = (v.half() if k.startswith("input") else v).detach().clone().contiguous()
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    path = FIXTURE_DIR / f"{name}.pt"
    torch.save(obj, path)
    print(f"{path.relative_to(ROOT)}: {len(rows)} tensors, {path.stat().st_size / 1024:.1f} KiB")


@torch.no_grad()
def classifier_fixture(name: str, model: nn.Module, meta: dict, size: int, gray: bool = True) -> None:
    """Fill, run on a seeded (2, 3, size, size) input (and a 1-channel one repeated to RGB), save."""
    model.eval()
    state = fill_model(model)
    x = seeded_input((2, 3, size, size), 1)
    extra = {}
    if gray:
        xg = seeded_input((2, 1, size, size), 2)
        extra = {"input_gray": xg, "output_gray": model(xg.repeat(1, 3, 1, 1))}
    save(name, meta, state, input=x, output=model(x), **extra)


def layout_fixture(name: str, model: nn.Module, meta: dict, keys: dict | None = None) -> None:
    state = model.state_dict() if keys is None else keys
    save(name, {**meta, "layout_only": True}, {k: v for k, v in state.items()})


def official_convnext_keys(timm_state: dict) -> OrderedDict:
    """The facebookresearch ConvNeXt names of a timm ConvNeXt (``conv_mlp=False``) state dict (same tensors)."""
    out = OrderedDict()
    for k, v in timm_state.items():
        k = k.replace("stem.", "downsample_layers.0.")
        k = re.sub(r"^stages\.(\d+)\.downsample\.", r"downsample_layers.\1.", k)
        k = re.sub(r"^stages\.(\d+)\.blocks\.", r"stages.\1.", k)
        k = k.replace("conv_dw", "dwconv").replace("mlp.fc", "pwconv")
        k = k.replace("head.norm.", "norm.").replace("head.fc.", "head.")
        out[k] = v
    return out


def main() -> None:
    tv = import_torchvision()
    import timm
    from monai.networks.nets import SwinUNETR
    from monai.networks.nets.swin_unetr import SwinTransformer
    from timm.models.convnext import checkpoint_filter_fn as timm_convnext_filter
    from timm.models.vision_transformer import VisionTransformer
    from timm.models.vision_transformer import checkpoint_filter_fn as timm_vit_filter

    tv_meta = {"library": "torchvision", "version": tv.__version__, "container": None, "prefix": ""}
    timm_meta = {"library": "timm", "version": timm.__version__, "container": None, "prefix": ""}
    torch.manual_seed(SEED)

    # --- ResNet: torchvision and timm, standard sizes (cheap at 64 x 64) ---
    for depth in (18, 50):
        classifier_fixture(f"torchvision_resnet{depth}", getattr(tv.models, f"resnet{depth}")(),
                           {**tv_meta, "builder": f"torchvision.models.resnet{depth}()"}, 64, gray=depth == 18)
        classifier_fixture(f"timm_resnet{depth}", timm.create_model(f"resnet{depth}"),
                           {**timm_meta, "builder": f"timm.create_model('resnet{depth}')"}, 64, gray=depth == 18)

    # --- ConvNeXt: torchvision (small config + Tiny layout) ---
    from torchvision.models.convnext import CNBlockConfig
    from torchvision.models.convnext import ConvNeXt as TVConvNeXt

    cfg = [CNBlockConfig(16, 32, 2), CNBlockConfig(32, 64, 2), CNBlockConfig(64, 128, 2), CNBlockConfig(128, None, 2)]
    classifier_fixture("torchvision_convnext_mini", TVConvNeXt(cfg, num_classes=1000),
                       {**tv_meta, "builder": "torchvision.models.convnext.ConvNeXt([CNBlockConfig(16, 32, 2), "
                        "CNBlockConfig(32, 64, 2), CNBlockConfig(64, 128, 2), CNBlockConfig(128, None, 2)])",
                        "depths": [2, 2, 2, 2], "dims": [16, 32, 64, 128]}, 64)
    layout_fixture("torchvision_convnext_tiny_layout", tv.models.convnext_tiny(),
                   {**tv_meta, "builder": "torchvision.models.convnext_tiny()", "depths": [3, 3, 9, 3],
                    "dims": [96, 192, 384, 768]})

    # --- ConvNeXt: timm (atto: conv_mlp=True; a small conv_mlp=False config; Tiny layout) ---
    classifier_fixture("timm_convnext_atto", timm.create_model("convnext_atto"),
                       {**timm_meta, "builder": "timm.create_model('convnext_atto')", "depths": [2, 2, 6, 2],
                        "dims": [40, 80, 160, 320]}, 64)
    mini = {"depths": (2, 2, 2, 2), "dims": (16, 32, 64, 128)}
    classifier_fixture("timm_convnext_mini", timm.create_model("convnext_tiny", **mini),
                       {**timm_meta, "builder": "timm.create_model('convnext_tiny', depths=(2, 2, 2, 2), "
                        "dims=(16, 32, 64, 128))", "depths": [2, 2, 2, 2], "dims": [16, 32, 64, 128]}, 64)
    timm_tiny = timm.create_model("convnext_tiny")
    layout_fixture("timm_convnext_tiny_layout", timm_tiny,
                   {**timm_meta, "builder": "timm.create_model('convnext_tiny')", "depths": [3, 3, 9, 3],
                    "dims": [96, 192, 384, 768]})

    # --- ConvNeXt: the facebookresearch release layout, reference through timm's own converter ---
    ref = timm.create_model("convnext_tiny", **mini).eval()
    official = official_convnext_keys(ref.state_dict())
    filled = fill_state_dict(*layout_of(official), seed=SEED)
    ref.load_state_dict(timm_convnext_filter({"model": filled}, ref), strict=True)
    x, xg = seeded_input((2, 3, 64, 64), 1), seeded_input((2, 1, 64, 64), 2)
    with torch.no_grad():
        save("convnext_official_mini",
             {"library": "facebookresearch/ConvNeXt (layout) + timm " + timm.__version__ + " (reference)",
              "container": "model", "prefix": "", "depths": [2, 2, 2, 2], "dims": [16, 32, 64, 128],
              "builder": "official names of timm.create_model('convnext_tiny', depths=(2, 2, 2, 2), "
                         "dims=(16, 32, 64, 128)); reference via timm.models.convnext.checkpoint_filter_fn"},
             official, input=x, output=ref(x), input_gray=xg, output_gray=ref(xg.repeat(1, 3, 1, 1)))
    tiny_official = official_convnext_keys(timm_tiny.state_dict())
    timm_tiny.load_state_dict(timm_convnext_filter({"model": tiny_official}, timm_tiny), strict=True)
    layout_fixture("convnext_official_tiny_layout", timm_tiny,
                   {"library": "facebookresearch/ConvNeXt (layout, checked by timm's converter)", "container": "model",
                    "prefix": "", "depths": [3, 3, 9, 3], "dims": [96, 192, 384, 768],
                    "url": "https://dl.fbaipublicfiles.com/convnext/convnext_tiny_1k_224_ema.pth"}, keys=tiny_official)

    # --- ViT: timm, a small config with a class token (+ the position table resampled by timm's own filter) ---
    vit_kw = {"patch_size": 16, "embed_dim": 48, "depth": 2, "num_heads": 3, "num_classes": 1000}
    vit = VisionTransformer(img_size=64, **vit_kw).eval()
    state = fill_model(vit)
    vit96 = VisionTransformer(img_size=96, **vit_kw).eval()
    vit96.load_state_dict(timm_vit_filter(dict(state), vit96), strict=True)
    x, xg, x96 = seeded_input((2, 3, 64, 64), 1), seeded_input((2, 1, 64, 64), 2), seeded_input((1, 3, 96, 96), 3)
    with torch.no_grad():
        save("timm_vit_mini", {**timm_meta, "builder": "VisionTransformer(img_size=64, patch_size=16, embed_dim=48, "
                               "depth=2, num_heads=3); input_96/output_96: the same weights through timm's "
                               "checkpoint_filter_fn into img_size=96", "img_size": 64, "patch_size": 16,
                               "hidden_size": 48, "num_layers": 2, "num_heads": 3},
             state, input=x, output=vit(x), input_gray=xg, output_gray=vit(xg.repeat(1, 3, 1, 1)),
             input_96=x96, output_96=vit96(x96))
    # no class token, average pooling (the UNETR encoder has no class token and 12 blocks of patch 16)
    vit_avg = VisionTransformer(img_size=64, patch_size=16, embed_dim=48, depth=12, num_heads=3, class_token=False,
                                global_pool="avg", fc_norm=False, num_classes=0).eval()
    state = fill_model(vit_avg)
    with torch.no_grad():
        save("timm_vit_nocls_mini", {**timm_meta, "builder": "VisionTransformer(img_size=64, patch_size=16, "
                                     "embed_dim=48, depth=12, num_heads=3, class_token=False, global_pool='avg', "
                                     "fc_norm=False); "
                                     "output = forward_features (tokens after the final norm)", "img_size": 64,
                                     "patch_size": 16, "hidden_size": 48, "num_layers": 12, "num_heads": 3},
             state, input=x, output=vit_avg.forward_features(x))
    layout_fixture("timm_vit_tiny_layout", timm.create_model("vit_tiny_patch16_224"),
                   {**timm_meta, "builder": "timm.create_model('vit_tiny_patch16_224')", "img_size": 224,
                    "patch_size": 16, "hidden_size": 192, "num_layers": 12, "num_heads": 3})

    # --- SwinUNETR self-supervised pretraining (research-contributions), small feature size and window ---
    import monai

    swin_kw = {"in_chans": 1, "embed_dim": 12, "window_size": (4, 4, 4), "patch_size": (2, 2, 2),
               "depths": (2, 2, 2, 2), "num_heads": (3, 6, 12, 24), "mlp_ratio": 4.0, "qkv_bias": True,
               "spatial_dims": 3}
    ssl = nn.Module()  # the SSLHead layout (attribute names of SwinUNETR/Pretrain/models/ssl_head.py)
    ssl.swin_vit = SwinTransformer(**swin_kw)
    dim = 16 * swin_kw["embed_dim"]
    ssl.rotation_pre, ssl.rotation_head = nn.Identity(), nn.Linear(dim, 4)
    ssl.contrastive_pre, ssl.contrastive_head = nn.Identity(), nn.Linear(dim, 512)
    chans = [dim, dim // 2, dim // 4, dim // 8, dim // 16, dim // 16]
    dec = []
    for i in range(5):
        dec += [nn.Conv3d(chans[i], chans[i + 1], 3, padding=1), nn.InstanceNorm3d(chans[i + 1]), nn.LeakyReLU(),
                nn.Upsample(scale_factor=2, mode="trilinear")]
    ssl.conv = nn.Sequential(*dec, nn.Conv3d(chans[-1], 1, 1))
    ssl.eval()
    state = fill_model(ssl)
    x = seeded_input((1, 1, 32, 32, 32), 4)
    with torch.no_grad():
        outs = ssl.swin_vit(x)
    swin_meta = {"library": f"MONAI {monai.__version__} SwinTransformer", "container": "state_dict",
                 "prefix": "module.", "feature_size": 12, "window_size": 4, "in_channels": 1}
    save("monai_swinvit_ssl_mini", {**swin_meta, "builder": "SSLHead layout: swin_vit = SwinTransformer(in_chans=1, "
                                    "embed_dim=12, window_size=4, patch_size=2, depths=(2, 2, 2, 2)) + rotation_head "
                                    "+ contrastive_head + conv decoder; output_{1..4} = swin_vit(input)[1..4]"},
         state, input=x, **{f"output_{i}": outs[i] for i in range(1, 5)})
    # the released model_swinvit.pt names: no swin_vit prefix, mlp.fc1/fc2; reference from SwinUNETR.load_from
    released = OrderedDict()
    for k, v in state.items():
        if k.startswith("swin_vit."):
            released[k[len("swin_vit."):].replace("mlp.linear1", "mlp.fc1").replace("mlp.linear2", "mlp.fc2")] = v
    released = fill_state_dict(*layout_of(released), seed=SEED)  # the fill rule is seeded by these names
    net = SwinUNETR(in_channels=1, out_channels=2, feature_size=12, window_size=4, spatial_dims=3).eval()
    net.load_from({"state_dict": {"module." + k: v for k, v in released.items()}})
    with torch.no_grad():
        outs = net.swinViT(x)
    save("monai_swinvit_released_mini", {**swin_meta, "builder": "model_swinvit.pt names of the SwinTransformer "
                                         "above; output_{1..4} = SwinUNETR.load_from(...).swinViT(input)[1..4]"},
         released, input=x, **{f"output_{i}": outs[i] for i in range(1, 5)})
    full = SwinUNETR(in_channels=1, out_channels=14, feature_size=48, spatial_dims=3).swinViT.state_dict()
    full = OrderedDict((k.replace("mlp.linear1", "mlp.fc1").replace("mlp.linear2", "mlp.fc2"), v)
                       for k, v in full.items())
    save("monai_swinvit_released_layout",
         {**swin_meta, "feature_size": 48, "window_size": 7, "layout_only": True,
          "builder": "model_swinvit.pt names of SwinUNETR(feature_size=48).swinViT (index buffers not stored)"},
         full)


if __name__ == "__main__":
    main()
