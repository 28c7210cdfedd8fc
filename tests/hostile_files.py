"""Files for the hostile-input tests, made at test time: tiny photos, PNG headers that declare huge sizes,
image folders holding one odd entry beside an ordinary photo."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from colorbench.data.sources import FolderSource
from colorbench.data.splits import Manifest, build_manifest

RNG = np.random.default_rng(0)
COLOUR = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
SMALL = ["--size", "32", "--no-progress", "--metrics", "psnr,ssim"]


def colour(height: int = 20, width: int = 30) -> Image.Image:
    return Image.fromarray(np.resize(COLOUR, (height, width, 3)))


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` RGB pixels, with a tiny IDAT: what PIL sees of a
    decompression bomb before decoding it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def srgb_profile() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def swapped_profile() -> bytes:
    """An RGB ICC profile whose red and green primaries are sRGB's swapped (the sRGB profile with its rXYZ and
    gXYZ tag entries exchanged): converting to sRGB swaps the red and green channels, up to rounding."""
    data = bytearray(srgb_profile())
    count = struct.unpack(">I", data[128:132])[0]
    entries = {bytes(data[132 + 12 * i:136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, green = entries[b"rXYZ"], entries[b"gXYZ"]
    data[red + 4:red + 12], data[green + 4:green + 12] = data[green + 4:green + 12], data[red + 4:red + 12]
    return bytes(data)


def exif_jpeg(image: Image.Image, orientation: int, **options: object) -> bytes:
    """``image`` stored as a JPEG carrying EXIF orientation ``orientation``."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(image, "JPEG", exif=exif, **options)


def hidden_rgba(hidden: tuple[int, int, int]) -> bytes:
    """A PNG whose left half is transparent over the RGB ``hidden`` and whose right half is an opaque photo: files
    with different ``hidden`` look identical."""
    array = np.dstack([np.asarray(colour()), np.full((20, 30), 255, np.uint8)])
    array[:, :15, :3], array[:, :15, 3] = hidden, 0
    return encoded(Image.fromarray(array, mode="RGBA"), "PNG")


def folder_with(tmp_path: Path, name: str, content: bytes) -> Path:
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    colour().save(folder / "anchor.png")
    (folder / name).write_bytes(content)
    return folder


def manifest_of(folder: Path) -> Manifest:
    manifest = build_manifest(FolderSource(folder), "full", progress=False)
    manifest.csv_bytes().decode()  # the manifest always writes (no UnicodeEncodeError)
    return manifest



def one_line(err: str, *needles: str) -> str:
    """The one line a refusal printed on stderr (no traceback, no usage text; warnings and notes about other
    things may come before it), checked to hold ``needles``."""
    lines = [line for line in err.strip().splitlines() if line.strip() and not line.startswith(("warning:", "note:"))]
    assert "Traceback" not in err and len(lines) == 1, err
    assert all(needle in lines[0] for needle in needles), (needles, lines[0])
    return lines[0]


def tiny_folder(tmp_path: Path, count: int = 2) -> Path:
    """An image folder of ``count`` small colour photos (``p0.png``, ...)."""
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    for index in range(count):
        colour(20 + index, 30).save(folder / f"p{index}.png")
    return folder


def failing_opens(monkeypatch: pytest.MonkeyPatch, root: Path, code: int, after: int = 0) -> list[str]:
    """Make every ``os.open`` that creates or writes a file under ``root`` fail with ``code`` (ENOSPC: the disk
    is full; EROFS: a read-only mount) once ``after`` such opens have succeeded. Temporary files of the atomic
    writes (tempfile.mkstemp) and appending opens both go through ``os.open``; returns the paths opened."""
    real, opened = os.open, []

    def open_or_fail(path, flags, mode=0o777, *args, **kwargs):
        writes = flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        if writes and Path(os.fsdecode(path)).resolve().is_relative_to(root.resolve()):
            if len(opened) >= after:
                raise OSError(code, os.strerror(code), os.fsdecode(path))
            opened.append(os.fsdecode(path))
        return real(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_or_fail)
    return opened
