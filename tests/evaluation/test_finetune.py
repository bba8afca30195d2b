"""Fine-tuning: layer-wise LR decay groups, toy-task AUC, frozen encoder, predict_proba shapes."""

from __future__ import annotations

import pytest
import torch
from monai.data import DataLoader
from monai.networks.nets import ResNet, ViT

from monai_ssl.evaluation.finetune import (
    classification_loss,
    compute_auc,
    finetune_classifier,
    layer_id_fn,
    layerwise_lr_decay_groups,
    predict_proba,
)
from monai_ssl.networks.nets import MaskedAutoencoderViT



pytestmark = pytest.mark.usefixtures("one_thread")

def tiny_resnet(num_classes: int = 2) -> ResNet:
    torch.manual_seed(0)
    return ResNet("basic", [1, 1, 1, 1], [4, 8, 8, 8], spatial_dims=2, n_input_channels=1, num_classes=num_classes)


def toy_data(n: int = 64, seed: int = 0, num_classes: int = 2) -> list[dict]:
    """Class c has a bright square in quadrant c: separable, but only by looking at the image."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        y = i % num_classes
        x = 0.3 * torch.rand(1, 8, 8, generator=g)
        r, c = divmod(y, 2)
        x[:, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 0.7
        items.append({"image": x, "label": torch.tensor(y)})
    return items


def loader(items, shuffle=True):
    return DataLoader(items, batch_size=16, shuffle=shuffle, generator=torch.Generator().manual_seed(0))


def _check_groups(model, groups):
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)), "a parameter is in two groups"
    assert set(ids) == {id(p) for p in model.parameters()}, "a parameter is missing"
    by_layer = {}
    for g in groups:
        by_layer.setdefault(g["layer"], set()).add(g["lr"])
        for name, p in zip(g["names"], g["params"]):
            if p.ndim <= 1 or "norm" in name or "position" in name or "token" in name:
                assert g["weight_decay"] == 0.0, name
            else:
                assert g["weight_decay"] == 0.05, name
    layers = sorted(by_layer)
    lrs = [by_layer[k].pop() for k in layers]
    assert all(len(by_layer[k]) == 0 for k in layers), "one layer has two learning rates"
    assert all(a < b for a, b in zip(lrs, lrs[1:])), f"LR not increasing with depth: {lrs}"
    return layers, lrs


def test_vit_layerwise_groups():
    vit = ViT(1, img_size=16, patch_size=8, hidden_size=32, mlp_dim=64, num_layers=3, num_heads=2,
              classification=True, num_classes=2, spatial_dims=2)
    groups = layerwise_lr_decay_groups(vit, 1e-3, decay=0.5)
    layers, lrs = _check_groups(vit, groups)
    assert layers == [0, 1, 2, 3, 4]  # patch embedding, 3 blocks, head/norm
    assert lrs[-1] == pytest.approx(1e-3) and lrs[0] == pytest.approx(1e-3 * 0.5**4)
    fn, n = layer_id_fn(vit)
    assert n == 5 and fn("patch_embedding.position_embeddings") == 0 and fn("blocks.2.mlp.linear1.weight") == 3
    assert fn("classification_head.0.weight") == 4 and fn("norm.weight") == 4


def test_mae_vit_and_prefixed_names():
    mae = MaskedAutoencoderViT(in_channels=1, img_size=16, patch_size=8, hidden_size=32, mlp_dim=64, num_layers=2,
                               num_heads=2, decoder_hidden_size=16, decoder_mlp_dim=32, decoder_num_layers=1,
                               decoder_num_heads=2, spatial_dims=2)
    wrapped = torch.nn.ModuleDict({"encoder": mae})
    fn, n = layer_id_fn(wrapped)
    assert fn("encoder.blocks.0.attn.qkv.weight") == 1 and fn("encoder.patch_embedding.patch_embeddings.weight") == 0
    _check_groups(wrapped, layerwise_lr_decay_groups(wrapped, 1.0, decay=0.9))


def test_resnet_and_convnext_stagewise_groups():
    from monai_ssl.networks.nets import ConvNeXt

    net = tiny_resnet()
    layers, _ = _check_groups(net, layerwise_lr_decay_groups(net, 1e-2, decay=0.7))
    assert layers == [0, 1, 2, 3, 4, 5]
    cnx = ConvNeXt(spatial_dims=2, in_channels=1, depths=(1, 1), dims=(8, 16), num_classes=2)
    layers, _ = _check_groups(cnx, layerwise_lr_decay_groups(cnx, 1e-2, decay=0.7))
    assert layers == [0, 1, 2, 3]


def test_unknown_architecture_raises():
    with pytest.raises(ValueError, match="layer-wise LR decay"):
        layerwise_lr_decay_groups(torch.nn.Sequential(torch.nn.Linear(2, 2)), 1e-3)
    with pytest.raises(ValueError, match="decay"):
        layerwise_lr_decay_groups(tiny_resnet(), 1e-3, decay=0.0)


@pytest.mark.parametrize("layer_decay", [None, 0.8])
def test_finetune_toy_task_reaches_high_auc(layer_decay):
    model = tiny_resnet()
    val = loader(toy_data(32, seed=1), shuffle=False)
    before = compute_auc(*predict_proba(model, val), task="binary")
    hist = finetune_classifier(model, loader(toy_data(64)), val, epochs=6, lr=3e-3, warmup_epochs=1,
                               layer_decay=layer_decay, task="binary")
    probs, labels = predict_proba(model, val)
    assert probs.shape == (32,) and ((probs >= 0) & (probs <= 1)).all()
    auc = compute_auc(probs, labels)
    assert auc > 0.95, (before, auc, hist)
    assert hist["best_epoch"] is not None and hist["best_val_auc"] == pytest.approx(auc)
    assert hist["iterations"] == 6 * 4 and len(hist["train_loss"]) == 6
    assert hist["train_loss"][-1] < hist["train_loss"][0]


def test_finetune_multiclass_with_epoch_length():
    model = tiny_resnet(num_classes=4)
    data = toy_data(64, num_classes=4)
    hist = finetune_classifier(model, loader(data), epochs=5, epoch_length=6, lr=1e-2, task="multiclass")
    assert hist["iterations"] == 30 and hist["val_auc"] == []
    probs, labels = predict_proba(model, loader(data, shuffle=False), task="multiclass")
    assert probs.shape == (64, 4) and torch.allclose(probs.sum(1), torch.ones(64), atol=1e-5)
    assert compute_auc(probs, labels, task="multiclass") > 0.8


def test_freeze_encoder_keeps_encoder_weights_and_bn_stats():
    model = tiny_resnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    finetune_classifier(model, loader(toy_data(32)), epochs=2, lr=1e-2, task="binary", freeze_encoder=True)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("fc.") for k in changed), changed
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again for later use
    with pytest.raises(ValueError, match="head"):
        finetune_classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 2)),
                            loader(toy_data(16)), epochs=1, freeze_encoder=True)


def test_losses_and_probabilities_for_each_task():
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    ce = classification_loss("binary", 2)(logits, torch.tensor([[0], [1]]))
    assert ce == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1])).item())
    bce = classification_loss("binary", 1)(logits[:, :1], torch.tensor([1, 0]))
    assert bce == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:, 0], torch.tensor([1.0, 0.0])).item())
    ml = classification_loss("multilabel", 2)(logits, torch.tensor([[1, 0], [0, 1]]))
    assert ml.ndim == 0
    with pytest.raises(ValueError, match="task"):
        classification_loss("regression", 1)
    # perfect ranking -> AUC 1; reversed -> 0; single class -> nan
    assert compute_auc(torch.tensor([0.1, 0.9, 0.8]), torch.tensor([0, 1, 1])) == 1.0
    assert compute_auc(torch.tensor([0.9, 0.1]), torch.tensor([0, 1])) == 0.0
    assert compute_auc(torch.tensor([0.9, 0.1]), torch.tensor([1, 1])) != compute_auc(
        torch.tensor([0.9, 0.1]), torch.tensor([1, 1]))  # nan


def test_finetune_monai_vit_with_layer_decay():
    """MONAI ViT returns (logits, hidden states): the loss and predict_proba take the logits."""
    torch.manual_seed(0)
    vit = ViT(1, img_size=8, patch_size=4, hidden_size=16, mlp_dim=32, num_layers=2, num_heads=2,
              classification=True, num_classes=2, spatial_dims=2)
    before = vit.patch_embedding.patch_embeddings.weight.clone() if hasattr(
        vit.patch_embedding, "patch_embeddings") else next(vit.parameters()).clone()
    hist = finetune_classifier(vit, loader(toy_data(32)), epochs=1, lr=1e-3, layer_decay=0.5, task="binary")
    assert hist["iterations"] == 2 and all(torch.isfinite(torch.tensor(hist["train_loss"])))
    probs, _ = predict_proba(vit, loader(toy_data(16), shuffle=False))
    assert probs.shape == (16,)
    after = vit.patch_embedding.patch_embeddings.weight if hasattr(
        vit.patch_embedding, "patch_embeddings") else next(vit.parameters())
    assert not torch.equal(before, after)
