"""Render the README gallery: each picture from exactly the command the README shows beside it.

Each example runs through the real command line (``python -m engine recipe=... hydra.run.dir=outputs/gallery/NAME``)
so the gallery shows exactly what a user gets. The full-size results stay in ``outputs/gallery/NAME/``; small
thumbnails for the README (long side 256 px, optimized PNG) go to ``docs/images/NAME.png``.

Run from the repository root::

    .venv/bin/python docs/make_gallery.py            # all examples
    .venv/bin/python docs/make_gallery.py class      # only some
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "outputs" / "gallery"
IMAGES = ROOT / "docs" / "images"
THUMB_SIDE = 256
MAX_BYTES = 150_000

EXAMPLES: dict[str, list[str]] = {
    "deepdream": ["recipe=deepdream", "input=chelsea", "layer=features.10", "octaves=4"],
    "deepdream_grace_hopper": ["recipe=deepdream", "layer=features.14", "input=grace_hopper", "lr=0.02"],
    "dream_chelsea_guided_hubble_deep_field": [
        "recipe=deepdream",
        "input=chelsea",
        "size=384",
        "guide=hubble_deep_field",
    ],
    "class": ["recipe=class", "target=flamingo"],
    "class_maco": ["recipe=class", "target=flamingo", "param=maco"],
    "class_cppn": ["recipe=class", "target=flamingo", "param=cppn"],
    "class_classic": ["recipe=class_classic", "target=flamingo"],
    "facets": ["recipe=facets", "target=espresso", "k=4"],
    "neuron_alpha": ["recipe=neuron", "layer=features.10", "channel=7", "param=alpha"],
    "channel": ["recipe=channel", "layer=features.10", "channel=7"],
    "channel_features14": ["recipe=channel", "layer=features.14", "channel=42"],
    "neuron": ["recipe=neuron", "layer=features.10", "channel=7"],
    "layer_atlas": ["recipe=layer_atlas", "layer=features.10", "channels=0:16"],
    "dream_zoom": ["recipe=dream_zoom", "input=chelsea", "frames=48", "zoom=1.03"],
    "style_video": ["recipe=style_video", "input=clip", "style=hubble_deep_field"],
    "dream_video": ["recipe=dream_video", "input=clip"],
    "interpolate": ["recipe=interpolate", "layer=features.10", "from=7", "to=42", "frames=8"],
    "interpolate_classes": ["recipe=interpolate", "from=class:flamingo", "to=class:goldfish", "frames=6"],
    "style": ["recipe=style", "content=grace_hopper", "style=ihc"],
    "style_luminance": ["recipe=style", "colors=luminance"],
    "style_blend": ["recipe=style", "style=[ihc,hubble_deep_field]", "style_weights=[0.5,0.5]"],
    "style_regions": ["recipe=style", "style=[hubble_deep_field,ihc]", "mask=docs/images/mask_split.png"],
    "style_train": ["recipe=style_train", "style=ihc"],
    "style_fast": ["recipe=style_fast", "net=ihc", "input=grace_hopper"],
    "texture": ["recipe=texture", "style=ihc"],
    "texture_tiled": ["recipe=texture", "style=brick", "size=256", "seamless=true"],
    "inversion_sweep": ["recipe=inversion_sweep", "input=grace_hopper"],
    "saliency": ["recipe=saliency", "input=chelsea", "method=smoothgrad"],
    "guided_backprop": ["recipe=guided_backprop", "input=chelsea"],
    "gradcam": ["recipe=gradcam", "input=chelsea", "target=top3"],
    "faithfulness": ["recipe=faithfulness", "input=chelsea", "methods=[gradcam,scorecam,integrated]"],
    "occlusion": ["recipe=occlusion", "input=chelsea", "patch=64", "stride=16"],
    "adversarial": ["recipe=adversarial", "input=chelsea", "target=toaster", "eps=2/255"],
    "fooling": ["recipe=fooling", "target=robin", "confidence=0.99"],
    "activations": ["recipe=activations", "input=chelsea", "layer=features.3"],
    "filters": ["recipe=filters"],
    "max_patches": ["recipe=max_patches", "folder=samples", "layer=features.6", "channel=3", "top=9"],
    "embedding": ["recipe=embedding", "folder=samples", "method=tsne"],
    "neighbours": ["recipe=neighbours", "folder=samples", "query=chelsea", "k=6"],
}
"""Gallery name -> the command's keys. The README shows each picture beside ``dreamloom`` and exactly these keys
(tests/test_readme.py checks it); most are the recipe's defaults written out, so the command says what it does."""
WIDE = {
    "inversion_sweep": 768,
    "gradcam": 968,
    "neighbours": 768,
    "faithfulness": 768,
    "interpolate": 768,
    "interpolate_classes": 768,
    "adversarial": 512,
    "style_train": 640,
    "facets": 512,
    **dict.fromkeys(("saliency", "guided_backprop", "occlusion"), 400),
}
"""Sheets of several panels get a longer side than :data:`THUMB_SIDE`, so each panel stays readable."""
REPEAT = {"texture_tiled": 2}
"""Examples shown repeated n × n, so that a seamless tile shows it has no seam."""
MOVING = {"dream_zoom": 160, "style_video": 160, "dream_video": 160}
"""Examples whose ``video.gif`` is also shown, shrunk to this long side, as ``docs/images/NAME.gif``."""


def render(name: str, overrides: list[str]) -> Path:
    """Run one example through the CLI into a fresh ``outputs/gallery/NAME`` and return its picture's path."""
    folder = RUNS / name
    if folder.exists():
        shutil.rmtree(folder)
    cmd = [sys.executable, "-m", "engine", *overrides, f"hydra.run.dir={folder}"]
    print(f"$ {' '.join(cmd[1:])}", flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return folder / "image.png"


def repeat(picture: Path, n: int) -> Path:
    """Lay ``picture`` out ``n`` × ``n`` times edge to edge, next to it as ``image_NxN.png``."""
    with Image.open(picture) as img:
        sheet = Image.new("RGB", (img.width * n, img.height * n))
        for i in range(n * n):
            sheet.paste(img, ((i % n) * img.width, (i // n) * img.height))
    out = picture.with_name(f"{picture.stem}_{n}x{n}.png")
    sheet.save(out)
    return out


def thumbnail(picture: Path, out: Path, side: int = THUMB_SIDE, max_bytes: int = MAX_BYTES) -> int:
    """Save ``picture`` with its long side at ``side`` pixels as an optimized PNG; returns the file size in bytes.

    If the PNG is larger than ``max_bytes`` it is re-saved with an adaptive 256-colour palette.
    """
    with Image.open(picture) as img:
        if img.mode == "RGBA":  # a transparent picture, shown over the usual checkerboard as its run's preview is
            img = Image.open(picture.with_name("on_checkerboard.png"))
        img = img.convert("RGB")
        scale = side / max(img.size)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        small = img.resize(size, Image.Resampling.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    small.save(out, format="PNG", optimize=True)
    if out.stat().st_size > max_bytes:
        small.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            out, format="PNG", optimize=True
        )
    return out.stat().st_size


def gif_thumbnail(video: Path, out: Path, side: int, every: int = 2) -> int:
    """Every ``every``-th frame of a GIF, shrunk to ``side`` pixels on its long side, each shown ``every`` times as
    long; returns the bytes."""
    with Image.open(video) as gif:
        frames, durations = [], []
        for i in range(0, gif.n_frames, every):
            gif.seek(i)
            frame = gif.convert("RGB")
            frame.thumbnail((side, side), Image.Resampling.LANCZOS)
            frames.append(frame.quantize(colors=128, method=Image.Quantize.MEDIANCUT))
            durations.append(gif.info.get("duration", 80) * every)
    frames[0].save(out, save_all=True, append_images=frames[1:], duration=durations, loop=0, optimize=True)
    return out.stat().st_size


def main(argv: list[str] | None = None) -> None:
    """Render the chosen examples (all by default) and write their thumbnails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"examples to render: {', '.join(EXAMPLES)} (default: all)"
    )
    parser.add_argument("--thumbs-only", action="store_true", help="only remake thumbnails from existing runs")
    args = parser.parse_args(argv)
    names: list[str] = args.names or list(EXAMPLES)
    unknown = [n for n in names if n not in EXAMPLES]
    if unknown:
        parser.error(f"unknown example {', '.join(unknown)}; choose from {', '.join(EXAMPLES)}")
    for name in names:
        picture = RUNS / name / "image.png" if args.thumbs_only else render(name, EXAMPLES[name])
        if name in REPEAT:
            picture = repeat(picture, REPEAT[name])
        size = thumbnail(picture, IMAGES / f"{name}.png", WIDE.get(name, THUMB_SIDE))
        print(f"  wrote {(IMAGES / f'{name}.png').relative_to(ROOT)} ({size / 1000:.0f} KB)", flush=True)
        if name in MOVING:
            size = gif_thumbnail(RUNS / name / "video.gif", IMAGES / f"{name}.gif", MOVING[name])
            print(f"  wrote {(IMAGES / f'{name}.gif').relative_to(ROOT)} ({size / 1000:.0f} KB)", flush=True)


if __name__ == "__main__":
    main()
