"""Style transfer at 512 px: dreamloom against a plain implementation of the same losses, in one run.

Both paint grace_hopper with the ihc sample on the packaged MobileNetV2: the model's default style layers and content
layer, Gram matrices averaged over positions, each layer's squared error relative to its target, content weight 1,
style weight 1000, Adam at lr 0.05 on sigmoid-space pixels, one 512-px pass of the same number of steps. The plain
version is what a reader of Gatys et al. (2016) writes first: torchvision's model as it comes (batch norm as separate
layers, NCHW memory), hooks on the wanted layers, the trunk cut after the deepest one. dreamloom runs its style recipe
(``octaves=1 smoothing=none transforms=none statistics=gram pyramid=1``: plain Gram matrices at the picture's own
scale and no shift, the same work).
One judge scores both final pictures.

    .venv/bin/python benchmarks/style.py [--steps 60]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torchvision

SIDE, CONTENT, STYLE = 512, "grace_hopper", "ihc"
CONTENT_LAYER = "features.13"
STYLE_LAYERS = ["features.0", "features.2.conv.0", "features.4.conv.0", "features.7.conv.0", "features.11.conv.0"]
MEAN, STD = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def pictures() -> tuple[torch.Tensor, torch.Tensor]:
    from engine.images import load_image, resize_long

    photo, painting = load_image(CONTENT), load_image(STYLE)
    photo = resize_long(photo, SIDE)
    return photo, resize_long(painting, SIDE)


class PlainStyle:
    """The textbook loop: features by forward hooks, losses summed by hand."""

    def __init__(self, weights: str) -> None:
        net = torchvision.models.mobilenet_v2()
        net.load_state_dict(torch.load(weights))
        self.trunk = net.features[:14].eval().requires_grad_(False)  # up to the content layer, the deepest
        self.feats: dict[str, torch.Tensor] = {}
        modules = dict(net.named_modules())
        for name in [CONTENT_LAYER, *STYLE_LAYERS]:
            modules[name].register_forward_hook(self._keep(name))

    def _keep(self, name: str):  # type: ignore[no-untyped-def]
        def hook(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> None:
            self.feats[name] = output

        return hook

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.feats = {}
        self.trunk((x - MEAN) / STD)
        return self.feats

    @staticmethod
    def gram(f: torch.Tensor) -> torch.Tensor:
        x = f.flatten(2)
        return x @ x.transpose(1, 2) / x.shape[-1]

    def run(self, photo: torch.Tensor, painting: torch.Tensor, steps: int) -> tuple[float, torch.Tensor]:
        with torch.no_grad():
            content_target = self.features(photo)[CONTENT_LAYER].clone()
            feats = self.features(painting)
            style_targets = {n: self.gram(feats[n]) for n in STYLE_LAYERS}
        param = torch.logit(photo.clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
        optimizer = torch.optim.Adam([param], lr=0.05)
        t0 = time.perf_counter()
        for _ in range(steps):
            optimizer.zero_grad()
            feats = self.features(torch.sigmoid(param))
            c = feats[CONTENT_LAYER]
            loss = (c - content_target).square().sum() / content_target.square().sum()
            for n in STYLE_LAYERS:
                g, t = self.gram(feats[n]), style_targets[n]
                loss = loss + 1000.0 / len(STYLE_LAYERS) * (g - t).square().sum() / t.square().sum()
            loss.backward()
            optimizer.step()
        seconds = time.perf_counter() - t0
        return seconds, torch.sigmoid(param).detach()


def run_dreamloom(steps: int) -> tuple[float, torch.Tensor]:

    from engine.configs import compose
    from engine.images import load_image
    from engine.runner import run_recipe

    overrides = ["recipe=style", f"size={SIDE}", "octaves=1", f"steps={steps}", "smoothing=none", "transforms=none"]
    overrides += ["statistics=gram", "pyramid=1"]  # the Gram loss the plain version writes out, whatever the default
    cfg = compose([*overrides, "snapshot_every=0", "device=cpu"])
    with tempfile.TemporaryDirectory() as tmp:
        seconds = float(run_recipe(cfg, Path(tmp), "style").metrics["seconds"])
        picture = load_image(Path(tmp) / "image.png")
    return seconds, picture


def judge(picture: torch.Tensor, photo: torch.Tensor, painting: torch.Tensor) -> tuple[float, float]:
    """Style distance (plain Gram) and content distance of a final picture, on dreamloom's view of the model."""
    from engine.measures import feature_distance, style_distance
    from engine.models import load_model

    view = load_model("mobilenet_v2", "IMAGENET1K_V1", device="cpu")
    return style_distance(view, STYLE_LAYERS, picture, painting), feature_distance(view, CONTENT_LAYER, picture, photo)


def main(argv: list[str] | None = None) -> None:
    from engine.models import packaged_weights

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args(argv)
    weights = packaged_weights()
    if weights is None:
        raise SystemExit("the packaged MobileNetV2 weights are missing; run make setup")
    photo, painting = pictures()
    ours_s, ours_pic = run_dreamloom(args.steps)
    plain_s, plain_pic = PlainStyle(str(weights)).run(photo, painting, args.steps)
    rows = [
        ("dreamloom", ours_s, *judge(ours_pic, photo, painting)),
        ("plain", plain_s, *judge(plain_pic, photo, painting)),
    ]
    threads = torch.get_num_threads()
    print(f"style transfer, {photo.shape[-1]}x{photo.shape[-2]} px, {args.steps} Adam steps, {threads} threads")
    print(f"{'implementation':<16} {'ms/iter':>8} {'dreamloom x':>12} {'style dist':>11} {'content dist':>13}")
    for name, seconds, sd, cd in rows:
        ms = 1000 * seconds / args.steps
        print(f"{name:<16} {ms:>8.1f} {seconds / ours_s:>12.2f} {sd:>11.4f} {cd:>13.4f}")
    print(
        json.dumps({n: {"ms_per_iter": round(1000 * s / args.steps, 2), "style": round(sd, 5)} for n, s, sd, _ in rows})
    )


if __name__ == "__main__":
    main()
