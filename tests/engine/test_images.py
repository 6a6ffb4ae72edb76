"""Pictures from strangers: a header that declares more pixels than the limit is refused before any decoding."""

from __future__ import annotations

import struct
import warnings
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
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's own warning would be two more lines on stderr
        with pytest.raises(UserError, match=r"big.png' is too large to read safely .*shrink it below 89 megapixels"):
            load_image(path, "style")


@pytest.mark.parametrize("extra", [0, 1])
def test_the_limit_falls_between_its_own_count_of_pixels_and_one_more(
    extra: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pixels = int(Image.MAX_IMAGE_PIXELS) + extra  # type: ignore[arg-type]
    path = tmp_path / "long.png"
    path.write_bytes(_png_header(pixels, 1))

    def decoded(self: ImageFile.ImageFile) -> None:
        raise AssertionError("the picture was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", decoded)
    with pytest.raises(UserError if extra else AssertionError, match="too large" if extra else "was decoded"):
        load_image(path, "style")


def test_a_missing_picture_lists_the_samples_its_key_can_take() -> None:
    with pytest.raises(UserError, match="does not exist") as caught:
        load_image("no_such_picture", "input")
    assert "chelsea" in str(caught.value) and "halves" not in str(caught.value)
    with pytest.raises(UserError, match="halves"):
        load_image("no_such_mask", "mask")


def test_a_picture_of_floats_is_read_by_its_range_and_one_of_nan_is_refused(tmp_path: Path) -> None:
    """A 32-bit float TIFF holds values in [0, 1] (it read as black when divided as bytes); NaN is one line."""
    import numpy as np

    ramp = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (16, 1))
    Image.fromarray(ramp).save(tmp_path / "ramp.tif")
    picture = load_image(tmp_path / "ramp.tif")
    assert picture[0, 0, :, 0].max() < 0.01 and picture[0, 0, :, -1].min() > 0.99
    ramp[3, 3] = np.nan
    Image.fromarray(ramp).save(tmp_path / "nan.tif")
    with pytest.raises(UserError, match=r"nan\.tif' could not be read .*not numbers"):
        load_image(tmp_path / "nan.tif")


def test_a_picture_holding_nan_becomes_a_png_without_a_warning() -> None:
    """A diverged step's picture can reach a progress frame: NaN is drawn black, without numpy's cast warning."""
    import numpy as np
    import torch

    from engine.images import to_pil

    picture = torch.full((1, 3, 4, 4), float("nan"))
    picture[..., 0, 0] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels = np.asarray(to_pil(picture))
    assert pixels[0, 0].tolist() == [255, 255, 255] and int(pixels[1:].max()) == 0
