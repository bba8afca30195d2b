"""load_pretrained dispatcher and the contrastive ResNet -> MONAI ResNet map.

The MAE-ViT -> ViT (2D) / UNETR (3D), Swin-MAE -> SwinUNETR and ConvNeXtMAE -> ConvNeXt feature-equality tests
of the mapping functions themselves live in test_mae.py, test_swin_mae.py and test_convnext_mae.py; here each kind
goes through ``load_pretrained`` (paths, containers, reports, failures).
"""

from __future__ import annotations

import pytest
import torch
from ignite.engine import Engine
from monai.networks.nets import UNETR, ResNet, SwinUNETR, ViT

from monai_ssl.handlers.checkpoint import RNGState, SSLCheckpointHandler
from monai_ssl.networks.nets import ContrastiveModel, ConvNeXt, ConvNeXtMAE, MaskedAutoencoderViT, SwinMAE
from monai_ssl.networks.pretrained import PRETRAINED_KINDS, contrastive_to_resnet, load_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")


def _perturb(module: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> None:
    """Move parameters and BN running statistics off their init so equality checks mean something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
        for name, buf in module.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(scale * torch.randn(buf.shape, generator=g))
            elif name.endswith("running_var"):
                buf.copy_(0.5 + torch.rand(buf.shape, generator=g))


def resnet(in_channels: int = 1, num_classes: int | None = None) -> ResNet:
    """A tiny MONAI ResNet (basic blocks, one per stage): a classifier, or a feature extractor without ``fc``."""
    kw = dict(num_classes=num_classes) if num_classes else dict(feed_forward=False)
    return ResNet("basic", (1, 1, 1, 1), (8, 16, 32, 64), spatial_dims=2, n_input_channels=in_channels, **kw)


def _contrastive() -> ContrastiveModel:
    torch.manual_seed(0)
    model = ContrastiveModel(resnet(), head_in_features=64)
    _perturb(model)
    return model.eval()


def test_contrastive_to_resnet_equal_features_and_fresh_fc():
    src = _contrastive()
    features = resnet().eval()
    report = load_pretrained(features, src.state_dict(), "contrastive_resnet", min_loaded_fraction=1.0)
    assert report.loaded_fraction == 1.0 and not report.missing and not report.unexpected
    assert not any(k.startswith("head.") for k in report.loaded)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(features(x), src.forward_features(x))

    torch.manual_seed(1)
    clf = resnet(num_classes=3).eval()
    fc_before = {k: v.clone() for k, v in clf.fc.state_dict().items()}
    report = load_pretrained(clf, src.state_dict(), "contrastive_resnet")
    assert sorted(report.missing) == ["fc.bias", "fc.weight"] and report.loaded_fraction == 1.0
    for k, v in clf.fc.state_dict().items():
        assert torch.equal(v, fc_before[k])  # the classifier stays freshly initialised
    with torch.no_grad():
        torch.testing.assert_close(clf(x), clf.fc(src.forward_features(x)))


def test_bare_encoder_state_dict_and_mapping_function():
    src = _contrastive()
    bare = src.encoder.state_dict()  # e.g. a curriculum stage's encoder file
    mapped = contrastive_to_resnet(src.state_dict())
    assert mapped.keys() == bare.keys()
    assert contrastive_to_resnet({**bare, "fc.weight": torch.zeros(1)}).keys() == bare.keys()
    with pytest.raises(ValueError, match="no ResNet encoder keys"):
        contrastive_to_resnet({"head.0.weight": torch.zeros(1)})


def test_checkpoint_saved_by_ssl_checkpoint_handler(tmp_path):
    src = _contrastive()
    opt = torch.optim.SGD(src.parameters(), lr=0.1)
    engine = Engine(lambda e, b: None)
    handler = SSLCheckpointHandler(tmp_path, {"trainer": engine, "network": src, "optimizer": opt,
                                              "rng": RNGState()}, resume=False)
    handler.attach(engine)
    engine.run([0, 1], max_epochs=1)
    path = handler.last_checkpoint
    assert path is not None and path.is_file()
    clf = resnet(num_classes=2).eval()
    report = load_pretrained(clf, path, "contrastive_resnet")
    assert report.loaded_fraction == 1.0
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clf.fc(src.forward_features(x)), clf(x))
    # the same container in memory, and with an explicit entry name
    container = torch.load(path, weights_only=True)
    assert load_pretrained(clf, container, "contrastive_resnet").loaded_fraction == 1.0
    assert load_pretrained(clf, container, checkpoint_key="network").loaded_fraction == 1.0
    with pytest.raises(ValueError, match="no entry 'model'"):
        load_pretrained(clf, container, checkpoint_key="model")


def test_mae_vit_kinds_2d():
    torch.manual_seed(0)
    cfg = dict(hidden_size=32, mlp_dim=48, num_heads=4)  # UNETR's ViT has 12 layers
    mae = MaskedAutoencoderViT(1, (32, 48), 16, spatial_dims=2, num_layers=12, decoder_hidden_size=16,
                               decoder_num_layers=1, decoder_num_heads=2, **cfg).eval()
    unetr = UNETR(1, 2, (32, 48), feature_size=4, spatial_dims=2, **cfg).eval()
    report = load_pretrained(unetr, mae.state_dict(), "mae_vit_unetr", min_loaded_fraction=1.0)
    assert all(k.startswith("vit.") for k in report.loaded)
    x = torch.rand(2, 1, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(unetr.vit(x)[0], mae.forward_features(x), atol=1e-5, rtol=1e-4)
    # a ViT classifier: encoder loaded, class token and head stay new
    vit = ViT(1, (32, 48), 16, num_layers=12, classification=True, num_classes=3, spatial_dims=2, **cfg)
    report = load_pretrained(vit, mae.state_dict(), "mae_vit", min_loaded_fraction=1.0)
    assert {"cls_token", "classification_head.0.weight"} <= set(report.missing)
    torch.testing.assert_close(vit.blocks[1].mlp.linear1.weight, mae.blocks[1].mlp.linear1.weight)


def test_swin_mae_and_convnext_mae_kinds_from_files(tmp_path):
    torch.manual_seed(0)
    swin = SwinMAE(2, 1, feature_size=12, window_size=4, depths=(1, 1, 1, 1), num_heads=(1, 1, 2, 2),
                   decoder_depths=(1, 1, 1, 1), drop_path_rate=0.0)
    _perturb(swin, 0.02)
    torch.save({"network": swin.state_dict()}, tmp_path / "swin.pt")
    seg = SwinUNETR(in_channels=1, out_channels=2, feature_size=12, window_size=4, depths=(1, 1, 1, 1),
                    num_heads=(1, 1, 2, 2), spatial_dims=2)
    report = load_pretrained(seg, tmp_path / "swin.pt", "swin_mae_swinunetr", min_loaded_fraction=1.0)
    assert all(k.startswith("swinViT.") for k in report.loaded)
    x = torch.rand(1, 1, 64, 64)
    swin.eval(), seg.eval()
    with torch.no_grad():
        torch.testing.assert_close(seg.swinViT(x, seg.normalize)[-1], swin.forward_encoder(x, None)[-1])

    mae = ConvNeXtMAE(2, 1, depths=(1, 1), dims=(8, 16), decoder_dim=16)
    _perturb(mae.encoder, 0.05)
    torch.save(mae.state_dict(), tmp_path / "convnext.pt")
    clf = ConvNeXt(2, 1, num_classes=2, depths=(1, 1), dims=(8, 16))
    report = load_pretrained(clf, str(tmp_path / "convnext.pt"), "convnext_mae")
    assert report.loaded_fraction == 1.0 and all(k.startswith("head.") for k in report.missing)
    mae.eval(), clf.eval()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(clf.forward_features(x), mae.encoder.forward_features(x))
    # the mae_pretrain bundle's export (ConvNeXt names) or a ConvNeXt classifier: same weights, classifier fresh
    export = {k[len("encoder."):]: v for k, v in mae.state_dict().items() if k.startswith("encoder.")}
    for source in (export, {**export, "head.fc.weight": torch.ones(5, 16), "head.fc.bias": torch.ones(5)}):
        other = ConvNeXt(2, 1, num_classes=2, depths=(1, 1), dims=(8, 16))
        fresh_fc = other.head.fc.weight.detach().clone()
        report = load_pretrained(other, source, "convnext_mae")
        assert report.loaded_fraction == 1.0 and torch.equal(other.head.fc.weight, fresh_fc)
        with torch.no_grad():
            torch.testing.assert_close(other.forward_features(x), mae.encoder.forward_features(x))


def test_loud_failures_leave_the_model_untouched(tmp_path):
    src = _contrastive()
    clf = resnet(num_classes=2)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    with pytest.raises(ValueError, match="unknown kind 'simclr'"):
        load_pretrained(clf, src.state_dict(), "simclr")
    with pytest.raises(ValueError, match="kind='mae_vit' does not fit"):  # no ViT keys in a contrastive checkpoint
        load_pretrained(clf, src.state_dict(), "mae_vit")
    convnext = ConvNeXtMAE(2, 1, depths=(1, 1), dims=(8, 16), decoder_dim=16).state_dict()
    with pytest.raises(ValueError, match="source tensors matched ResNet"):  # right key prefix, wrong architecture
        load_pretrained(clf, convnext, "convnext_mae")
    wide = ContrastiveModel(resnet(3), head_in_features=64)
    with pytest.raises(ValueError, match="shapes that do not match"):  # 3-channel stem into a 1-channel ResNet
        load_pretrained(clf, wide.state_dict(), "contrastive_resnet")
    with pytest.raises(FileNotFoundError):
        load_pretrained(clf, tmp_path / "missing.pt")
    with pytest.raises(TypeError, match="path or a dict"):
        load_pretrained(clf, [1, 2])
    for k, v in clf.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert set(PRETRAINED_KINDS) >= {"contrastive_resnet", "mae_vit", "mae_vit_unetr", "swin_mae_swinunetr",
                                     "convnext_mae"}


def test_resnet18_encoder_into_resnet34_is_refused_listing_what_stays_random():
    """The source side is 100 % (every ResNet-18 tensor has a ResNet-34 home); the target side is not."""
    from monai.networks.nets import resnet18, resnet34

    torch.manual_seed(0)
    src = ContrastiveModel(resnet18(spatial_dims=2, n_input_channels=1, feed_forward=False), head_in_features=512)
    deeper = resnet34(spatial_dims=2, n_input_channels=1, num_classes=2)
    before = {k: v.clone() for k, v in deeper.state_dict().items()}
    with pytest.raises(ValueError, match="at their random initialisation") as err:
        load_pretrained(deeper, src.state_dict(), "contrastive_resnet")
    message = str(err.value)
    left = message.split("Left random: ")[1].split("\n")[0].split(", ")
    assert left == ["layer1.2.*", "layer2.2.*", "layer2.3.*", "layer3.2.*", "layer3.3.*", "layer3.4.*", "layer3.5.*",
                    "layer4.2.*"]  # every block ResNet-18 lacks, and nothing else (the head may stay fresh)
    assert "96 of the 219 encoder tensors" in message
    for k, v in deeper.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed by a refused load"

    report = load_pretrained(deeper, src.state_dict(), "contrastive_resnet", min_target_fraction=0.0, verbose=False)
    assert report.loaded_fraction == 1.0  # what the one-sided report used to say
    fresh_blocks = {".".join(k.split(".")[:3]) for k in report.fresh}
    assert {"layer1.2.conv1", "layer2.2.conv1", "layer2.3.conv1", "layer3.2.conv1", "layer4.2.conv1"} <= fresh_blocks
    assert 0.3 < report.scope_numel_fraction < 0.7 and 0.3 < report.scope_fraction < 0.7
    assert "target encoder:" in report.summary() and "left at random init" in report.summary()


def test_matching_encoder_reports_every_encoder_tensor_loaded():
    src = _contrastive()
    report = load_pretrained(resnet(num_classes=2), src.state_dict(), "contrastive_resnet", verbose=False)
    assert report.scope and not report.fresh and report.scope_fraction == 1.0
    assert all(not k.startswith("fc.") for k in report.scope)


def test_wrong_kind_checkpoint_names_the_encoder_tensors_left_random():
    """A MAE ViT encoder offered as a UNETR one (right kind family, other size): refused with the list."""
    small = MaskedAutoencoderViT(1, 32, 8, spatial_dims=2, hidden_size=48, mlp_dim=96, num_layers=2, num_heads=2,
                                 decoder_hidden_size=32, decoder_mlp_dim=32, decoder_num_layers=1,
                                 decoder_num_heads=2)
    vit = ViT(in_channels=1, img_size=32, patch_size=8, spatial_dims=2, hidden_size=48, mlp_dim=96, num_layers=4,
              num_heads=2, classification=True, num_classes=2)
    with pytest.raises(ValueError, match="2 of .* received|left random|random initialisation") as err:
        load_pretrained(vit, small.state_dict(), "mae_vit")
    assert "Left random: blocks.2.*, blocks.3.*" in str(err.value)


def test_plain_state_dict_kind_checks_the_modules_it_covers():
    """An encoder-only state dict fills its module (swinViT / layer*) and may leave the rest fresh; a shallower
    ResNet's state dict into a deeper one is refused."""
    from monai.networks.nets import resnet18, resnet34

    torch.manual_seed(0)
    shallow = {k: v for k, v in resnet18(spatial_dims=2, n_input_channels=1).state_dict().items()
               if not k.startswith("fc.")}
    report = load_pretrained(resnet18(spatial_dims=2, n_input_channels=1), shallow, "state_dict", verbose=False)
    assert not report.fresh and "fc.weight" in report.missing
    with pytest.raises(ValueError, match="Left random: layer1.2.*"):
        load_pretrained(resnet34(spatial_dims=2, n_input_channels=1), shallow, "state_dict")


def test_register_a_kind_and_use_its_filter_by_name(tmp_path):
    """A new kind is one decorated filter function; the door, the scope and pretrained_filter all use it."""
    from monai_ssl.handlers import export_encoder
    from monai_ssl.networks.pretrained import pretrained_filter, register_pretrained_kind

    seen = []

    @register_pretrained_kind("test_backbone_resnet", scope=lambda k: not k.startswith("fc."),
                              description="{'backbone.*'} -> monai ResNet (test)")
    def backbone_filter(state_dict, model=None):
        seen.append(model)
        return {k.removeprefix("backbone."): v for k, v in state_dict.items() if k.startswith("backbone.")}

    try:
        src = _contrastive()
        state = {"backbone." + k: v for k, v in src.encoder.state_dict().items()}
        clf = resnet(num_classes=2)
        report = load_pretrained(clf, {"model": state}, "test_backbone_resnet", verbose=False)
        assert report.loaded_fraction == 1.0 and not report.fresh and seen[-1] is clf  # the filter sees the target
        assert torch.equal(clf.conv1.weight, src.encoder.conv1.weight)
        with pytest.raises(ValueError, match="registered already"):
            register_pretrained_kind("test_backbone_resnet", None, "again")(backbone_filter)
        key_map = pretrained_filter("test_backbone_resnet")
        assert key_map.__name__ == "test_backbone_resnet" and key_map(state).keys() == src.encoder.state_dict().keys()
        assert seen[-1] is None  # no target: rename only
        # the encoder export names the kind; its sidecar records it
        holder = torch.nn.Module()
        holder.backbone = src.encoder
        export_encoder(holder, tmp_path / "enc.pt", submodule=None, key_map="test_backbone_resnet")
        assert '"key_map": "test_backbone_resnet"' in (tmp_path / "enc.pt.json").read_text()
        loaded = load_pretrained(resnet(num_classes=2), tmp_path / "enc.pt", "state_dict", verbose=False)
        assert loaded.scope_fraction == 1
    finally:
        PRETRAINED_KINDS.pop("test_backbone_resnet", None)
    with pytest.raises(ValueError, match="unknown kind 'test_backbone_resnet'"):
        pretrained_filter("test_backbone_resnet")


def test_every_kind_has_a_record_with_filter_scope_and_description():
    from monai_ssl.networks.pretrained import PretrainedKind

    for name, record in PRETRAINED_KINDS.items():
        assert isinstance(record, PretrainedKind) and record.name == name and callable(record.filter)
        assert record.description and (record.scope is None or callable(record.scope))


def test_safetensors_checkpoint_loads_like_a_pt_file(tmp_path):
    save_file = pytest.importorskip("safetensors.torch").save_file
    src = _contrastive()
    save_file({"module." + k: v.contiguous() for k, v in src.state_dict().items()}, str(tmp_path / "enc.safetensors"))
    clf = resnet(num_classes=2)
    report = load_pretrained(clf, tmp_path / "enc.safetensors", "contrastive_resnet", verbose=False)
    assert report.loaded_fraction == 1.0 and torch.equal(clf.layer4[0].conv1.weight, src.encoder.layer4[0].conv1.weight)
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(ValueError, match="bad.safetensors.*safetensors"):
        load_pretrained(clf, tmp_path / "bad.safetensors")


def test_unetr_and_swinunetr_kinds_take_the_target_layout_and_name_structural_differences():
    """The UNETR / SwinUNETR kinds also load another UNETR / SwinUNETR's encoder, and check the structure first."""
    torch.manual_seed(0)
    kw = {"in_channels": 1, "out_channels": 2, "img_size": (32, 32), "spatial_dims": 2, "feature_size": 8,
          "hidden_size": 48, "mlp_dim": 96, "num_heads": 2}
    src = UNETR(**kw)
    dst = UNETR(**kw)
    report = load_pretrained(dst, {"network": src.state_dict()}, "mae_vit_unetr", verbose=False)
    assert not report.fresh and torch.equal(dst.vit.blocks[3].mlp.linear1.weight, src.vit.blocks[3].mlp.linear1.weight)
    assert all(k.startswith("vit.") for k in report.loaded)  # the decoder is not the encoder's: it stays
    with pytest.raises(ValueError, match=r"hidden_size \(checkpoint 48, model 96\)"):
        load_pretrained(UNETR(**{**kw, "hidden_size": 96, "mlp_dim": 192}), src.state_dict(), "mae_vit_unetr")
    swin_kw = {"in_channels": 1, "out_channels": 2, "spatial_dims": 2, "feature_size": 12, "depths": (1, 1, 1, 1),
               "num_heads": (1, 1, 2, 2)}
    swin = SwinUNETR(**swin_kw)
    report = load_pretrained(SwinUNETR(**swin_kw), swin.state_dict(), "swin_mae_swinunetr", verbose=False)
    assert not report.fresh and all(k.startswith("swinViT.") for k in report.loaded)
    with pytest.raises(ValueError, match=r"feature_size \(checkpoint 12, model 24\)"):
        load_pretrained(SwinUNETR(**{**swin_kw, "feature_size": 24}), swin.state_dict(), "swin_mae_swinunetr")
    with pytest.raises(ValueError, match="arch='unetr'"):
        load_pretrained(SwinUNETR(**swin_kw), src.state_dict(), "swin_mae_swinunetr")
