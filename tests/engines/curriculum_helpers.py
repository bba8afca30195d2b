"""Shared pieces of the curriculum tests (tests/engines and tests/apps): a handful of real COVID chest X-rays at
32 px, a tiny ResNet encoder, seeded loaders, two pretext stages and a linear-probe score."""

from __future__ import annotations

import torch
from monai.data import DataLoader, Dataset
from monai.metrics import compute_roc_auc
from monai.networks.nets import ResNet
from monai.transforms import Compose, Resized
from torch import nn

from monai_ssl.engines.curriculum import CurriculumStage
from monai_ssl.transforms.pretext import RandJigsawd, RandRotationPretextd

FEAT = 16



def small_cxr_items(data_dir):
    """Six COVID-positive and six other chest X-rays, resized to 32 px."""
    from monai_ssl.data import load_covid_cxr

    items = [d for d in load_covid_cxr(data_dir / "covid_cxr_256.npz") if d["label"] >= 0]
    pos = [d for d in items if d["label"] == 1][:6]
    neg = [d for d in items if d["label"] == 0][:6]
    small = Resized("image", (32, 32))
    return [small({"image": d["image"], "label": d["label"]}) for d in pos + neg]


def encoder_of(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return ResNet("basic", [1, 1, 1, 1], [4, 8, 8, FEAT], spatial_dims=2, n_input_channels=1, feed_forward=False)


def loader_of(items, transform, seed: int = 0) -> DataLoader:
    ds = Dataset(items, Compose([transform]).set_random_state(seed))
    return DataLoader(ds, batch_size=6, shuffle=True, num_workers=0, generator=torch.Generator().manual_seed(seed))


def two_stages(items, seed: int = 0) -> list[CurriculumStage]:
    return [
        CurriculumStage("rotation", loader_of(items, RandRotationPretextd("image"), seed)),
        CurriculumStage(
            "jigsaw",
            loader_of(items, RandJigsawd("image", num_permutations=8), seed),
            head_kwargs={"num_classes": 8, "hidden_features": 16},
        ),
    ]


def probe_of(items):
    """Linear probe score: logistic regression on frozen features, AUC on the same handful of images."""

    def probe(encoder: nn.Module) -> float:
        encoder.eval()
        with torch.no_grad():
            x = torch.stack([torch.as_tensor(d["image"]) for d in items]).float()
            feats = encoder(x)
        y = torch.tensor([float(d["label"]) for d in items])
        feats = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
        lin = nn.Linear(feats.shape[1], 1)
        opt = torch.optim.LBFGS(lin.parameters(), max_iter=50)

        def closure():
            opt.zero_grad()
            loss = (nn.functional.binary_cross_entropy_with_logits(lin(feats)[:, 0], y)
                    + 1e-2 * lin.weight.square().sum())
            loss.backward()
            return loss

        opt.step(closure)
        return float(compute_roc_auc(lin(feats).detach()[:, 0], y))

    return probe
