"""Measure the gallery's quality bar and print a short table.

(a) class picture: does MobileNetV2 still see the target class after 64 random crops-and-shifts (a random
    resized crop of 50-100 % of the area, then a random translation of up to 16 px with reflected borders,
    resized back to 224)? A picture that only fools the model at one exact pixel alignment fails this.
(b) DeepDream: the model's top-1 class of the original and of the dream, the mean absolute pixel change, the
    SSIM between dream and original, and the fraction of saturated pixels (any channel <= 2/255 or >= 253/255).
(c) channel / neuron pictures: the share of spectral energy above half the Nyquist frequency (radial frequency
    > 0.25 cycles per pixel, mean removed). White noise puts about 80 % of its energy there; coherent patterns
    put little. Uniform noise of the same size is measured alongside as the reference.

Every picture also gets a "look" row: RMS contrast, mean HSV saturation, Hasler-Süsstrunk colourfulness and
the clipped (saturated) pixel share of (b), to tell washed-out pictures from garish ones.

Run from the repository root after ``docs/make_gallery.py``::

    .venv/bin/python docs/quality.py
    .venv/bin/python docs/quality.py --class-run outputs/x/class --dream-run outputs/x/dd --spectral outputs/x/ch
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf
from PIL import Image
from skimage.metrics import structural_similarity

from engine.images import load_image, resize_to
from engine.measures import random_views
from engine.models import LOGITS, ModelView, load_model

ROOT = Path(__file__).resolve().parent.parent
GALLERY = ROOT / "outputs" / "gallery"
FLAMINGO = 130
CROPS = 64
SHIFT = 16
SIDE = 224


def read_picture(path: Path) -> torch.Tensor:
    """A PNG as RGB in [0, 1]. Shape: ``(1, 3, H, W)``."""
    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0)


def picture_of(run: Path) -> Path:
    """``run/image.png`` for a run folder, or the path itself for a picture."""
    return run / "image.png" if run.is_dir() else run


def label(path: Path) -> str:
    """A path as the table shows it: relative to the repository root where it lies inside it."""
    full = path.resolve()
    return str(full.relative_to(ROOT)) if full.is_relative_to(ROOT) else str(path)


def crops_and_shifts(img: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random resized crops (area 0.5-1.0, aspect 3/4-4/3) shifted by up to ``SHIFT`` px, at ``SIDE`` px
    (:func:`engine.measures.random_views`). Shape: ``(1, 3, H, W) -> (n, 3, SIDE, SIDE)``."""
    return random_views(img, n, generator, SIDE, SHIFT)


def class_robustness(view: ModelView, path: Path, target: int, seed: int = 0) -> tuple[float, float, float, float]:
    """For ``target`` on a picture: (its probability on the whole picture, share of crops whose top-1 it is,
    mean probability over the crops, mean logit margin over the crops: its logit minus the best other one)."""
    img = read_picture(path)
    batch = crops_and_shifts(img, CROPS, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        whole = view(img)[LOGITS].softmax(-1)[0, target]
        logits = view(batch)[LOGITS]
    probs = logits.softmax(-1)
    hits = (probs.argmax(-1) == target).float().mean()
    others = logits.clone()
    others[:, target] = -math.inf
    margin = (logits[:, target] - others.max(-1).values).mean()
    return float(whole), float(hits), float(probs[:, target].mean()), float(margin)


def top1(view: ModelView, img: torch.Tensor) -> tuple[str, float]:
    """The model's top class name and probability for one picture at its own size."""
    with torch.no_grad():
        probs = view(img)[LOGITS].softmax(-1)[0]
    p, i = probs.max(0)
    return view.categories[int(i)], float(p)


def saturated(img: torch.Tensor) -> float:
    """Share of pixels with any channel at or below 2/255 or at or above 253/255 (in 8-bit values)."""
    u8 = (img[0].clamp(0, 1) * 255).round()
    return float(((u8 <= 2) | (u8 >= 253)).any(0).float().mean())


def dream_stats(view: ModelView, run: Path) -> dict[str, object]:
    """Top-1 of original and dream, mean |change|, SSIM and saturated shares, for a DeepDream run folder."""
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    dream = read_picture(picture_of(run))
    original = resize_to(load_image(str(cfg.input)), tuple(dream.shape[-2:]))
    original = (original * 255).round() / 255  # compare 8-bit with 8-bit, as the PNG was written
    a = original[0].permute(1, 2, 0).numpy()
    b = dream[0].permute(1, 2, 0).numpy()
    return {
        "input": str(cfg.input),
        "layer": str(cfg.get("layer")),
        "top1_original": top1(view, original),
        "top1_dream": top1(view, dream),
        "mean_abs_change": float(np.abs(a - b).mean()),
        "ssim": float(structural_similarity(a, b, channel_axis=-1, data_range=1)),
        "saturated_original": saturated(original),
        "saturated_dream": saturated(dream),
    }


def high_frequency_share(img: torch.Tensor) -> float:
    """Share of the (mean-removed) power spectrum of the luminance above half-Nyquist (> 0.25 cycles/px)."""
    grey = (img[0] * torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)).sum(0).double()
    grey = grey - grey.mean()
    power = torch.fft.fft2(grey).abs().square()
    fy = torch.fft.fftfreq(grey.shape[0], dtype=torch.float64)[:, None]
    fx = torch.fft.fftfreq(grey.shape[1], dtype=torch.float64)[None, :]
    high = (fx.square() + fy.square()).sqrt() > 0.25
    return float(power[high].sum() / power.sum().clamp_min(1e-12))


def look(img: torch.Tensor) -> tuple[float, float, float]:
    """(RMS contrast of luminance, mean HSV saturation, Hasler-Süsstrunk colourfulness), all on [0, 1] pixels."""
    rgb = img[0].double()
    grey = (rgb * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(3, 1, 1)).sum(0)
    mx, mn = rgb.max(0).values, rgb.min(0).values
    sat = ((mx - mn) / mx.clamp_min(1e-6)).mean()
    rg, yb = rgb[0] - rgb[1], 0.5 * (rgb[0] + rgb[1]) - rgb[2]
    colourful = (rg.std().square() + yb.std().square()).sqrt() + 0.3 * (rg.mean().square() + yb.mean().square()).sqrt()
    return float(grey.std()), float(sat), float(colourful)


def main(argv: list[str] | None = None) -> None:
    """Measure the pictures and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--class-run", type=Path, nargs="*", default=[GALLERY / "class"], help="class run folders")
    parser.add_argument("--target", type=int, default=FLAMINGO, help="class index the class pictures aim at")
    parser.add_argument(
        "--dream-run",
        type=Path,
        nargs="*",
        default=[GALLERY / "deepdream", GALLERY / "deepdream_grace_hopper"],
        help="DeepDream run folders",
    )
    parser.add_argument(
        "--spectral",
        type=Path,
        nargs="*",
        default=[GALLERY / n for n in ("channel", "neuron", "channel_features14")],
        help="run folders or pictures for the spectral test",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    view = load_model("mobilenet_v2", "IMAGENET1K_V1", device="cpu")
    name = view.categories[args.target]

    print(f"(a) class pictures: top-1 == {name} ({args.target}) over {CROPS} crops-and-shifts")
    print(f"    {'picture':50} {'p(whole)':>8} {'top-1 share':>11} {'mean p':>7} {'margin':>7}")
    for run in args.class_run:
        whole, hits, mean_p, margin = class_robustness(view, picture_of(run), args.target, args.seed)
        print(f"    {label(picture_of(run)):50} {whole:8.3f} {hits:11.3f} {mean_p:7.3f} {margin:7.1f}")

    print("(b) DeepDream: original -> dream")
    for run in args.dream_run:
        s = dream_stats(view, run)
        (c0, p0), (c1, p1) = s["top1_original"], s["top1_dream"]  # type: ignore[misc]
        print(f"    {label(run)} (input={s['input']}, layer={s['layer']})")
        print(f"      top-1 original  {c0} ({p0:.2f})   top-1 dream  {c1} ({p1:.2f})")
        print(
            f"      mean |change| {s['mean_abs_change']:.3f} ({s['mean_abs_change'] * 255:.1f}/255)   "
            f"SSIM {s['ssim']:.3f}   saturated {s['saturated_original']:.3f} -> {s['saturated_dream']:.3f}"
        )

    print("(c) spectral energy above half-Nyquist (share of total, mean removed), and each picture's look")
    rows = [(label(picture_of(p)), read_picture(picture_of(p))) for p in args.spectral]
    rows.append(
        ("uniform noise (reference)", torch.rand((1, 3, SIDE, SIDE), generator=torch.Generator().manual_seed(0)))
    )
    rows += [(label(picture_of(run)), read_picture(picture_of(run))) for run in [*args.class_run, *args.dream_run]]
    print(f"    {'picture':50} {'HF share':>8} {'contrast':>8} {'satur.':>7} {'colourf.':>8} {'clipped':>7}")
    for row, img in rows:
        contrast, sat, colourful = look(img)
        hf, clipped = high_frequency_share(img), saturated(img)
        print(f"    {row:50} {hf:8.3f} {contrast:8.3f} {sat:7.3f} {colourful:8.3f} {clipped:7.3f}")


if __name__ == "__main__":
    main()
