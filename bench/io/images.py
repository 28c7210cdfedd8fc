"""Image file reading and writing: decoding any PIL mode to 8-bit RGB, grey-original detection, lossless
PNG output, and the resize / center-crop preprocessing of paper Sec. 5 and 7.1.

Files are untrusted: anything PIL cannot decode raises :class:`UnreadableImageError` (never another exception),
and a file declaring more than :data:`MAX_PIXELS` pixels is refused from its header, before any decoding
(:class:`TooLargeImageError`, a decompression bomb or a photo far beyond the working size). Animated files and
multi-page TIFFs are read as their first frame. Every decode of an original or a prediction (``run``, ``score``,
``data prepare``) applies the image rule of :mod:`colorbench.io.image_rule` (EXIF orientation, alpha over white,
ICC to sRGB) through :func:`decode`, the one function that turns a file into pixels.
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
from colorbench.io.image_rule import QUARTER_TURNS, apply_rule, displayed_rgb, rule_of

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


class ChangedFileError(UnreadableImageError):
    """A file whose bytes no longer hash to the sha256 its manifest recorded: it changed during the run."""

    status = "changed"


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
    decoding: str = ""  # what the image rule changed (colorbench.io.image_rule), "" for nothing


@contextlib.contextmanager
def _opened(path: Path, sha256: str | None = None) -> Iterator[Image.Image]:
    """An open image whose header passed the MAX_PIXELS check; every decoding failure inside the block becomes
    UnreadableImageError naming the file. With ``sha256`` the file is read once into memory and decoded from those
    bytes only when they hash to it (else :class:`ChangedFileError`), so what is decoded is what was hashed."""
    shown = printable(str(path))
    try:
        source: Path | io.BytesIO = path
        if sha256 is not None:
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha256:
                raise ChangedFileError(f"image {shown} changed since its manifest was built (sha256 differs)")
            source = io.BytesIO(data)
        with Image.open(source) as image:
            if image.width * image.height > MAX_PIXELS:
                raise TooLargeImageError(f"image {shown} declares {image.width}x{image.height} pixels, more than "
                                         f"the {MAX_PIXELS:,} allowed (decompression-bomb guard); not decoded")
            yield image
    except Image.DecompressionBombError as exc:
        raise TooLargeImageError(f"image {shown} refused by PIL as a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise UnreadableImageError(f"cannot decode image {shown}: {printable(str(exc))}") from exc


@dataclass(frozen=True)
class Decoded:
    """A file as the image rule shows it: 8-bit RGB ``image``, the file's PIL ``mode``, and what the rule changed
    (``decoding``, colorbench.io.image_rule)."""

    image: Image.Image
    mode: str
    decoding: str


def decode(path: Path, sha256: str | None = None) -> Decoded:
    """Decode ``path`` under the image rule (``sha256``: refuse bytes that no longer hash to it, see _opened)."""
    with _opened(path, sha256) as image:
        image.load()
        rgb, decoding = displayed_rgb(image)
        return Decoded(rgb, image.mode, decoding)


def open_rgb(path: Path, sha256: str | None = None) -> tuple[Image.Image, str]:
    """Decode ``path`` to an 8-bit RGB PIL image under the image rule; also return the file's original PIL mode."""
    decoded = decode(path, sha256)
    return decoded.image, decoded.mode


def _reduced(image: Image.Image, factor: int) -> Image.Image:
    """Box-reduce by ``factor`` in the file's own mode (no full-size RGB copy), or in RGBA for modes PIL cannot
    reduce (palette)."""
    if factor <= 1:
        return image
    try:
        return image.reduce(factor)
    except ValueError:
        return image.convert("RGBA").reduce(factor)


def check_original(path: Path) -> ImageCheck:
    """Decide whether an original has colour ground truth (raises UnreadableImageError); the size recorded is
    that of the image as the rule shows it (turned upright).

    The check reads at most about GREY_CHECK_PIXELS pixels: a larger JPEG is decoded at a reduced DCT scale and
    any larger result is box-reduced. Averaging blocks keeps R=G=B pixels grey, so grey originals stay grey."""
    with _opened(path) as image:
        width, height, mode = image.width, image.height, image.mode
        factor = math.ceil(math.sqrt(width * height / GREY_CHECK_PIXELS))
        if factor > 1 and image.format == "JPEG":
            image.draft(None, (math.ceil(width / factor), math.ceil(height / factor)))
        image.load()
        rule = rule_of(image)
        if rule.orientation in QUARTER_TURNS:
            width, height = height, width
        if mode in GREY_MODES:
            return ImageCheck(width, height, "grayscale", f"single-channel file (PIL mode {mode})", rule.tokens)
        rgb = apply_rule(_reduced(image, math.ceil(math.sqrt(image.width * image.height / GREY_CHECK_PIXELS))), rule)
    pixels = np.asarray(rgb, dtype=np.int16)
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    share = float((spread <= GREY_SPREAD).mean())
    if share >= GREY_PIXEL_SHARE:
        reason = f"R=G=B within {GREY_SPREAD}/255 on {share:.2%} of pixels (threshold {GREY_PIXEL_SHARE:.0%})"
        return ImageCheck(width, height, "grayscale", reason, rule.tokens)
    return ImageCheck(width, height, "ok", "", rule.tokens)


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
    return to_tensor_u8(decode(path).image)


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
