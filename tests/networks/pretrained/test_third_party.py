"""Third-party checkpoints (torchvision, timm, facebookresearch ConvNeXt, research-contributions SwinUNETR SSL)
through ``load_pretrained``: each kind loads a checkpoint rebuilt from the shipped fixture (the source's own key
layout + the fixture fill rule) and must give the third-party model's reference output, computed by that library
(``scripts/make_pretrained_fixtures.py``), to 1e-4."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNETR, SwinUNETR, ViT, resnet18, resnet34, resnet50

from monai_ssl.networks.nets import ConvNeXt, convnext_tiny
from monai_ssl.networks.pretrained import PRETRAINED_KINDS, load_pretrained
from tests.networks.pretrained_fixtures import fill_tensor, load_fixture, source_checkpoint

ATOL = 1e-4
RESNETS = {18: resnet18, 34: resnet34, 50: resnet50}


def _resnet(depth: int, in_channels: int = 3, num_classes: int = 1000, **kwargs):
    kwargs = {"conv1_t_size": 7, "conv1_t_stride": 2, **kwargs}
    return RESNETS[depth](spatial_dims=2, n_input_channels=in_channels, num_classes=num_classes, **kwargs).eval()


def _convnext(fixture: dict, in_channels: int = 3, num_classes: int = 1000):
    meta = fixture["meta"]
    return ConvNeXt(2, in_channels, num_classes, depths=meta["depths"], dims=meta["dims"]).eval()


def _vit(in_channels: int = 3, img_size: int = 64, **kwargs):
    kw = {"patch_size": 16, "hidden_size": 48, "mlp_dim": 192, "num_layers": 2, "num_heads": 3,
          "classification": True, "num_classes": 1000, "spatial_dims": 2, "qkv_bias": True, "post_activation": None}
    return ViT(in_channels=in_channels, img_size=img_size, **{**kw, **kwargs}).eval()


def _write(fixture: dict, tmp_path, suffix: str = ".pth", **extra) -> str:
    """The checkpoint as the third party ships it, written to a file (``.safetensors``: flat tensors only), with
    ``extra`` container entries (e.g. the optimizer state a training script saves next to ``state_dict``)."""
    obj = {**source_checkpoint(fixture), **extra}
    path = tmp_path / f"{fixture['meta'].get('library', 'src').split()[0].replace('/', '_')}{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in obj.items()}, str(path))
    else:
        torch.save(obj, path)
    return str(path)


CLASSIFIERS = [  # fixture, kind, target builder, file suffix
    ("torchvision_resnet18", "torchvision_resnet", lambda fx, c: _resnet(18, c), ".pth"),
    ("torchvision_resnet50", "torchvision_resnet", lambda fx, c: _resnet(50, c, bias_downsample=False), ".pth"),
    ("timm_resnet18", "timm_resnet", lambda fx, c: _resnet(18, c), ".safetensors"),
    ("timm_resnet50", "timm_resnet", lambda fx, c: _resnet(50, c), ".safetensors"),
    ("torchvision_convnext_mini", "torchvision_convnext", _convnext, ".pth"),
    ("timm_convnext_mini", "timm_convnext", _convnext, ".safetensors"),
    ("timm_convnext_atto", "timm_convnext", _convnext, ".pth"),
    ("convnext_official_mini", "convnext_official", _convnext, ".pth"),
    ("timm_vit_mini", "timm_vit", lambda fx, c: _vit(c), ".safetensors"),
]


def _logits(model, x):
    with torch.no_grad():
        out = model(x)
    return out[0] if isinstance(out, tuple) else out  # MONAI ViT returns (logits, hidden states)


@pytest.mark.parametrize("name,kind,build,suffix", CLASSIFIERS, ids=[c[0] for c in CLASSIFIERS])
def test_loaded_model_gives_the_source_logits(name, kind, build, suffix, tmp_path):
    fixture = load_fixture(name)
    model = build(fixture, 3)
    report = load_pretrained(model, _write(fixture, tmp_path, suffix), kind, verbose=False)
    torch.testing.assert_close(_logits(model, fixture["input"]), fixture["output"], atol=ATOL, rtol=0)
    assert report.skipped == [] and report.loaded_fraction == 1.0 and report.scope_fraction == 1.0


GRAY = [c for c in CLASSIFIERS if "resnet50" not in c[0]]  # the ResNet-50 fixtures hold no grey input


@pytest.mark.parametrize("name,kind,build,suffix", GRAY, ids=[c[0] for c in GRAY])
def test_one_channel_target_sums_the_rgb_stem(name, kind, build, suffix):
    fixture = load_fixture(name)
    model = build(fixture, 1)
    load_pretrained(model, source_checkpoint(fixture), kind, verbose=False)
    # the 1-channel network on x == the RGB source on [x, x, x]
    torch.testing.assert_close(_logits(model, fixture["input_gray"]), fixture["output_gray"], atol=ATOL, rtol=0)


def test_classifier_of_another_size_is_listed_as_skipped_and_left_fresh():
    fixture = load_fixture("torchvision_resnet18")
    model = _resnet(18, num_classes=2)
    fresh = model.fc.weight.detach().clone()
    report = load_pretrained(model, source_checkpoint(fixture), "torchvision_resnet", verbose=False)
    assert report.skipped == ["fc.bias", "fc.weight"]
    assert "skipped by key map (2): fc.bias, fc.weight" in report.summary()
    assert torch.equal(model.fc.weight, fresh)
    ref = _resnet(18)
    load_pretrained(ref, source_checkpoint(fixture), "torchvision_resnet", verbose=False)
    model.fc, ref.fc = torch.nn.Identity(), torch.nn.Identity()  # the encoders agree
    torch.testing.assert_close(_logits(model, fixture["input"]), _logits(ref, fixture["input"]))


def test_timm_vit_position_table_resampled_to_the_target_grid():
    fixture = load_fixture("timm_vit_mini")  # 4 x 4 patches at 64 px; timm resampled to 6 x 6 for the reference
    model = _vit(img_size=96)
    load_pretrained(model, source_checkpoint(fixture), "timm_vit", verbose=False)
    assert model.patch_embedding.position_embeddings.shape == (1, 36, 48)
    torch.testing.assert_close(_logits(model, fixture["input_96"]), fixture["output_96"], atol=ATOL, rtol=0)


def test_timm_vit_into_unetr_encoder_gives_the_source_tokens():
    fixture = load_fixture("timm_vit_nocls_mini")  # no class token, 12 blocks of patch 16: UNETR's encoder
    model = UNETR(in_channels=3, out_channels=2, img_size=64, feature_size=16, hidden_size=48, mlp_dim=192,
                  num_heads=3, spatial_dims=2, qkv_bias=True).eval()
    report = load_pretrained(model, source_checkpoint(fixture), "timm_vit", verbose=False)
    with torch.no_grad():
        tokens = model.vit(fixture["input"])[0]
    torch.testing.assert_close(tokens, fixture["output"], atol=ATOL, rtol=0)
    assert report.scope and report.scope_fraction == 1.0 and all(k.startswith("vit.") for k in report.loaded)


def test_timm_vit_class_token_is_listed_when_the_target_has_none():
    model = _vit(classification=False)
    report = load_pretrained(model, source_checkpoint(load_fixture("timm_vit_mini")), "timm_vit", verbose=False)
    assert report.skipped == ["cls_token", "head.bias", "head.weight", "pos_embed (class-token row)"]


@pytest.mark.parametrize("name", ["monai_swinvit_ssl_mini", "monai_swinvit_released_mini"])
def test_swinvit_ssl_checkpoint_gives_the_source_features_and_lists_the_pretext_heads(name, tmp_path):
    fixture = load_fixture(name)
    model = SwinUNETR(in_channels=1, out_channels=2, feature_size=12, window_size=4, spatial_dims=3).eval()
    # the training script saves {"global_step", "state_dict", "optimizer"} (or "epoch" instead of "global_step")
    optimizer = {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 4e-4, "params": [0]}]}
    path = _write(fixture, tmp_path, ".pt", global_step=100, optimizer=optimizer)
    report = load_pretrained(model, path, "monai_swinvit", verbose=False)
    with torch.no_grad():
        feats = model.swinViT(fixture["input"])
    for i in range(1, 5):
        torch.testing.assert_close(feats[i], fixture[f"output_{i}"], atol=ATOL, rtol=0)
    assert report.scope_fraction == 1.0
    if name == "monai_swinvit_ssl_mini":  # rotation / contrastive / reconstruction heads: reported, not errors
        heads = {k.split(".")[0] for k in report.skipped}
        assert heads == {"rotation_head", "contrastive_head", "conv"}
        assert "skipped by key map (16)" in report.summary()
    else:
        assert report.skipped == []


def _zeros(name: str) -> dict:
    """The fixture's layout with zero tensors (enough where only names and shapes count)."""
    return {k: torch.zeros(shape, dtype=getattr(torch, dtype)) for k, shape, dtype in load_fixture(name)["layout"]}


STANDARD_LAYOUTS = [  # the standard-size key/shape lists map completely onto the standard-size targets
    ("torchvision_convnext_tiny_layout", "torchvision_convnext", lambda: convnext_tiny(2, 3, 1000)),
    ("timm_convnext_tiny_layout", "timm_convnext", lambda: convnext_tiny(2, 3, 1000)),
    ("convnext_official_tiny_layout", "convnext_official", lambda: convnext_tiny(2, 3, 1000)),
    ("timm_vit_tiny_layout", "timm_vit", lambda: ViT(3, 224, 16, hidden_size=192, mlp_dim=768, num_layers=12,
                                                     num_heads=3, classification=True, num_classes=1000,
                                                     spatial_dims=2, qkv_bias=True, post_activation=None)),
    ("monai_swinvit_released_layout", "monai_swinvit",
     lambda: SwinUNETR(in_channels=1, out_channels=14, feature_size=48, spatial_dims=3)),
]


@pytest.mark.parametrize("name,kind,build", STANDARD_LAYOUTS, ids=[s[0] for s in STANDARD_LAYOUTS])
def test_standard_size_layout_maps_every_tensor(name, kind, build):
    report = load_pretrained(build(), _zeros(name), kind, verbose=False)
    assert report.loaded_fraction == 1.0 and report.scope_fraction == 1.0 and report.skipped == []
    assert not report.mismatched and not report.unexpected


def test_resnet50_layout_into_resnet18_raises_listing_the_unmatched_tensors():
    model = _resnet(18)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"shapes that do not match ResNet.*layer1\.0\.conv1\.weight"):
        load_pretrained(model, _zeros("torchvision_resnet50"), "torchvision_resnet")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # untouched


def test_resnet18_into_resnet34_raises_listing_the_blocks_left_random():
    with pytest.raises(ValueError, match=r"Left random: layer1\.2\.\*"):
        load_pretrained(_resnet(34), source_checkpoint(load_fixture("timm_resnet18")), "timm_resnet")


def test_convnext_of_other_widths_raises_listing_the_mismatched_tensors():
    model = ConvNeXt(2, 3, 1000, depths=(2, 2, 2, 2), dims=(16, 32, 64, 128))
    with pytest.raises(ValueError, match=r"downsample_layers\.0\.0\.weight.*\(40, 3, 4, 4\)"):
        load_pretrained(model, source_checkpoint(load_fixture("timm_convnext_atto")), "timm_convnext")


def test_target_built_differently_is_named_with_the_fix():
    fixture = load_fixture("torchvision_resnet18")
    with pytest.raises(ValueError, match="conv1_t_stride=2"):
        load_pretrained(resnet18(spatial_dims=2, n_input_channels=3, num_classes=1000), source_checkpoint(fixture),
                        "torchvision_resnet")
    with pytest.raises(ValueError, match=r"qkv_bias \(checkpoint True, model False\)"):
        load_pretrained(_vit(qkv_bias=False), source_checkpoint(load_fixture("timm_vit_mini")), "timm_vit")
    with pytest.raises(ValueError, match=r"feature_size \(checkpoint 12, model 24\)"):
        load_pretrained(SwinUNETR(in_channels=1, out_channels=2, feature_size=24, window_size=4, spatial_dims=3),
                        source_checkpoint(load_fixture("monai_swinvit_ssl_mini")), "monai_swinvit")


def test_wrong_kind_and_unknown_tensors_raise_naming_them():
    tv = source_checkpoint(load_fixture("torchvision_convnext_mini"))
    with pytest.raises(ValueError, match="not a timm_convnext layout"):
        load_pretrained(_convnext(load_fixture("timm_convnext_mini")), tv, "timm_convnext")
    official = source_checkpoint(load_fixture("convnext_official_mini"))
    official["model"]["stages.0.0.grn.gamma"] = torch.zeros(1, 1, 1, 16)  # a ConvNeXt V2 tensor
    with pytest.raises(ValueError, match=r"no place in monai_ssl's ConvNeXt.*stages\.0\.0\.grn\.gamma"):
        load_pretrained(_convnext(load_fixture("convnext_official_mini")), official, "convnext_official")
    deep_stem = {"conv1.0.weight": torch.zeros(32, 3, 3, 3), "layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3)}
    with pytest.raises(ValueError, match="deep-stem"):
        load_pretrained(_resnet(18), deep_stem, "timm_resnet")
    with pytest.raises(ValueError, match="not a SwinUNETR self-supervised pretraining checkpoint"):
        load_pretrained(SwinUNETR(in_channels=1, out_channels=2, feature_size=12, spatial_dims=3), tv, "monai_swinvit")


def test_every_third_party_kind_is_registered_and_the_fill_rule_is_per_key():
    for kind in ("torchvision_resnet", "timm_resnet", "torchvision_convnext", "timm_convnext", "convnext_official",
                 "timm_vit", "monai_swinvit"):
        assert kind in PRETRAINED_KINDS and PRETRAINED_KINDS[kind].description
    a = fill_tensor("layer1.0.conv1.weight", (8, 4, 3, 3))
    assert torch.equal(a, fill_tensor("layer1.0.conv1.weight", (8, 4, 3, 3)))
    assert not torch.equal(a, fill_tensor("layer1.0.conv2.weight", (8, 4, 3, 3)))
    assert abs(a.std().item() - (1 / 36) ** 0.5) < 0.05  # N(0, 1 / fan_in)


def test_timm_vit_fc_norm_stands_in_for_the_token_norm():
    state = source_checkpoint(load_fixture("timm_vit_mini"))
    state = {k.replace("norm.", "fc_norm.") if k.startswith("norm.") else k: v for k, v in state.items()}
    model = _vit()
    report = load_pretrained(model, state, "timm_vit", verbose=False)
    assert "norm.weight" in report.loaded and torch.equal(model.norm.weight, state["fc_norm.weight"])
