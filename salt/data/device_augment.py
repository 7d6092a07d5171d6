"""Batch-wise augmentation on whatever device the batch lives on (torch only).

`BatchAugment` does what an albumentations pipeline of horizontal flip, affine with reflected
borders and brightness/contrast does per sample, but for a whole batch at once, vectorised: no
loop over samples and no host synchronisation, so it keeps a GPU busy where CPU workers cannot.
Every random number comes from the `torch.Generator` the caller passes (on the batch's device),
so a batch's augmentation is a function of that generator's seed only.

`from_albumentations` reads the one augmentation spec of a run (`data.train_transform`, an
albumentations pipeline) into a `BatchAugment`, and refuses in one line what it cannot run.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import torch
import torch.nn.functional as F

from salt.core.errors import ConfigError

Range = tuple[float, float]

# the columns of the one (B, N_DRAWS) uniform draw per batch, always drawn in full, so the
# parameters of one augmentation do not depend on which of the others are switched on
FLIP, AFFINE, TX, TY, SCALE, ANGLE, BC, CONTRAST, BRIGHTNESS, SCALE_Y = range(10)
N_DRAWS = 10


def _range(value, name: str) -> Range:
    """`x` -> (-x, x); `(a, b)` kept (as albumentations reads its limits)."""
    if isinstance(value, int | float):
        low, high = -abs(float(value)), abs(float(value))
    else:
        low, high = (float(v) for v in value)
    if low > high:
        raise ValueError(f"{name}: lower bound {low} > upper bound {high}")
    return low, high


def _uniform(u: torch.Tensor, bounds: Range) -> torch.Tensor:
    return bounds[0] + (bounds[1] - bounds[0]) * u


class BatchAugment:
    """Random hflip, affine and brightness/contrast of (B, C, H, W) images in 0..1 and their masks.

    Defaults mirror the albumentations pipeline of `conf/data/tgs.yaml`:

    - `hflip_p`: probability of a horizontal flip (per sample).
    - `affine_p`: probability of an affine warp; `translate_percent` (fraction of the width and
      height, drawn independently for x and y), `scale` (drawn independently for x and y, as
      albumentations' Affine does, or one factor for both with `keep_ratio`; `scale_y`, when
      given, is the range of the y factor) and `rotate` (degrees), about the image centre.
      Images are resampled bilinearly, masks bilinearly then thresholded at 0.5 (so they stay
      exactly {0, 1}); borders are reflected without repeating the edge (`align_corners=True` reflection = cv2.BORDER_REFLECT_101, as the tile padding).
    - `brightness_contrast_p`: probability of `clip(image * (1 + c) + b, 0, 1)` with
      c in `contrast_limit` and b in `brightness_limit` (albumentations'
      RandomBrightnessContrast with `brightness_by_max`, for images in 0..1).

    A limit given as one number `x` means the range (-x, x). Samples an augmentation skips are
    returned bit for bit unchanged.
    """

    def __init__(
        self,
        hflip_p: float = 0.5,
        translate_percent: float | Range = 0.0625,
        scale: Range = (0.9, 1.1),
        rotate: float | Range = 10.0,
        affine_p: float = 0.5,
        brightness_limit: float | Range = 0.1,
        contrast_limit: float | Range = 0.1,
        brightness_contrast_p: float = 0.5,
        keep_ratio: bool = False,
        scale_y: Range | None = None,
    ):
        for name, p in (
            ("hflip_p", hflip_p),
            ("affine_p", affine_p),
            ("brightness_contrast_p", brightness_contrast_p),
        ):
            if not 0 <= p <= 1:
                raise ValueError(f"{name} must be in 0..1, got {p}")
        self.hflip_p, self.affine_p, self.brightness_contrast_p = (
            float(hflip_p),
            float(affine_p),
            float(brightness_contrast_p),
        )
        self.translate = _range(translate_percent, "translate_percent")
        self.scale = _range(scale, "scale")
        self.scale_y = self.scale if scale_y is None else _range(scale_y, "scale_y")
        if self.scale[0] <= 0 or self.scale_y[0] <= 0:
            raise ValueError(f"scale must be positive, got {self.scale} and {self.scale_y}")
        if keep_ratio and self.scale_y != self.scale:
            raise ValueError("keep_ratio draws one factor for both axes: give no scale_y")
        self.keep_ratio = bool(keep_ratio)
        self.rotate = _range(rotate, "rotate")
        self.brightness = _range(brightness_limit, "brightness_limit")
        self.contrast = _range(contrast_limit, "contrast_limit")

    def __repr__(self) -> str:
        return (
            f"BatchAugment(hflip_p={self.hflip_p}, translate_percent={self.translate}, "
            f"scale={self.scale}, scale_y={self.scale_y}, keep_ratio={self.keep_ratio}, "
            f"rotate={self.rotate}, affine_p={self.affine_p}, "
            f"brightness_limit={self.brightness}, contrast_limit={self.contrast}, "
            f"brightness_contrast_p={self.brightness_contrast_p})"
        )

    def __call__(
        self,
        images: torch.Tensor,
        masks: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augmented `(images, masks)`: float images (B, C, H, W) in 0..1, masks (B, 1, H, W)
        {0, 1} of any dtype (returned in that dtype) or None. Draws from `generator` (on the
        images' device), or from torch's global generator when None."""
        if images.ndim != 4 or not images.is_floating_point():
            raise ValueError(
                f"expected float images (B, C, H, W), got {images.dtype} {images.shape}"
            )
        batch = images.shape[0]
        u = torch.rand(
            (batch, N_DRAWS), generator=generator, device=images.device, dtype=torch.float32
        )

        def per_sample(column: int, p: float) -> torch.Tensor:  # (B, 1, 1, 1) bool
            return (u[:, column] < p).view(batch, 1, 1, 1)

        if self.hflip_p > 0:
            flip = per_sample(FLIP, self.hflip_p)
            images = torch.where(flip, images.flip(-1), images)
            if masks is not None:
                masks = torch.where(flip, masks.flip(-1), masks)
        if self.affine_p > 0:
            images, masks = self._affine(images, masks, u, per_sample(AFFINE, self.affine_p))
        if self.brightness_contrast_p > 0:
            apply = per_sample(BC, self.brightness_contrast_p)
            alpha = 1 + _uniform(u[:, CONTRAST], self.contrast).view(batch, 1, 1, 1)
            beta = _uniform(u[:, BRIGHTNESS], self.brightness).view(batch, 1, 1, 1)
            adjusted = (images * alpha.to(images.dtype) + beta.to(images.dtype)).clamp_(0, 1)
            images = torch.where(apply, adjusted, images)
        return images, masks

    def _affine(self, images, masks, u, apply):
        batch, channels, height, width = images.shape
        # positive angles turn counter-clockwise on screen (y down), as albumentations/cv2 do
        angle = _uniform(u[:, ANGLE], self.rotate) * (-math.pi / 180)
        scale_x = _uniform(u[:, SCALE], self.scale)
        scale_y = scale_x if self.keep_ratio else _uniform(u[:, SCALE_Y], self.scale_y)
        # translation in pixels (a fraction of the size), then in align_corners=True units
        tx = _uniform(u[:, TX], self.translate) * width / ((width - 1) / 2)
        ty = _uniform(u[:, TY], self.translate) * height / ((height - 1) / 2)
        # the forward map in pixel units about the centre is p' = R S p + t (S = diag(sx, sy));
        # affine_grid wants the inverse, output -> input, in normalised units:
        # D^-1 S^-1 R^-1 D (p' - t), D = diag((W-1)/2, (H-1)/2)
        cos, sin = torch.cos(angle), torch.sin(angle)
        aspect = (width - 1) / max(height - 1, 1)
        a, b = cos / scale_x, sin / scale_x / aspect
        c, d = -sin / scale_y * aspect, cos / scale_y
        theta = torch.stack(
            [
                torch.stack([a, b, -(a * tx + b * ty)], dim=1),
                torch.stack([c, d, -(c * tx + d * ty)], dim=1),
            ],
            dim=1,
        ).to(images.dtype)
        grid = F.affine_grid(theta, [batch, 1, height, width], align_corners=True)
        stacked = images if masks is None else torch.cat([images, masks.to(images.dtype)], dim=1)
        warped = F.grid_sample(
            stacked, grid, mode="bilinear", padding_mode="reflection", align_corners=True
        )
        images = torch.where(apply, warped[:, :channels], images)
        if masks is not None:
            warped_masks = (warped[:, channels:] >= 0.5).to(masks.dtype)
            masks = torch.where(apply, warped_masks, masks)
        return images, masks


# what each albumentations transform's settings must be for BatchAugment to run it exactly: the
# defaults it does not implement (anything else is refused, naming the setting)
_AFFINE_FIXED = {
    "shear": {"x": (0.0, 0.0), "y": (0.0, 0.0)},
    "translate_px": {"x": (0.0, 0.0), "y": (0.0, 0.0)},  # or None (translate_percent given)
    "fit_output": False,
    "interpolation": cv2.INTER_LINEAR,
    "border_mode": cv2.BORDER_REFLECT_101,
    "balanced_scale": False,
}
_BRIGHTNESS_CONTRAST_FIXED = {"brightness_by_max": True}
ON_DEVICE = "HorizontalFlip, Affine, RandomBrightnessContrast"


def from_albumentations(transform: Any, key: str = "data.train_transform") -> BatchAugment:
    """The `BatchAugment` that runs albumentations pipeline `transform` (a `Compose` of at most
    one each of HorizontalFlip, Affine and RandomBrightnessContrast, in any order, applied on the
    device as flip, affine, brightness/contrast) on a batch. Anything else it holds, or a setting
    of those it cannot run (shear, another border or interpolation, ...), is refused in one line
    naming `key`. Masks are warped bilinearly and thresholded at 0.5 where albumentations takes
    the nearest pixel: the same masks but on a boundary pixel."""
    import albumentations as A  # the CPU path's package; only to read the spec

    transforms = list(transform.transforms) if isinstance(transform, A.Compose) else [transform]
    if isinstance(transform, A.Compose) and transform.p < 1:
        raise ConfigError(key, f"a pipeline applied with p={transform.p} cannot run on the device")
    settings: dict[str, Any] = {"hflip_p": 0.0, "affine_p": 0.0, "brightness_contrast_p": 0.0}
    seen: set[str] = set()
    for step in transforms:
        name = type(step).__name__
        if name in seen:
            raise ConfigError(key, f"{name} twice: the device runs each transform once")
        seen.add(name)
        if isinstance(step, A.HorizontalFlip):
            settings["hflip_p"] = step.p
        elif isinstance(step, A.Affine):
            _refuse_unless(key, step, _AFFINE_FIXED)
            translate = step.translate_percent or {"x": (0.0, 0.0), "y": (0.0, 0.0)}
            settings.update(
                affine_p=step.p,
                translate_percent=translate["x"],
                scale=step.scale["x"],
                rotate=step.rotate,
                keep_ratio=step.keep_ratio,
            )
            if _plain(translate["y"]) != _plain(translate["x"]):
                raise ConfigError(key, "Affine: the device translates x and y in one range")
            if not step.keep_ratio:
                settings["scale_y"] = step.scale["y"]
            elif _plain(step.scale["y"]) != _plain(step.scale["x"]):
                raise ConfigError(key, "Affine: keep_ratio with two scale ranges")
        elif isinstance(step, A.RandomBrightnessContrast):
            _refuse_unless(key, step, _BRIGHTNESS_CONTRAST_FIXED)
            settings.update(
                brightness_contrast_p=step.p,
                brightness_limit=step.brightness_limit,
                contrast_limit=step.contrast_limit,
            )
        else:
            raise ConfigError(
                key,
                f"{name} cannot run on the device (data.on_device=true runs {ON_DEVICE}): "
                "drop it or set data.on_device=false",
            )
    return BatchAugment(**settings)


def _refuse_unless(key: str, step: Any, fixed: dict[str, Any]) -> None:
    for name, value in fixed.items():
        actual = getattr(step, name, value)
        if actual is not None and _plain(actual) != _plain(value):
            raise ConfigError(
                key,
                f"{type(step).__name__}({name}={actual!r}) cannot run on the device "
                f"(it runs {name}={value!r}): change it or set data.on_device=false",
            )


def _plain(value: Any) -> Any:
    """Dicts and sequences of numbers compared by value (albumentations keeps tuples or lists)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(float(v) for v in value)
    return value
