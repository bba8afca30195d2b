"""Batched view augmentation on the training device: the SimCLR / CXR / MAE chains of
:mod:`monai_ssl.transforms.augmentation` applied to a whole ``(B, C, *spatial)`` batch at once.

Every sample gets its own draw of every random step, from the same distributions as the per-sample chains (crop
area and aspect ratio with the same 10-try rule and centred fallback, integer crop boxes, flips, rotation,
brightness/contrast in random order, anisotropic Gaussian blur with MONAI's ``erf`` kernel and zero padding,
Gaussian noise with a uniformly drawn spread), but the crop, resize, flips and rotation are one affine resampling
(``grid_sample``) of the batch, and blur is a separable sum of shifted copies with per-sample weights. The per-sample
parameters are drawn from a ``torch.Generator`` on the CPU (a few numbers per sample); noise fields are drawn on the
images' device from a generator seeded by it, so a batch's views are a function of the generator's seed alone.

Crop + resize is exact: ``grid_sample`` (bilinear, ``align_corners=False``) with the box's affine, its sampling
points clamped to the box's edge pixels, reproduces ``Resize`` (``F.interpolate``) of the integer crop to float
precision. Rotation shares that resampling (one interpolation instead of two) and blends in the zero padding outside
the rotated frame as a bilinear resampling of the frame would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.utils import ensure_tuple_rep

__all__ = [
    "BatchedRandViews",
    "batched_cxr_augmentations",
    "batched_mae_augmentations",
    "batched_simclr_augmentations",
]


def _uniform(gen: torch.Generator, shape: Sequence[int], low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, generator=gen, dtype=torch.float64)


def _rotation(angles: torch.Tensor, dims: int) -> torch.Tensor:
    """(B, dims, dims) rotation matrices from (B, 1) (2D) or (B, 3) (3D, about each axis in turn) angles."""
    c, s = torch.cos(angles), torch.sin(angles)
    if dims == 2:
        return torch.stack([torch.stack([c[:, 0], -s[:, 0]], -1), torch.stack([s[:, 0], c[:, 0]], -1)], 1)
    b = angles.shape[0]
    mats = []
    for ax in range(3):
        m = torch.eye(3, dtype=angles.dtype).repeat(b, 1, 1)
        i, j = [k for k in range(3) if k != ax]
        m[:, i, i], m[:, i, j], m[:, j, i], m[:, j, j] = c[:, ax], -s[:, ax], s[:, ax], c[:, ax]
        mats.append(m)
    return mats[0] @ mats[1] @ mats[2]


def _affine_grid(theta: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``F.affine_grid(theta, (n, 1, *size), align_corners=False)`` by broadcasting (several times faster on CPU)."""
    n, dims = theta.shape[0], len(size)
    grid = theta[:, :, dims].reshape(n, *([1] * dims), dims)
    for i in range(dims):  # grid coordinate i (x, y, z) runs along tensor spatial axis dims - 1 - i
        ax = dims - 1 - i
        u = (torch.arange(size[ax], device=theta.device, dtype=theta.dtype) * 2 + 1) / size[ax] - 1
        shape = [1] * (dims + 2)
        shape[1 + ax] = size[ax]
        grid = grid + theta[:, :, i].reshape(n, *([1] * dims), dims) * u.reshape(shape)
    return grid


def _gaussian_kernels(sigma: torch.Tensor, tail: int) -> torch.Tensor:
    """(N, 2 * tail + 1) MONAI ``gaussian_1d(approx="erf")`` kernels, each cut at its own tail; sigma <= 0: a delta."""
    x = torch.arange(-tail, tail + 1, dtype=torch.float64)
    own = (torch.clamp(sigma * 4.0, min=0.5) + 0.5).floor()
    t = 0.70710678 / sigma.clamp(min=1e-12)
    k = 0.5 * (torch.erf(t[:, None] * (x + 0.5)) - torch.erf(t[:, None] * (x - 0.5)))
    k = torch.where(x.abs()[None] <= own[:, None], k.clamp(min=0), torch.zeros(()))
    delta = (x == 0).to(k.dtype).expand_as(k)
    return torch.where((sigma > 0)[:, None], k, delta)


class BatchedRandViews:
    """Random views of a batch, each sample with its own draws: random resized crop -> flips -> rotation ->
    brightness/contrast jitter -> Gaussian blur -> Gaussian noise (the order of
    :func:`~monai_ssl.transforms.simclr_augmentations`).

    Args:
        spatial_size: output spatial size (int for all dims or a sequence).
        spatial_dims: 2 or 3.
        crop_scale: range of the crop's area (volume) fraction.
        ratio: range of the crop's aspect ratio (other axis / first axis), log-uniform.
        flip_prob: probability of flipping each axis of ``flip_axes``.
        flip_axes: spatial axes flipped independently (default: the last axis in 2D, every axis in 3D).
        rotate_degrees: rotation range (uniform in +-degrees, each axis in 3D); 0 disables.
        rotate_prob: probability of rotating (default 1.0 in 2D, 0.5 in 3D, as the per-sample chain).
        color_strength: brightness/contrast factors uniform in +-0.8 * strength; 0 disables.
        color_prob: probability of the jitter (both steps, in random order, each clipped to [0, 1]).
        blur_prob: probability of blurring; 0 disables.
        blur_sigma: sigma range in pixels at 224 px, scaled by ``spatial_size[0] / 224``; drawn per axis.
        noise_std: Gaussian noise with spread uniform in [0, noise_std], probability 0.5, then clip to [0, 1].

    Call with ``images (B, C, *spatial)`` (float, any memory format, any device) and a CPU ``torch.Generator``;
    returns ``(B, C, *spatial_size)`` in the input's floating dtype (float32 for integer input) and memory format.
    Computation is in float32 with autocast off, so it is the same under bf16 autocast.
    """

    def __init__(
        self,
        spatial_size: int | Sequence[int],
        spatial_dims: int = 2,
        crop_scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.5,
        flip_axes: Sequence[int] | None = None,
        rotate_degrees: float = 0.0,
        rotate_prob: float | None = None,
        color_strength: float = 0.0,
        color_prob: float = 0.8,
        blur_prob: float = 0.0,
        blur_sigma: tuple[float, float] = (0.1, 2.0),
        noise_std: float = 0.0,
    ) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {crop_scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < min <= max, got {ratio}")
        self.dims = spatial_dims
        self.size = tuple(int(s) for s in ensure_tuple_rep(spatial_size, spatial_dims))
        self.crop_scale = crop_scale
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        self.flip_prob = flip_prob
        self.flip_axes = tuple(flip_axes) if flip_axes is not None else ((1,) if spatial_dims == 2 else (0, 1, 2))
        if any(not 0 <= a < spatial_dims for a in self.flip_axes):
            raise ValueError(f"flip_axes must be spatial axes 0..{spatial_dims - 1}, got {self.flip_axes}")
        self.rotate = math.radians(rotate_degrees)
        self.rotate_prob = rotate_prob if rotate_prob is not None else (1.0 if spatial_dims == 2 else 0.5)
        self.color = 0.8 * color_strength
        self.color_prob = color_prob
        self.blur_prob = blur_prob
        scale = self.size[0] / 224
        self.blur_sigma = (blur_sigma[0] * scale, blur_sigma[1] * scale)
        self.noise_std = noise_std

    # ------------------------------------------------------------------------------------------ draws
    def draw_crops(self, n: int, shape: Sequence[int], gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer crop boxes ``(start, size)``, each (n, dims), as :class:`~monai_ssl.transforms.RandResizedCrop`."""
        dims, shape_t = self.dims, torch.tensor(list(shape), dtype=torch.float64)
        target = float(math.prod(shape)) * _uniform(gen, (n, 10), *self.crop_scale)
        aspects = torch.cat([torch.ones(n, 10, 1, dtype=torch.float64),
                             torch.exp(_uniform(gen, (n, 10, dims - 1), *self.log_ratio))], -1)
        base = (target / aspects.prod(-1)) ** (1.0 / dims)
        size = torch.round(base[..., None] * aspects)
        ok = ((size > 0) & (size <= shape_t)).all(-1)
        first = ok.to(torch.int64).argmax(1)
        chosen = size[torch.arange(n), first]
        start = torch.floor(torch.rand(n, dims, generator=gen, dtype=torch.float64) * (shape_t - chosen + 1))
        side = float(min(shape))
        fallback_start = torch.floor((shape_t - side) / 2).expand(n, dims)
        found = ok.any(1)[:, None]
        size = torch.where(found, chosen, torch.full_like(chosen, side))
        start = torch.where(found, start, fallback_start)
        return start.to(torch.int64), size.to(torch.int64)

    def draw(self, n: int, shape: Sequence[int], gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Every per-sample random parameter for ``n`` images of spatial ``shape`` (CPU tensors)."""
        start, size = self.draw_crops(n, shape, gen)
        p: dict[str, torch.Tensor] = {"start": start, "size": size}
        p["flip"] = torch.rand(n, len(self.flip_axes), generator=gen) < self.flip_prob
        n_angles = 1 if self.dims == 2 else 3
        p["angles"] = _uniform(gen, (n, n_angles), -self.rotate, self.rotate)
        p["angles"] *= (torch.rand(n, 1, generator=gen) < self.rotate_prob).to(torch.float64)
        p["jitter"] = torch.rand(n, generator=gen) < self.color_prob
        p["contrast_first"] = torch.rand(n, generator=gen) < 0.5
        p["brightness"] = _uniform(gen, (n,), -self.color, self.color)
        p["contrast"] = _uniform(gen, (n,), -self.color, self.color)
        blurred = torch.rand(n, generator=gen) < self.blur_prob
        p["sigma"] = _uniform(gen, (n, self.dims), *self.blur_sigma) * blurred[:, None]
        p["noise"] = (torch.rand(n, generator=gen) < 0.5) * _uniform(gen, (n,), 0.0, self.noise_std)
        p["noise_seed"] = torch.randint(0, 2**62, (1,), generator=gen)
        return p

    # ------------------------------------------------------------------------------------------ application
    def _grids(self, p: dict[str, torch.Tensor], shape: Sequence[int], n: int, device: torch.device):
        """Sampling grid (n, *size, dims) and, with rotation, the frame's weight (n, 1, *size) or None."""
        dims, shape_t = self.dims, torch.tensor(list(shape), dtype=torch.float64)
        crop = torch.diag_embed(p["size"] / shape_t)
        trans = (2 * p["start"] + p["size"]) / shape_t - 1
        flip = torch.ones(n, dims, dtype=torch.float64)
        for j, ax in enumerate(self.flip_axes):
            flip[:, ax] = torch.where(p["flip"][:, j], -1.0, 1.0)
        lin = crop * flip[:, None, :]
        rotating = self.rotate > 0 and bool((p["angles"] != 0).any())
        if rotating:  # rotation about the frame's centre in pixel units: D^-1 R D, D = diag(size / 2)
            half = torch.tensor(self.size, dtype=torch.float64) / 2
            rot = _rotation(p["angles"], dims) * half[None, None, :] / half[None, :, None]
            lin = lin @ rot
        rev = list(range(dims - 1, -1, -1))  # affine_grid/grid_sample order coordinates last axis first

        def theta(m: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return torch.cat([m[:, rev][:, :, rev], t[:, rev, None]], 2).to(device=device, dtype=torch.float32)

        # Resize of the cropped array clamps at the crop's edge pixels, not at the image's
        lo = ((2 * p["start"] + 1) / shape_t - 1)[:, rev].to(device=device, dtype=torch.float32)
        hi = ((2 * (p["start"] + p["size"]) - 1) / shape_t - 1)[:, rev].to(device=device, dtype=torch.float32)
        th = theta(lin, trans)
        if not rotating:  # axis-aligned: grid coordinate i depends on output axis dims - 1 - i alone
            comps = []
            for i in range(dims):
                ax = dims - 1 - i
                u = (torch.arange(self.size[ax], device=device, dtype=torch.float32) * 2 + 1) / self.size[ax] - 1
                c = (th[:, i, i, None] * u + th[:, i, dims, None]).clamp(lo[:, i, None], hi[:, i, None])
                shape = [n] + [1] * dims
                shape[1 + ax] = self.size[ax]
                comps.append(c.reshape(shape).expand(n, *self.size))
            return torch.stack(comps, -1), None
        bounds = (n,) + (1,) * dims + (dims,)
        grid = torch.clamp(_affine_grid(th, self.size), min=lo.view(bounds), max=hi.view(bounds))
        frame_grid = _affine_grid(theta(rot, torch.zeros(n, dims, dtype=torch.float64)), self.size)
        ones = torch.ones((n, 1, *self.size), device=device)
        return grid, F.grid_sample(ones, frame_grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _jitter(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Brightness ``v * (1 + fb)`` and contrast ``(v - mean) * (1 + fc) + mean`` in the drawn order, each then
        clipped to [0, 1], on the jittered samples (in place on ``x``); both are ``v * a + b``, so each step is one
        fused pass."""
        idx = torch.nonzero(p["jitter"]).flatten()
        if idx.numel() == 0:
            return x
        view = (-1,) + (1,) * (x.ndim - 1)
        reduce = tuple(range(1, x.ndim))
        sub = x.index_select(0, idx.to(x.device))
        fb = (1 + p["brightness"][idx]).to(x).view(view)
        fc = (1 + p["contrast"][idx]).to(x).view(view)
        cfirst = p["contrast_first"][idx].to(x.device).view(view)
        for contrast_now in (cfirst, ~cfirst):
            mean = sub.mean(reduce, keepdim=True)
            a = torch.where(contrast_now, fc, fb)
            b = torch.where(contrast_now, mean * (1 - fc), torch.zeros_like(mean))
            sub = torch.addcmul(b, sub, a).clamp_(0, 1)
        return x.index_copy_(0, idx.to(x.device), sub)

    def _blur(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Separable zero-padded Gaussian blur, in place on ``x``, of the samples with ``sigma > 0``: along each
        axis a sum of shifted copies weighted by each sample's own kernel (one fused multiply-add per tap and side;
        the zero padding is the part of a shifted copy that falls off the edge; on CPU several times faster than a
        grouped convolution with per-sample kernels)."""
        idx = torch.nonzero((sigma > 0).all(1)).flatten()
        if idx.numel() == 0:
            return x
        tails = (torch.clamp(sigma[idx] * 4.0, min=0.5) + 0.5).floor().amax(1)
        idx = idx[torch.argsort(tails, descending=True)]  # samples needing a tap form a prefix of the batch
        sig, tails = sigma[idx], tails.sort(descending=True).values
        tail = int(tails[0])
        sub = x.index_select(0, idx.to(x.device))
        view = (-1,) + (1,) * (x.ndim - 1)
        for ax in range(self.dims):
            k = _gaussian_kernels(sig[:, ax], tail).to(device=x.device, dtype=x.dtype)  # (m, 2 * tail + 1)
            dim, size = 2 + ax, sub.shape[2 + ax]
            out = sub * k[:, tail].view(view)
            for shift in range(1, min(tail, size - 1) + 1):
                m, n = int((tails >= shift).sum()), size - shift  # out[i] += k[t + s] sub[i + s] + k[t - s] sub[i - s]
                o, v = out[:m], sub[:m]
                o.narrow(dim, 0, n).addcmul_(v.narrow(dim, shift, n), k[:m, tail + shift].view(view))
                o.narrow(dim, shift, n).addcmul_(v.narrow(dim, 0, n), k[:m, tail - shift].view(view))
            sub = out
        return x.index_copy_(0, idx.to(x.device), sub)

    def apply(self, images: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        """Apply drawn parameters ``p`` (from :meth:`draw`) to ``images (B, C, *spatial)`` (left unchanged)."""
        n = images.shape[0]
        with torch.autocast(device_type=images.device.type, enabled=False):
            x = images.float()
            grid, frame = self._grids(p, images.shape[2:], n, images.device)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
            if frame is not None:
                x = x * frame
            if self.color > 0 and self.color_prob > 0:
                x = self._jitter(x, p)
            if self.blur_prob > 0 and bool((p["sigma"] > 0).any()):
                x = self._blur(x, p["sigma"])
            if self.noise_std > 0:
                gen = torch.Generator(device=images.device).manual_seed(int(p["noise_seed"]))
                std = p["noise"].to(device=x.device, dtype=x.dtype).view((-1,) + (1,) * (x.ndim - 1))
                x = (x + std * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)).clamp(0, 1)
        dtype = images.dtype if images.is_floating_point() else torch.float32
        x = x.to(dtype)
        if images.ndim == 4 and images.is_contiguous(memory_format=torch.channels_last) and images.shape[1] > 1:
            x = x.contiguous(memory_format=torch.channels_last)
        elif images.ndim == 5 and images.is_contiguous(memory_format=torch.channels_last_3d) and images.shape[1] > 1:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.ndim != self.dims + 2:
            raise ValueError(f"BatchedRandViews(spatial_dims={self.dims}) expects (B, C, *spatial) images with "
                             f"{self.dims + 2} dimensions, got shape {tuple(images.shape)}")
        if hasattr(images, "as_tensor"):  # MetaTensor: no metadata tracking in the hot path
            images = images.as_tensor()
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        return self.apply(images, self.draw(images.shape[0], images.shape[2:], gen))


def batched_simclr_augmentations(
    spatial_size: int | Sequence[int] = 224,
    spatial_dims: int = 2,
    crop_scale: tuple[float, float] = (0.08, 1.0),
    color_strength: float = 1.0,
    color_prob: float = 0.8,
    blur: bool = True,
    blur_prob: float = 0.5,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
    rotate_degrees: float = 0.0,
    flip_prob: float = 0.5,
    noise_std: float = 0.0,
) -> BatchedRandViews:
    """Batched twin of :func:`~monai_ssl.transforms.simclr_augmentations` (same arguments, same distributions)."""
    return BatchedRandViews(
        spatial_size, spatial_dims, crop_scale=crop_scale, flip_prob=flip_prob, rotate_degrees=rotate_degrees,
        color_strength=color_strength if color_prob > 0 else 0.0, color_prob=color_prob,
        blur_prob=blur_prob if blur else 0.0, blur_sigma=blur_sigma, noise_std=noise_std,
    )


def batched_cxr_augmentations(spatial_size: int | Sequence[int] = 224,
                              crop_scale: tuple[float, float] = (0.08, 1.0)) -> BatchedRandViews:
    """Batched twin of :func:`~monai_ssl.transforms.cxr_augmentations` (Azizi et al. 2021's chest X-ray views)."""
    return batched_simclr_augmentations(spatial_size, 2, crop_scale=crop_scale, color_strength=0.5, blur=False,
                                        rotate_degrees=45.0)


def batched_mae_augmentations(spatial_size: int | Sequence[int] = 224, spatial_dims: int = 2,
                              crop_scale: tuple[float, float] = (0.2, 1.0), flip_prob: float = 0.5) -> BatchedRandViews:
    """Batched twin of :func:`~monai_ssl.transforms.mae_augmentations`: random resized crop and a last-axis flip."""
    return BatchedRandViews(spatial_size, spatial_dims, crop_scale=crop_scale, flip_prob=flip_prob,
                            flip_axes=(spatial_dims - 1,))
