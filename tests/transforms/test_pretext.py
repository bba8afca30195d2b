"""Pretext-task transforms: rotation, jigsaw, relative patch location."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms.pretext import (
    NEIGHBOUR_OFFSETS,
    PRETEXT_LABEL,
    RandJigsaw,
    RandJigsawd,
    RandJigsawDict,
    RandRelativePatch,
    RandRelativePatchd,
    RandRotationPretext,
    RandRotationPretextd,
    RandRotationPretextD,
    hamming_permutations,
)


def _min_hamming(perms: np.ndarray) -> int:
    d = (perms[:, None, :] != perms[None, :, :]).sum(-1)
    np.fill_diagonal(d, perms.shape[1] + 1)
    return int(d.min())


def test_hamming_permutations_valid_distinct_deterministic():
    perms = hamming_permutations(100, 9)
    assert perms.shape == (100, 9)
    assert (np.sort(perms, axis=1) == np.arange(9)).all()
    assert len({tuple(p) for p in perms}) == 100
    assert (perms[0] == np.arange(9)).all()
    assert not perms.flags.writeable
    from monai_ssl.transforms import pretext

    pretext._hamming_permutations.cache_clear()
    np.testing.assert_array_equal(perms, hamming_permutations(100, 9))


def test_hamming_permutations_spread_beats_random_choice():
    greedy = _min_hamming(hamming_permutations(50, 9))
    rng = np.random.default_rng(0)
    random_sets = [_min_hamming(np.stack([rng.permutation(9) for _ in range(50)])) for _ in range(5)]
    assert greedy > max(random_sets)
    assert greedy >= 6


def test_hamming_permutations_large_grid_and_errors():
    perms = hamming_permutations(20, 16, seed=1, pool_size=2000)
    assert perms.shape == (20, 16) and (np.sort(perms, axis=1) == np.arange(16)).all()
    with pytest.raises(ValueError, match="exceeds"):
        hamming_permutations(7, 3)  # only 3! = 6 exist
    with pytest.raises(ValueError):
        hamming_permutations(0, 9)


def test_rotation_matches_rot90_and_covers_all_k():
    x = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(2, 6, 6)
    t = RandRotationPretext().set_random_state(0)
    seen = set()
    for _ in range(40):
        out, k = t(x)
        assert 0 <= k < 4
        torch.testing.assert_close(torch.as_tensor(out), torch.rot90(x, k, dims=(1, 2)))
        seen.add(k)
    assert seen == {0, 1, 2, 3}


def test_rotation_reproducible_and_keeps_metatensor():
    x = MetaTensor(torch.rand(1, 8, 8), meta={"filename_or_obj": "a.png"})
    t1, t2 = RandRotationPretext().set_random_state(5), RandRotationPretext().set_random_state(5)
    assert [t1(x)[1] for _ in range(10)] == [t2(x)[1] for _ in range(10)]
    out, _ = RandRotationPretext().set_random_state(3)(x)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "a.png"


def test_rotation_rejects_non_2d():
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        RandRotationPretext()(torch.rand(8, 8))


def _cell_image(grid: int = 3, cell: int = 10) -> torch.Tensor:
    """Image whose cell (r, q) is filled with the value r * grid + q."""
    idx = torch.arange(grid * grid, dtype=torch.float32).reshape(grid, grid)
    return idx.repeat_interleave(cell, 0).repeat_interleave(cell, 1)[None]


def test_jigsaw_tiles_follow_the_permutation():
    t = RandJigsaw(tile_size=8, num_permutations=30, normalize_tiles=False).set_random_state(0)
    img = _cell_image()
    labels = set()
    for _ in range(20):
        tiles, label = t(img)
        assert tiles.shape == (9, 1, 8, 8)
        labels.add(label)
        perm = t.permutations[label]
        # each output slot j is a crop of the cell perm[j] only
        for j in range(9):
            assert torch.all(tiles[j] == perm[j])
    assert len(labels) > 5 and t.num_classes == 30


def test_jigsaw_random_crops_inside_cells_and_normalised():
    img = torch.rand(2, 30, 36)
    t = RandJigsaw(tile_size=7, num_permutations=10).set_random_state(1)
    tiles, _ = t(img)
    assert tiles.shape == (9, 2, 7, 7)
    torch.testing.assert_close(tiles.mean(dim=(1, 2, 3)), torch.zeros(9), atol=1e-5, rtol=0)
    torch.testing.assert_close(tiles.std(dim=(1, 2, 3)), torch.ones(9), atol=1e-3, rtol=0)
    assert t._offsets.min() >= 0 and t._offsets.max() <= 10 - 7
    default = RandJigsaw(num_permutations=10)
    # Noroozi & Favaro 2016: 75 px cells, 64 px tiles
    assert default(torch.rand(1, 225, 225))[0].shape == (9, 1, 64, 64)


def test_jigsaw_errors():
    with pytest.raises(ValueError, match="does not fit"):
        RandJigsaw(tile_size=20, num_permutations=5)(torch.rand(1, 30, 30))
    with pytest.raises(ValueError, match="permutations"):
        RandJigsaw(permutations=[[0, 1, 2, 3, 4, 5, 6, 7, 7]])
    with pytest.raises(TypeError):
        RandJigsaw(num_permutations=5)([[1.0]])


def test_relative_patch_geometry():
    h = w = 64
    coords = torch.arange(h * w, dtype=torch.float32).reshape(1, h, w)
    t = RandRelativePatch(patch_size=12, gap=4, jitter=2, normalize_patches=False).set_random_state(0)
    seen = set()
    for _ in range(60):
        pair, label = t(coords)
        assert pair.shape == (2, 1, 12, 12)
        seen.add(label)
        cy, cx = divmod(int(pair[0, 0, 0, 0]), w)
        ny, nx = divmod(int(pair[1, 0, 0, 0]), w)
        dy, dx = NEIGHBOUR_OFFSETS[label]
        assert abs(ny - cy - dy * 16) <= 2 and abs(nx - cx - dx * 16) <= 2
    assert seen == set(range(8))


def test_relative_patch_too_small_image():
    with pytest.raises(ValueError, match="smaller than the 3x3 lattice"):
        RandRelativePatch(patch_size=16)(torch.rand(1, 40, 40))


def test_dict_versions_share_one_draw_and_write_label():
    x = torch.rand(1, 30, 30)
    d = RandJigsawd(["image", "mask"], tile_size=8, num_permutations=10, normalize_tiles=False).set_random_state(2)(
        {"image": x, "mask": x.clone(), "other": 1}
    )
    assert d["image"].shape == (9, 1, 8, 8) and d["other"] == 1
    torch.testing.assert_close(d["image"], d["mask"])
    assert 0 <= d[PRETEXT_LABEL] < 10
    r = RandRotationPretextd("image", label_key="rot").set_random_state(0)({"image": x})
    assert "rot" in r and r["image"].shape == (1, 30, 30)
    p = RandRelativePatchd("image", patch_size=8).set_random_state(0)({"image": x})
    assert p["image"].shape == (2, 1, 8, 8) and 0 <= p[PRETEXT_LABEL] < 8
    assert RandRotationPretextD is RandRotationPretextd and RandJigsawDict is RandJigsawd


def test_dict_reproducible_and_missing_key():
    x = torch.rand(1, 30, 30)
    a = RandJigsawd("image", num_permutations=10).set_random_state(7)
    b = RandJigsawd("image", num_permutations=10).set_random_state(7)
    for _ in range(3):
        da, db = a({"image": x}), b({"image": x})
        assert da[PRETEXT_LABEL] == db[PRETEXT_LABEL]
        torch.testing.assert_close(da["image"], db["image"])
    with pytest.raises(KeyError):
        RandRotationPretextd("image")({"img": x})
    out = RandRotationPretextd("image", allow_missing_keys=True)({"img": x})
    assert PRETEXT_LABEL not in out
