"""Hostile inputs on the read side (issues 13 and 14), image files and folders: every kind of odd or malicious image
file and image folder has a defined outcome - converted as stated, or skipped with a recorded reason, or one
clear error naming the file - never a traceback and never a file outside the declared roots.

Fixtures are generated at test time (tests/hostile_files.py). The image layer is tested through the library
(FolderSource -> build_manifest -> the data loader); COCO annotation files and the end-to-end runs are in
tests/test_hostile_coco.py.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from colorbench.core.files import file_sha256
from colorbench.data.loader import OriginalsDataset, Preprocess
from tests.hostile_files import (
    RNG,
    colour,
    encoded,
    exif_jpeg,
    folder_with,
    hidden_rgba,
    manifest_of,
    png_declaring,
    srgb_profile,
    swapped_profile,
)


def frames(fmt: str) -> bytes:
    """Two frames, red then blue: the first frame is the one read."""
    red, blue = Image.new("RGB", (8, 6), (255, 0, 0)), Image.new("RGB", (8, 6), (0, 0, 255))
    return encoded(red, fmt, save_all=True, append_images=[blue])


def ztxt_bomb() -> bytes:
    info = PngInfo()
    info.add_text("comment", "0" * 5_000_000, zip=True)  # 5 MB of text behind a few KB: PIL's text-chunk limit
    return encoded(colour(), "PNG", pnginfo=info)


def broken_crc() -> bytes:
    data = bytearray(encoded(colour(), "PNG"))
    data[20] ^= 0xFF  # inside IHDR: its CRC no longer matches
    return bytes(data)


def big(mode: str) -> bytes:
    """2500 x 2000 (5 Mpx, above the grey check's full-resolution limit), grey or colour."""
    grey = np.tile(np.linspace(0, 255, 2500, dtype=np.uint8), (2000, 1))
    array = np.dstack([grey] * 3) if mode == "grey" else np.dstack([grey, grey[::-1], np.roll(grey, 700, axis=1)])
    return encoded(Image.fromarray(array), "JPEG" if mode == "colour-jpeg" else "PNG")


@dataclass(frozen=True)
class FileCase:
    """One file dropped into an image folder beside an ordinary photo, and what the manifest must say."""

    name: str
    file: str
    content: Callable[[], bytes]
    status: str
    reason: str = ""
    size: tuple[int, int] | None = None  # (width, height) the manifest records
    first_pixel: tuple[int, int, int] | None = None
    decoding: str = ""  # what the image rule changed (colorbench.io.image_rule)


FILE_CASES = [
    FileCase("zero-byte", "empty.png", lambda: b"", "unreadable", "empty.png"),
    FileCase("truncated-png", "cut.png", lambda: encoded(colour(), "PNG")[:60], "unreadable", "cut.png"),
    FileCase("truncated-jpeg", "cut.jpg", lambda: encoded(colour(), "JPEG")[:200], "unreadable", "cut.jpg"),
    FileCase("text-as-jpeg", "notes.jpg", lambda: b"just some notes\n" * 10, "unreadable", "notes.jpg"),
    FileCase("html-as-png", "page.png", lambda: b"<html><script>alert(1)</script></html>", "unreadable"),
    FileCase("broken-crc", "crc.png", broken_crc, "unreadable"),
    FileCase("ztxt-bomb", "ztxt.png", ztxt_bomb, "unreadable", "too large"),
    FileCase("bomb-30000", "bomb.png", lambda: png_declaring(30000, 30000), "too_large", "decompression bomb"),
    FileCase("bomb-13000", "huge.png", lambda: png_declaring(13000, 13000), "too_large", "13000x13000"),
    FileCase("cmyk-jpeg", "cmyk.jpg", lambda: encoded(colour().convert("CMYK"), "JPEG"), "ok", size=(30, 20)),
    FileCase("cmyk-tiff", "cmyk.tif", lambda: encoded(colour().convert("CMYK"), "TIFF"), "ok", size=(30, 20)),
    FileCase("palette", "pal.png", lambda: encoded(colour().convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
             "ok"),
    FileCase("palette-transparent", "palt.gif", lambda: encoded(colour().convert("P"), "GIF", transparency=0), "ok",
             decoding="alpha"),
    FileCase("rgba", "rgba.png", lambda: encoded(colour().convert("RGBA"), "PNG"), "ok"),  # opaque: unchanged
    FileCase("rgba-hidden", "hidden.png", lambda: hidden_rgba((0, 200, 0)), "ok", first_pixel=(255, 255, 255),
             decoding="alpha"),
    FileCase("icc-srgb", "srgb.png", lambda: encoded(colour(), "PNG", icc_profile=srgb_profile()), "ok"),
    FileCase("icc-swapped", "swapped.png", lambda: encoded(colour(), "PNG", icc_profile=swapped_profile()), "ok",
             decoding="icc"),
    FileCase("icc-garbage", "junk.png", lambda: encoded(colour(), "PNG", icc_profile=b"not a profile" * 9), "ok",
             decoding="icc-ignored"),
    FileCase("icc-rotated-rgba", "all.png", lambda: encoded(Image.open(io.BytesIO(hidden_rgba((9, 9, 9)))), "PNG",
             icc_profile=swapped_profile(), exif=exif_of(8)), "ok", size=(20, 30), decoding="alpha icc orientation-8"),
    FileCase("la", "la.png", lambda: encoded(colour().convert("LA"), "PNG"), "grayscale", "PIL mode LA"),
    FileCase("one-bit", "bits.png", lambda: encoded(colour().convert("1"), "PNG"), "grayscale", "PIL mode 1"),
    FileCase("sixteen-bit", "deep.png", lambda: encoded(Image.fromarray(
        RNG.integers(0, 65535, (20, 30)).astype(np.uint16)), "PNG"), "grayscale", "PIL mode I"),
    FileCase("float-tiff", "float.tif", lambda: encoded(Image.fromarray(
        RNG.random((20, 30)).astype(np.float32), mode="F"), "TIFF"), "grayscale", "PIL mode F"),
    FileCase("grey-as-rgb", "grey.png", lambda: encoded(colour().convert("L").convert("RGB"), "PNG"), "grayscale",
             "R=G=B"),
    *[FileCase(f"exif-orientation-{n}", f"o{n}.jpg", functools.partial(exif_jpeg, colour(), n), "ok",
               size=(20, 30) if n >= 5 else (30, 20), decoding=f"orientation-{n}") for n in range(2, 9)],
    FileCase("exif-orientation-1", "o1.jpg", lambda: exif_jpeg(colour(), 1), "ok", size=(30, 20)),
    FileCase("exif-orientation-junk", "o99.jpg", lambda: exif_jpeg(colour(), 99), "ok", size=(30, 20)),
    FileCase("one-pixel", "dot.png", lambda: encoded(Image.new("RGB", (1, 1), (200, 30, 10)), "PNG"), "ok",
             size=(1, 1)),
    FileCase("wide", "wide.png", lambda: encoded(colour(1, 4000), "PNG"), "ok", size=(4000, 1)),
    FileCase("tall", "tall.png", lambda: encoded(colour(4000, 1), "PNG"), "ok", size=(1, 4000)),
    FileCase("animated-gif", "anim.gif", lambda: frames("GIF"), "ok", first_pixel=(255, 0, 0)),
    FileCase("animated-png", "anim.png", lambda: frames("PNG"), "ok", first_pixel=(255, 0, 0)),
    FileCase("multipage-tiff", "pages.tif", lambda: frames("TIFF"), "ok", first_pixel=(255, 0, 0)),
    FileCase("webp", "x.webp", lambda: encoded(colour(), "WEBP", lossless=True), "ok"),
    FileCase("bmp", "x.bmp", lambda: encoded(colour(), "BMP"), "ok"),
    FileCase("big-grey", "biggrey.png", lambda: big("grey"), "grayscale", size=(2500, 2000)),
    FileCase("big-colour", "bigcolour.png", lambda: big("colour"), "ok", size=(2500, 2000)),
    FileCase("big-colour-jpeg", "bigcolour.jpg", lambda: big("colour-jpeg"), "ok", size=(2500, 2000)),
]


def exif_of(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def loads(entry: object, mode: str = "resize") -> tuple[int, ...]:
    return tuple(OriginalsDataset([entry], Preprocess(16, mode))[0]["rgb_u8"].shape)  # type: ignore[list-item]


@pytest.mark.parametrize("case", FILE_CASES, ids=lambda c: c.name)
def test_image_file_kinds(case, tmp_path):
    manifest = manifest_of(folder_with(tmp_path, case.file, case.content()))
    by_file = {e.file: e for e in manifest.entries}
    assert by_file["anchor.png"].status == "ok"
    entry = by_file[case.file]
    assert (entry.status, bool(entry.reason)) == (case.status, case.status != "ok"), entry.reason
    assert case.reason in entry.reason
    assert entry.decoding == case.decoding
    assert entry.pixels_key == (entry.sha256 if not case.decoding else f"{entry.sha256}+rule1:{case.decoding}")
    assert entry.sha256 == file_sha256(entry.path)  # hashed even when it cannot be decoded
    if case.size:
        assert (entry.width, entry.height) == case.size
    if case.status == "ok":
        assert loads(entry) == loads(entry, "center-crop") == (3, 16, 16)
    if case.first_pixel:
        assert OriginalsDataset([entry], Preprocess(16, "resize"))[0]["rgb_u8"][:, 0, 0].tolist() == \
            list(case.first_pixel)


def test_folder_entries_that_are_not_image_files(tmp_path):
    """A folder named like an image and a dangling symlink are not listed; a symlink out of the folder is
    refused unread; a symlink to a photo inside the folder is read."""
    folder = folder_with(tmp_path, "real.png", encoded(colour(), "PNG"))
    (folder / "dir.png").mkdir()
    (folder / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    outside = tmp_path / "secret.png"
    colour().save(outside)
    (folder / "out.png").symlink_to(outside)
    (folder / "alias.png").symlink_to(folder / "real.png")
    by_file = {e.file: e for e in manifest_of(folder).entries}
    assert set(by_file) == {"anchor.png", "real.png", "out.png", "alias.png"}
    assert by_file["out.png"].status == "refused" and "resolves outside" in by_file["out.png"].reason
    assert by_file["out.png"].sha256 == ""  # never opened
    assert by_file["alias.png"].status == "ok"


NAME_CASES = {
    "non-utf8": (os.fsdecode(b"caf\xe9.png"), "caf\\xe9.png"),
    "newline": ("two\nlines.png", "two\\nlines.png"),
    "html": ("<b>bold<i>.png", "<b>bold<i>.png"),
    "spaces": ("my photo (1).png", "my photo (1).png"),
    "dot-stem": ("..png", "..png"),
    "long": ("x" * 240 + ".png", "x" * 240 + ".png"),
    "glob-chars": ("a**b[1].png", "a**b[1].png"),
}


@pytest.mark.parametrize("kind", NAME_CASES)
def test_odd_file_names_map_to_safe_ids(kind, tmp_path):
    name, shown = NAME_CASES[kind]
    folder = folder_with(tmp_path, name, encoded(colour(), "PNG"))
    entry = next(e for e in manifest_of(folder).entries if e.file != "anchor.png")
    assert (entry.status, entry.file) == ("ok", shown)
    assert entry.image_id not in (".", "..") and len(entry.image_id) <= 128
    assert all(c.isascii() and (c.isalnum() or c in "._@-") for c in entry.image_id)
    assert loads(entry) == (3, 16, 16)


def test_duplicate_stems_are_refused_and_stable(tmp_path):
    folder = folder_with(tmp_path, "a.png", encoded(colour(), "PNG"))
    (folder / "a.jpg").write_bytes(encoded(colour(), "JPEG"))
    first, second = manifest_of(folder), manifest_of(folder)
    assert first.csv_bytes() == second.csv_bytes()
    assert [(e.file, e.status) for e in first.entries if e.image_id == "a"] == [("a.jpg", "refused"),
                                                                                   ("a.png", "refused")]


def test_folder_path_with_glob_characters(tmp_path):
    folder = tmp_path / "shots ** [2024]"
    folder.mkdir()
    colour().save(folder / "x.png")
    assert [e.status for e in manifest_of(folder).entries] == ["ok"]


def test_manifest_hash_follows_content_that_keeps_size_and_mtime(tmp_path):
    """cp -p / touch -r: new bytes, same size and mtime. The manifest's sha256 and status must follow the bytes
    (issue 14: the scan cache keyed on (path, size, mtime) kept the old hash and the old grey decision)."""
    folder = folder_with(tmp_path, "swap.bmp", encoded(colour(), "BMP"))
    path = folder / "swap.bmp"
    before = next(e for e in manifest_of(folder).entries if e.file == "swap.bmp")
    stat = path.stat()
    path.write_bytes(encoded(colour().convert("L").convert("RGB"), "BMP"))  # same size: uncompressed BMP
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_size == stat.st_size and path.stat().st_mtime_ns == stat.st_mtime_ns
    after = next(e for e in manifest_of(folder).entries if e.file == "swap.bmp")
    assert (before.status, after.status) == ("ok", "grayscale")
    assert after.sha256 == file_sha256(path) != before.sha256


def test_damaged_scan_cache_is_recomputed(tmp_path):
    folder = folder_with(tmp_path, "x.png", encoded(colour(), "PNG"))
    clean = manifest_of(folder).csv_bytes()
    cache = Path(os.environ["COLORBENCH_CACHE"]) / "scans" / (
        hashlib.sha256(f"folder:{folder}".encode()).hexdigest()[:16] + ".json")
    rows = json.loads(cache.read_text())
    for row in rows.values():
        row["width"] = "wide"  # wrong type
    cache.write_text(json.dumps(rows))
    assert manifest_of(folder).csv_bytes() == clean
    cache.write_text("[1, 2")
    assert manifest_of(folder).csv_bytes() == clean


