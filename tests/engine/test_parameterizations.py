"""MACO, transparent and CPPN pictures: what each promises, and the render command that draws a CPPN again."""

from __future__ import annotations

import json
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cppn import coordinates, cppn, render_cppn, render_large
from engine.errors import UserError
from engine.images import checkerboard, composite
from engine.params import alpha, maco
from engine.runner import run_recipe
from engine.spectrum import SPECTRUM_FILE, load_spectrum, make_spectrum
from regularizers.transforms import Compose, random_backgrounds
from tests.helpers import command, compose_recipe


def test_the_stored_spectrum_is_what_its_script_makes() -> None:
    assert np.array_equal(make_spectrum(), np.load(SPECTRUM_FILE))


def test_the_stored_spectrum_has_the_photos_energy() -> None:
    """A picture with the stored magnitudes has, per pixel, about the energy of the photos' crops it was measured on
    (Parseval; the window shifts it a little). A window normalized by the wrong RMS gave a third of it."""
    from engine.images import load_image
    from engine.params import COLOR_CORRELATION
    from engine.spectrum import PHOTOS, SIDE, _crops

    power = torch.from_numpy(np.load(SPECTRUM_FILE)).double().square()
    energy = (power[..., 0].sum() + power[..., -1].sum() + 2 * power[..., 1:-1].sum()) / SIDE**2
    to_decorrelated = torch.linalg.inv(COLOR_CORRELATION.double())
    crops = [c[0] - c[0].mean(dim=(-2, -1), keepdim=True) for n in PHOTOS for c in _crops(load_image(n).double())]
    photos = torch.stack([torch.einsum("ij,jhw->ihw", to_decorrelated, c).square().sum() for c in crops]).mean()
    assert 0.75 < float(energy / (photos / SIDE**2)) < 1.25


def test_the_spectrum_falls_off_like_photos_at_any_size() -> None:
    for h, w in ((224, 224), (96, 160), (1024, 512)):
        m = load_spectrum(h, w)
        assert m.shape == (3, h, w // 2 + 1) and float(m[:, 0, 0].abs().max()) == 0
        low, high = float(m[0, 1:4, 1:4].mean()), float(m[0, h // 4, w // 8])
        assert low > 8 * high  # most energy in the large shapes
    # the same frequency in cycles per pixel has the same magnitude at every size
    assert torch.allclose(load_spectrum(128, 128)[:, 16, 0], load_spectrum(256, 256)[:, 32, 0], rtol=1e-3)


def test_maco_optimizes_phase_only_under_the_fixed_magnitude() -> None:
    params, image = maco((2, 3, 64, 80), generator=torch.Generator().manual_seed(0))
    (phase,) = params
    assert phase.shape == (2, 3, 64, 41) and phase.requires_grad
    before = image().detach()
    with torch.no_grad():
        phase.add_(torch.randn_like(phase))
    after = image().detach()
    assert not torch.allclose(before, after)
    assert 0 < float(after.min()) and float(after.max()) < 1
    # whatever the phase, the picture before the sigmoid has the stored magnitudes
    t = torch.logit(after.double())
    spectrum = torch.fft.rfft2(torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_mix()), t), norm="ortho").abs()
    expected = load_spectrum(64, 80).double() * 1.2 * _gain()
    inner = spectrum[..., 1:-1]  # the columns irfft2 keeps as given (not the real-only first and Nyquist ones)
    assert torch.allclose(inner, expected[None, ..., 1:-1].expand_as(inner), rtol=1e-3, atol=1e-3)


def _mix() -> torch.Tensor:
    from engine.params import COLOR_CORRELATION

    return (COLOR_CORRELATION / COLOR_CORRELATION.norm(dim=0).max()).double()


def _gain() -> float:
    from engine.params import _MACO_GAIN

    return _MACO_GAIN


def test_maco_keeps_the_phase_of_a_starting_picture() -> None:
    photo = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    params, _ = maco((1, 3, 32, 32), init=photo)
    again, _ = maco((1, 3, 32, 32), init=photo)
    assert torch.equal(params[0], again[0])
    zero, _ = maco((1, 3, 32, 32), sd=0.0)
    assert float(zero[0].detach().abs().max()) == 0


def test_alpha_adds_a_channel_whose_mean_is_bounded() -> None:
    params, image = alpha((3, 3, 40, 48), opacity=0.3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        params[-1].add_(5.0)  # push every pixel opaque: the bound scales it back
    picture = image()
    assert picture.shape == (3, 4, 40, 48)
    assert torch.allclose(picture[:, 3].mean(dim=(-2, -1)), torch.full((3,), 0.3), atol=1e-4)
    with pytest.raises(UserError, match=r"param\.opacity"):
        alpha((1, 3, 8, 8), opacity=0)


def test_the_model_sees_a_transparent_picture_over_new_backgrounds() -> None:
    compose = Compose(generator=torch.Generator().manual_seed(0))
    clear = torch.zeros(1, 4, 16, 16)  # fully transparent: only the background shows
    first, second = compose(clear), compose(clear)
    assert first.shape == (1, 3, 16, 16) and not torch.equal(first, second)
    opaque = torch.cat([torch.full((1, 3, 16, 16), 0.25), torch.ones(1, 1, 16, 16)], 1)
    assert torch.equal(compose(opaque), torch.full((1, 3, 16, 16), 0.25))
    plain = torch.rand(1, 3, 16, 16)
    assert torch.equal(compose(plain), plain)
    backgrounds = random_backgrounds(16, 8, 8, torch.Generator().manual_seed(0))
    assert backgrounds.std(dim=0).mean() > 0.1  # they differ from one another
    assert torch.equal(composite(plain, checkerboard(16, 16)), plain)


def test_a_transparent_run_writes_rgba_and_its_previews(tmp_path: Path) -> None:
    run_recipe(compose_recipe("channel", "size=40", "steps=3", "param=alpha", "device=cpu"), tmp_path, "channel")
    with Image.open(tmp_path / "image.png") as img:
        assert img.mode == "RGBA"
        opacity = np.asarray(img)[..., 3].mean() / 255
    assert opacity <= 0.5 + 1 / 255
    for name in ("on_black", "on_white", "on_checkerboard"):
        with Image.open(tmp_path / f"{name}.png") as img:
            assert img.mode == "RGB" and img.size == (40, 40)
    with Image.open(tmp_path / "on_black.png") as black, Image.open(tmp_path / "on_white.png") as white:
        assert np.asarray(black).mean() < np.asarray(white).mean()
    assert json.loads((tmp_path / "metrics.json").read_text())["top5"]


def test_alpha_refuses_to_dream_on_a_photo(tmp_path: Path) -> None:
    cfg = compose_recipe("deepdream", "size=32", "steps=1", "param=alpha", "device=cpu")
    with pytest.raises(UserError, match=r"param=alpha makes a picture from nothing.*init=noise"):
        run_recipe(cfg, tmp_path, "deepdream")


def test_a_cppn_is_one_picture_at_every_size() -> None:
    params, image = cppn((2, 3, 32, 32), generator=torch.Generator().manual_seed(0))
    assert float(image().detach().std()) == 0  # the last layer starts at zero: flat grey
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p) * 2)
    weights = [p.detach() for p in params]
    square = render_large(weights, 64, 64)
    wide = render_large(weights, 64, 128)
    assert torch.equal(wide[..., 32:96], square)  # a wider picture shows more of the same, at the same scale
    assert torch.allclose(render_cppn(weights, coordinates(600, 40)), render_large(weights, 600, 40), atol=1e-6)
    fine = torch.nn.functional.avg_pool2d(render_large(weights, 128, 128), 4)
    assert float((fine - render_large(weights, 32, 32)).abs().mean()) < 0.02


def test_a_cppn_fits_a_starting_picture(capsys: pytest.CaptureFixture[str]) -> None:
    target = torch.zeros(1, 3, 24, 24)
    target[..., :12] = 0.9  # left half bright
    _, image = cppn((1, 3, 24, 24), init=target, fit_steps=150, generator=torch.Generator().manual_seed(0))
    picture = image().detach()
    assert float(picture[..., :12].mean()) > float(picture[..., 12:].mean()) + 0.4
    err = capsys.readouterr().err  # the fit's own progress bar, so a long fit is not a silent wait
    assert "fitting the CPPN to its start [" in err and "150/150" in err


def _dreamloom(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in this process (:func:`tests.helpers.command`), answered as a finished process would be."""
    code, err = command(list(args))
    return subprocess.CompletedProcess(list(args), code, "", err)


@pytest.mark.slow
def test_render_draws_a_cppn_run_again_at_another_size(tmp_path: Path) -> None:
    run = tmp_path / "width=1"  # a folder named like a key is still the folder
    run_recipe(compose_recipe("channel", "size=32", "steps=4", "param=cppn", "device=cpu"), run, "channel")
    out = _dreamloom("render", str(run), "size=[48,96]")
    assert out.returncode == 0, out.stderr
    with Image.open(run / "image_96x48.png") as big, Image.open(run / "image.png") as small:
        assert big.size == (96, 48)
        centre = np.asarray(big.crop((24, 0, 72, 48)).resize((32, 32), Image.BILINEAR), dtype=float)
        assert np.abs(centre - np.asarray(small, dtype=float)).mean() < 12  # the same picture, wider
        assert big.text["dreamloom-config"] == small.text["dreamloom-config"]
    again = _dreamloom("render", str(run / "image.png"), "size=64")  # the picture stands for its folder
    assert again.returncode == 0 and (run / "image_64x64.png").is_file(), again.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("exists", "exists already; move it away"),
        ("not-cppn", "was not made with param=cppn"),
        ("no-weights", "holds no cppn.pt"),
        ("code-in-weights", "could not be read as a run's weights"),
        ("bad-size", "is not a size"),
        ("no-size", "render takes a run folder and one size="),
        ("scalar-weights", "is not a param=cppn run's weights"),
        ("garbage-picture", "carries no dreamloom config"),
        ("odd-weights", "is not the network its run's keys describe"),
        ("wider-weights", "is not the network its run's keys describe"),
        ("lost-picture", "has lost 000.png"),
        ("damaged-picture", "000.png' is damaged or no picture of this run"),
    ],
)
def test_render_answers_bad_input_in_one_line(tmp_path: Path, case: str, words: str) -> None:
    run = tmp_path / "run"
    param = "param=fft" if case == "not-cppn" else "param=cppn"
    batch = "batch=2" if case in ("lost-picture", "damaged-picture") else "batch=1"
    run_recipe(compose_recipe("channel", "size=32", "steps=1", param, batch, "device=cpu"), run, "channel")
    marker = tmp_path / "ran"
    if case in ("odd-weights", "wider-weights"):  # a shared folder's weights, not the network its keys describe
        weights = torch.load(run / "cppn.pt", weights_only=True)
        crafted = weights[:-1] if case == "odd-weights" else [t.repeat(4, *[1] * (t.dim() - 1)) for t in weights]
        torch.save(crafted, run / "cppn.pt")
    if case == "lost-picture":
        (run / "images" / "000.png").unlink()
    if case == "damaged-picture":
        (run / "images" / "000.png").write_bytes(b"junk")
    if case == "exists":
        Image.new("RGB", (40, 40)).save(run / "image_40x40.png")
    if case == "no-weights":
        (run / "cppn.pt").unlink()
    if case == "scalar-weights":
        torch.save([torch.tensor(1.0)] * 4, run / "cppn.pt")
    if case == "garbage-picture":
        (run / "image.png").write_bytes(b"not a picture")
    if case == "code-in-weights":  # a shared folder whose weights would run code when unpickled
        (run / "cppn.pt").write_bytes(pickle.dumps(_Touch(str(marker))))
    size = {"bad-size": ["size=big"], "no-size": []}.get(case, ["size=40"])
    before = sorted((p.name, p.stat().st_size) for p in run.iterdir())
    out = _dreamloom("render", str(run), *size)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert len(out.stderr.splitlines()) == 1 and words in out.stderr, out.stderr
    assert sorted((p.name, p.stat().st_size) for p in run.iterdir()) == before
    assert not marker.exists()


class _Touch:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize("odd", ["a=" + "0" * 300, "0" * 300 + "/image.png", "~nosuchuser=1"])
def test_render_answers_a_path_the_system_cannot_use_in_one_line(odd: str) -> None:
    code, err = command(["render", odd, "size=64"])
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("dreamloom: error: "), err
