"""Image file reading and writing: decoding any PIL mode to 8-bit RGB, grey-original detection, lossless
PNG output, and the resize / center-crop preprocessing of paper Sec. 5 and 7.1.

Files are untrusted: anything PIL cannot decode raises :class:`UnreadableImageError` (never another exception),
and a file declaring more than :data:`MAX_PIXELS` pixels is refused from its header, before any decoding
(:class:`TooLargeImageError`, a decompression bomb or a photo far beyond the working size). Animated files and
multi-page TIFFs are read as their first frame. EXIF orientation is deliberately not applied: COCO's instance
masks are given in the stored pixel grid.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from colorbench.core.errors import BenchError
from colorbench.core.files import atomic_write_bytes
from colorbench.core.paths import printable

#: Decoded originals are "grey" when at least this share of pixels has max-min over RGB <= GREY_SPREAD.
GREY_PIXEL_SHARE = 0.99
#: 8-bit channel spread tolerated as grey: JPEG chroma subsampling moves grey pixels by a level or two.
GREY_SPREAD = 4
RESIZE_MODES = ("resize", "center-crop")
#: tEXt chunk of every PNG colorbench writes: the sha256 of its decoded pixels (:func:`pixels_sha256`), checked
#: before a cached PNG is trusted (colorbench.io.integrity).
PIXELS_TAG = "colorbench-pixels-sha256"
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
#: Files declaring more pixels (8192 x 8192, 200x a COCO photo) are refused unread. PIL's own bomb warning
#: starts above this limit, so it is silenced: every image it would warn about is refused here with a reason.
MAX_PIXELS = 8192 * 8192
#: The grey check reads a reduced decode of at most this many pixels (JPEG draft scaling, then Image.reduce):
#: a 8192 x 8192 original costs a 2048 x 2048 check, and photos up to this size are checked at full resolution.
GREY_CHECK_PIXELS = 2048 * 2048

warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class UnreadableImageError(BenchError):
    """An image file that cannot be decoded; ``status`` is the manifest status it gives."""

    status = "unreadable"


class TooLargeImageError(UnreadableImageError):
    """An image file whose header declares more than MAX_PIXELS pixels."""

    status = "too_large"


@dataclass(frozen=True)
class ImageCheck:
    """What a scan of one original learns: its size and whether it carries colour ground truth."""

    width: int
    height: int
    status: str  # "ok" | "grayscale"
    reason: str


def _to_rgb8(image: Image.Image) -> Image.Image:
    """Convert any PIL mode (palette, CMYK, 16-bit, alpha) to 8-bit RGB."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I") and values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(values / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """An open image whose header passed the MAX_PIXELS check; every decoding failure inside the block becomes
    UnreadableImageError naming the file."""
    shown = printable(str(path))
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_PIXELS:
                raise TooLargeImageError(f"image {shown} declares {image.width}x{image.height} pixels, more than "
                                         f"the {MAX_PIXELS:,} allowed (decompression-bomb guard); not decoded")
            yield image
    except Image.DecompressionBombError as exc:
        raise TooLargeImageError(f"image {shown} refused by PIL as a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise UnreadableImageError(f"cannot decode image {shown}: {printable(str(exc))}") from exc


def open_rgb(path: Path) -> tuple[Image.Image, str]:
    """Decode ``path`` to an 8-bit RGB PIL image; also return the file's original PIL mode."""
    with _opened(path) as image:
        image.load()
        return _to_rgb8(image), image.mode


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    """Box-reduce by ``factor`` in the file's own mode (no full-size RGB copy), or after conversion for modes
    PIL cannot reduce (palette)."""
    if factor <= 1:
        return image
    try:
        return image.reduce(factor)
    except ValueError:
        return _to_rgb8(image).reduce(factor)


def check_original(path: Path) -> ImageCheck:
    """Decide whether an original has colour ground truth (raises UnreadableImageError).

    The check reads at most about GREY_CHECK_PIXELS pixels: a larger JPEG is decoded at a reduced DCT scale and
    any larger result is box-reduced. Averaging blocks keeps R=G=B pixels grey, so grey originals stay grey."""
    with _opened(path) as image:
        width, height, mode = image.width, image.height, image.mode
        factor = math.ceil(math.sqrt(width * height / GREY_CHECK_PIXELS))
        if factor > 1 and image.format == "JPEG":
            image.draft(None, (math.ceil(width / factor), math.ceil(height / factor)))
        image.load()
        if mode in GREY_MODES:
            return ImageCheck(width, height, "grayscale", f"single-channel file (PIL mode {mode})")
        rgb = _to_rgb8(_reduced(image, math.ceil(math.sqrt(image.width * image.height / GREY_CHECK_PIXELS))))
    pixels = np.asarray(rgb, dtype=np.int16)
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    share = float((spread <= GREY_SPREAD).mean())
    if share >= GREY_PIXEL_SHARE:
        reason = f"R=G=B within {GREY_SPREAD}/255 on {share:.2%} of pixels (threshold {GREY_PIXEL_SHARE:.0%})"
        return ImageCheck(width, height, "grayscale", reason)
    return ImageCheck(width, height, "ok", "")


def preprocess(image: Image.Image, size: int, mode: str) -> Image.Image:
    """Bring an image to ``size x size``: anisotropic resize (ChromaGAN, the paper's runs) or center crop.

    ``center-crop`` scales the shorter side to ``size`` and keeps the central square, so shapes are not
    distorted (the alternative that paper Sec. 7.1 proposes).
    """
    if mode == "resize":
        return image.resize((size, size), Image.Resampling.BICUBIC)
    if mode == "center-crop":
        return ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)
    raise BenchError(f"unknown resize mode {mode!r}; choose one of {', '.join(RESIZE_MODES)}")


def to_tensor_u8(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> uint8 tensor (3, H, W)."""
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def quantize(rgb: torch.Tensor) -> torch.Tensor:
    """Float RGB in [0, 1] -> uint8 with round-half-to-even, non-finite values mapped to 0 first."""
    clean = torch.nan_to_num(rgb.detach().float(), nan=0.0, posinf=1.0, neginf=0.0)
    return (clean.clamp(0, 1) * 255).round().to(torch.uint8)


def read_png_u8(path: Path) -> torch.Tensor:
    """Read any image file as a uint8 RGB tensor (3, H, W) at its own resolution."""
    image, _ = open_rgb(path)
    return to_tensor_u8(image)








def write_png(path: Path, rgb_u8: torch.Tensor, text: dict[str, str] | None = None) -> None:
    """Save a uint8 tensor (3, H, W) (or (1, H, W) grey) as a lossless PNG, atomically; ``text`` goes into
    tEXt chunks (colorbench stores each prediction's cache key there), with the pixels' :data:`PIXELS_TAG`."""
    array = rgb_u8.cpu().permute(1, 2, 0).numpy()
    _save_png(path, Image.fromarray(array[..., 0] if array.shape[2] == 1 else array), text)


def pixels_sha256(pixels: np.ndarray) -> str:
    """sha256 of an image's decoded values (8- or 16-bit) and shape, independent of the file encoding."""
    digest = hashlib.sha256(f"{pixels.shape}|".encode())
    digest.update(np.ascontiguousarray(pixels, dtype="<u2").tobytes())
    return digest.hexdigest()


def _save_png(path: Path, image: Image.Image, text: dict[str, str] | None) -> None:
    info = PngInfo()
    for key, value in {**(text or {}), PIXELS_TAG: pixels_sha256(np.asarray(image))}.items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info)
    atomic_write_bytes(path, buffer.getvalue())


def read_png_text(path: Path) -> dict[str, str]:
    """The tEXt chunks of a PNG (empty when the file is missing or unreadable)."""
    try:
        with _opened(path) as image:
            return {k: v for k, v in image.info.items() if isinstance(k, str) and isinstance(v, str)}
    except UnreadableImageError:
        return {}


def write_label_png(path: Path, labels: np.ndarray, text: dict[str, str] | None = None) -> None:
    """Save an integer label map (0..65535) as a 16-bit greyscale PNG, atomically (``text`` as in write_png)."""
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise BenchError(f"label map for {path.name} has labels outside 0..65535")
    _save_png(path, Image.fromarray(labels.astype(np.uint16)), text)


def read_label_png(path: Path) -> torch.Tensor:
    """Read a label map written by :func:`write_label_png` as int64 (H, W)."""
    with _opened(path) as image:
        return torch.from_numpy(np.asarray(image, dtype=np.int64).copy())
