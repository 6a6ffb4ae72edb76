"""Class pictures of classes with close neighbours (cats, dogs, primates): the logit alone (``log_prob=0``, the
default) against the logit plus 10 or 30 times the class's log-probability (``log_prob=10``, ``30``), on MobileNetV2
at 224 px, 256 steps, seeds 0 and 1; and the 10 classes of ``docs/class_speed.py`` with seed 0, to see what the term
costs there.

Each picture is judged as ``docs/quality.py`` judges class pictures, on 64 random crops-and-shifts: the share whose
top-1 is the class, its mean probability there, the class the crops give most often when it is not the target, and
the picture's RMS contrast and colourfulness (``quality.look``), to see what the term does to the look.

    .venv/bin/python docs/class_neighbours.py
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from quality import CROPS, class_robustness, crops_and_shifts, look, read_picture

from engine import api
from engine.models import LOGITS, ModelView, load_model

NEIGHBOURS = [281, 282, 285, 250, 248, 208, 366]
"""tabby, tiger cat, Egyptian cat, Siberian husky, Eskimo dog, Labrador retriever, gorilla."""
SPEED = [1, 31, 107, 130, 323, 437, 949, 963, 980, 985]
OUT = Path("outputs/class_neighbours")


def rival(view: ModelView, path: Path, target: int) -> str:
    """The class the crops give most often when it is not ``target`` ("-" when every crop gives ``target``)."""
    with torch.no_grad():
        top = view(crops_and_shifts(read_picture(path), CROPS, torch.Generator().manual_seed(0)))[LOGITS].argmax(-1)
    others = Counter(int(i) for i in top if int(i) != target)
    return view.categories[others.most_common(1)[0][0]] if others else "-"


def main() -> None:
    view = load_model("mobilenet_v2", "IMAGENET1K_V1")
    print(f"{'class':>22} {'seed':>4} {'log_prob':>8} {'hits':>5} {'p':>5} {'RMS':>5} {'colour':>6}  instead")
    means: dict[tuple[str, int], list[float]] = {}
    for group, classes, seeds in (("neighbours", NEIGHBOURS, (0, 1)), ("speed", SPEED, (0,))):
        for target in classes:
            for seed in seeds:
                for weight in (0, 10, 30):
                    folder = OUT / f"{target}_{seed}_{weight}"
                    if not (folder / "metrics.json").is_file():
                        api.run("class", out=folder, target=target, seed=seed, log_prob=weight)
                    _, hits, p, _ = class_robustness(view, folder / "image.png", target)
                    rms, _, colour = look(read_picture(folder / "image.png"))
                    means.setdefault((group, weight), []).extend([hits, p, rms, colour])
                    name, instead = view.categories[target], rival(view, folder / "image.png", target)
                    print(f"{name:>22} {seed:4d} {weight:8d} {hits:5.2f} {p:5.2f} {rms:5.3f} {colour:6.3f}  {instead}",
                          flush=True)  # fmt: skip
    for (group, weight), values in means.items():
        hits, p, rms, colour = (values[i::4] for i in range(4))
        print(f"{group} log_prob={weight}: hits {sum(hits) / len(hits):.2f}, p {sum(p) / len(p):.2f}, "
              f"good (hits >= 0.8) {sum(h >= 0.8 for h in hits)} of {len(hits)}, "
              f"RMS {sum(rms) / len(rms):.3f}, colourfulness {sum(colour) / len(colour):.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
