"""The image rule (issue 22): one meaning for the pixels of a file, applied by every read of an original or a
prediction in ``run``, ``score`` and ``data prepare`` (:func:`colorbench.io.images.decode` calls
:func:`displayed_rgb`; nothing else turns a file into pixels).

1. Modes: palette, CMYK, 16-bit and float files become 8-bit RGB (16-bit and float as grey levels scaled to 255).
2. Alpha: a file with an alpha channel (or a palette transparency) is composited over opaque white,
   :data:`ALPHA_BACKGROUND`, so what is scored is what a viewer shows, never the hidden RGB under transparent pixels.
3. ICC: an embedded profile is converted to sRGB with ``PIL.ImageCms`` (perceptual intent). A profile that maps
   sRGB to itself (the usual camera sRGB profiles; checked on a probe of 32^3 colours) leaves the pixels as stored;
   one that cannot be read or does not fit the image's mode leaves them as stored and marks the file
   ``icc-ignored``.
4. EXIF orientation: the image is turned upright by the transpose of its orientation tag (0x0112), the table of
   ``PIL.ImageOps.exif_transpose``. COCO instance masks are drawn in the stored grid, so label maps are turned by
   the same transpose (:func:`orient_labels`).

What the rule changed in one file is a space-separated list of tokens (``alpha icc orientation-6``; "" when it
changed nothing), recorded in the manifest's ``decoding`` column. The tokens enter the key of everything derived
from the pixels (:meth:`colorbench.data.splits.ManifestEntry.pixels_key`): a file the rule leaves alone keeps the
keys it had before the rule, one it changes is computed afresh.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms

#: Version of the rule: part of every key derived from a file the rule changed.
IMAGE_RULE_VERSION = 1
EXIF_ORIENTATION = 0x0112
#: EXIF orientation value -> the transpose that shows the image upright (ImageOps.exif_transpose's table).
ORIENTATION_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                         4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
                         6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}
#: Orientations that swap width and height.
QUARTER_TURNS = (5, 6, 7, 8)
#: What transparent pixels are composited over: opaque white.
ALPHA_BACKGROUND = (255, 255, 255)
ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")
DEEP_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
#: The rule as provenance records it (run.json ``image_rule``).
IMAGE_RULE = {"version": IMAGE_RULE_VERSION,
              "alpha": f"composited over opaque RGB {ALPHA_BACKGROUND} (white)",
              "icc": "embedded profiles converted to sRGB with PIL.ImageCms (perceptual); profiles that map sRGB to "
                     "itself leave the pixels as stored; unusable ones too, marked icc-ignored",
              "exif_orientation": "applied (ImageOps.exif_transpose's transposes); COCO label maps turned alike",
              "recorded_in": "manifest.csv column decoding: what the rule changed per file"}


@dataclass(frozen=True)
class Rule:
    """What the image rule does to one file: its orientation, whether it has transparent pixels, and its
    profile's conversion to sRGB (None: none needed; ``icc_ignored``: a profile that could not be used)."""

    orientation: int = 1
    transparent: bool = False
    icc: bytes | None = None
    icc_ignored: bool = False

    @property
    def tokens(self) -> str:
        """The manifest's ``decoding`` value (module text)."""
        return " ".join(token for token, applies in (
            ("alpha", self.transparent), ("icc", self.icc is not None), ("icc-ignored", self.icc_ignored),
            (f"orientation-{self.orientation}", self.orientation != 1)) if applies)


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ALPHA_MODES or (image.mode == "P" and "transparency" in image.info)


def _transparent(image: Image.Image) -> bool:
    """Whether some pixel is less than opaque (only then does compositing change what the file shows)."""
    if not _has_alpha(image):
        return False
    alpha = image.convert("RGBA").getchannel("A") if image.mode not in ("RGBA", "LA") else image.getchannel("A")
    low = alpha.getextrema()[0]
    return isinstance(low, int | float) and low < 255


@functools.lru_cache(maxsize=64)
def _srgb_transform(profile: bytes, mode: str) -> ImageCms.ImageCmsTransform | None:
    """The transform of an embedded profile to sRGB, None when it maps a probe of 32^3 sRGB colours to themselves;
    raises ImageCms.PyCMSError (or OSError, ValueError) for a profile that cannot be used with ``mode``."""
    srgb = ImageCms.createProfile("sRGB")
    transform = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(profile)), srgb, mode, "RGB",
                                        ImageCms.Intent.PERCEPTUAL)
    if mode == "RGB":
        levels = np.linspace(0, 255, 32).round().astype(np.uint8)
        probe = Image.fromarray(np.stack(np.meshgrid(levels, levels, levels), axis=-1).reshape(256, 128, 3))
        if np.array_equal(np.asarray(ImageCms.applyTransform(probe, transform)), np.asarray(probe)):
            return None
    return transform


def _icc_mode(image: Image.Image) -> str:
    """The mode a profile is applied in: CMYK as stored, everything else after conversion to RGB."""
    return "CMYK" if image.mode == "CMYK" else "RGB"


def rule_of(image: Image.Image) -> Rule:
    """What the rule does to this loaded image (its full-size pixels decide ``transparent``)."""
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    orientation = orientation if orientation in ORIENTATION_TRANSPOSE else 1
    profile = image.info.get("icc_profile")
    icc, ignored = None, False
    if isinstance(profile, bytes) and profile and image.mode not in DEEP_MODES:
        try:
            icc = profile if _srgb_transform(profile, _icc_mode(image)) is not None else None
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            ignored = True
    return Rule(orientation, _transparent(image), icc, ignored)


def _rgb8(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB, alpha composited over :data:`ALPHA_BACKGROUND`."""
    if image.mode in DEEP_MODES:
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I") and values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255)), rgba).convert("RGB")
    return image.convert("RGB")


def apply_rule(image: Image.Image, rule: Rule) -> Image.Image:
    """``image`` (a file's pixels, possibly reduced in size) as the rule shows it: 8-bit sRGB RGB, upright."""
    if rule.icc is not None:
        transform = _srgb_transform(rule.icc, _icc_mode(image))
        source = image if image.mode == "CMYK" else _rgb8(image)
        converted = ImageCms.applyTransform(source, transform) if transform is not None else None
        rgb = converted if converted is not None else source
    else:
        rgb = _rgb8(image)
    if rule.orientation != 1:
        rgb = rgb.transpose(ORIENTATION_TRANSPOSE[rule.orientation])
    return rgb


def displayed_rgb(image: Image.Image) -> tuple[Image.Image, str]:
    """The loaded ``image`` under the rule, and the tokens of what the rule changed (the module text)."""
    rule = rule_of(image)
    return apply_rule(image, rule), rule.tokens


def orientation_of(decoding: str) -> int:
    """The EXIF orientation a manifest ``decoding`` value records (1 when the rule did not turn the image)."""
    for token in decoding.split():
        if token.startswith("orientation-"):
            return int(token.removeprefix("orientation-"))
    return 1


def orient_labels(labels: np.ndarray, decoding: str) -> np.ndarray:
    """A label map drawn in a file's stored grid (COCO instances) turned as the rule turned the image."""
    orientation = orientation_of(decoding)
    if orientation == 1:
        return labels
    return np.asarray(Image.fromarray(labels.astype(np.int32), mode="I").transpose(
        ORIENTATION_TRANSPOSE[orientation]), dtype=labels.dtype)
