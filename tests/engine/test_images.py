"""Pictures from strangers: a header that declares more pixels than the limit is refused before any decoding."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from engine.errors import UserError
from engine.images import load_image


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` RGB pixels and holds almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [10_000, 12_000, 20_000, 70_000])  # from just above the limit to past PIL's own
def test_a_picture_above_the_limit_is_refused_from_its_header(
    side: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(_png_header(side, side))

    def decoded(self: ImageFile.ImageFile) -> None:
        raise AssertionError("the picture was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)
    with pytest.raises(UserError, match=r"big.png' is too large to read safely .*shrink it below 89 megapixels"):
        load_image(path, "style")


def test_a_picture_at_the_limit_is_read(tmp_path: Path) -> None:
    side = int(Image.MAX_IMAGE_PIXELS**0.5)  # type: ignore[operator]
    path = tmp_path / "wide.png"
    Image.new("RGB", (side // 64, 64), "red").save(path)
    assert load_image(path).shape == (1, 3, 64, side // 64)


def test_a_missing_picture_lists_the_samples_its_key_can_take() -> None:
    with pytest.raises(UserError, match="does not exist") as caught:
        load_image("no_such_picture", "input")
    assert "chelsea" in str(caught.value) and "halves" not in str(caught.value)
    with pytest.raises(UserError, match="halves"):
        load_image("no_such_mask", "mask")
