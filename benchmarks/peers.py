"""dreamloom against torch-lucent 0.1.8 and torch-dreams 4.0.0 on the same channel visualization, in one run.

The same packaged MobileNetV2 (ImageNet weights), channel 7 of ``features.10``, a 224-px picture, the same number of
Adam steps, a Fourier-space parameterization with decorrelated colour where the tool has one, and each tool's own
standard transforms (pad, jitter, scale, rotate). For each it prints iterations per second, the ratio against
dreamloom, and the channel's mean activation on the final picture, measured by one judge (dreamloom's view of the
model, on the picture at 224 px): speed must not cost quality.

The peers need kornia 0.4.1, so they get their own environment, ``.venv-peers`` (made on first use: the peer wheels
and their light dependencies from the package registry, and this project's torch through a ``.pth`` link).

    .venv/bin/python benchmarks/peers.py [--steps 128]
"""

from __future__ import annotations

import argparse
import json
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / ".venv-peers"
PEER_PACKAGES = ["torch-lucent==0.1.8", "torch-dreams==4.0.0", "kornia==0.4.1", "decorator", "tqdm"]
PEER_EXTRAS = ["ipython", "opencv-python-headless"]
LAYER, CHANNEL, SIDE = "features.10", 7, 224

LUCENT = """
import sys, time, torch, torchvision
from lucent.optvis import objectives, param, render, transform
torch.set_num_threads(int(sys.argv[3]))
model = torchvision.models.mobilenet_v2()
model.load_state_dict(torch.load(sys.argv[1])); model.eval()
steps = int(sys.argv[2])
t0 = time.perf_counter()
images = render.render_vis(model, objectives.channel("features_10", 7),
                           lambda: param.image(224, fft=True, decorrelate=True),
                           transforms=transform.standard_transforms, thresholds=(steps,),
                           show_image=False, progress=False, fixed_image_size=224)
seconds = time.perf_counter() - t0
import numpy as np
np.save(sys.argv[4], images[-1][0])
print(seconds)
"""

DREAMS = """
import sys, time, torch, torchvision
from torch_dreams import Dreamer
torch.set_num_threads(int(sys.argv[3]))
model = torchvision.models.mobilenet_v2()
model.load_state_dict(torch.load(sys.argv[1])); model.eval()
steps = int(sys.argv[2])
dreamer = Dreamer(model, device="cpu", quiet=True)
t0 = time.perf_counter()
param = dreamer.render(layers=[model.features[10]], width=224, height=224, iters=steps, lr=9e-3,
                       custom_func=lambda outputs: -outputs[0][:, 7].mean())
seconds = time.perf_counter() - t0
import numpy as np
np.save(sys.argv[4], param.postprocess(device="cpu")[0].permute(1, 2, 0).detach().cpu().numpy())
print(seconds)
"""


def peer_python() -> Path:
    """The peers' interpreter, creating their environment first when it is missing."""
    python = PEERS / "bin" / "python"
    if python.exists():
        return python
    subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", *PEER_PACKAGES], check=True)
    subprocess.run([*pip, *PEER_EXTRAS], check=True)
    peer_site = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"], check=True, capture_output=True, text=True
    ).stdout.strip()
    # this project's torch and torchvision, after the peers' own packages (their kornia 0.4.1 wins)
    (Path(peer_site) / "dreamloom_torch.pth").write_text(site.getsitepackages()[0] + "\n")
    return python


def weights_file() -> str:
    from engine.models import packaged_weights

    path = packaged_weights()
    if path is None:
        sys.exit("the packaged MobileNetV2 weights are missing; run make setup")
    return str(path)


def run_peer(name: str, script: str, steps: int, threads: int) -> tuple[float, torch.Tensor]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "picture.npy"
        proc = subprocess.run(
            [str(peer_python()), "-c", script, weights_file(), str(steps), str(threads), str(out)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            sys.exit(f"{name} failed:\n{proc.stderr[-2000:]}")
        import numpy as np

        picture = torch.from_numpy(np.load(out)).float().permute(2, 0, 1).unsqueeze(0)
    return float(proc.stdout.strip().splitlines()[-1]), picture


def run_dreamloom(steps: int) -> tuple[float, torch.Tensor]:

    from engine.configs import compose
    from engine.images import load_image
    from engine.runner import run_recipe

    overrides = ["recipe=channel", f"layer={LAYER}", f"channel={CHANNEL}", f"size={SIDE}", f"steps={steps}"]
    cfg = compose([*overrides, "snapshot_every=0", "device=cpu"])
    with tempfile.TemporaryDirectory() as tmp:
        seconds = float(run_recipe(cfg, Path(tmp), "channel").metrics["seconds"])  # the optimization alone
        picture = load_image(Path(tmp) / "image.png")
    return seconds, picture


@torch.no_grad()
def activation(picture: torch.Tensor) -> float:
    """The judge: channel 7's mean at features.10 on the picture resized to 224 px."""
    from engine.images import resize_to
    from engine.models import load_model

    view = load_model("mobilenet_v2", "IMAGENET1K_V1", device="cpu")
    x = resize_to(picture.clamp(0, 1), (SIDE, SIDE))
    return float(view(x, [LAYER])[LAYER][0, CHANNEL].mean())


def step_flops() -> float:
    """Convolution and matrix-product FLOPs of one dreamloom step of this work (forward and backward), counted by
    torch's FLOP counter on the picture size the transforms hand the model on average."""
    from torch.utils.flop_counter import FlopCounterMode

    from engine.models import load_model

    view = load_model("mobilenet_v2", "IMAGENET1K_V1", device="cpu")
    side = SIDE + 2 * 12 - 8 - 4  # pad 12, jitter 8, scale 1 on average, jitter 4
    x = torch.rand(1, 3, side, side, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        view(x, [LAYER])[LAYER][:, CHANNEL].mean().backward()
    return float(counter.get_total_flops())


def network_rate(repeats: int = 30, batch: int = 1, side: int = SIDE + 2 * 12 - 8 - 4) -> float:
    """Pictures per second through dreamloom's network alone, forward to the layer and back, ``batch`` at a time,
    at ``side`` pixels (by default the average size the transforms hand it; best of three rounds): the most any
    tool's step could reach with this model."""
    import time

    from engine.loop import keep_freed_memory
    from engine.models import load_model

    view = load_model("mobilenet_v2", "IMAGENET1K_V1", device="cpu")
    keep_freed_memory()  # as dreamloom's loop does
    x = torch.rand(batch, 3, side, side, requires_grad=True)
    best = 0.0
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats):
            view(x, [LAYER])[LAYER][:, CHANNEL].mean().backward()
        best = max(best, batch * repeats / (time.perf_counter() - t0))
    return best


def machine_peaks(seconds: float = 2.0) -> tuple[float, float]:
    """This machine's fp32 throughput in FLOP/s on a large matrix product and on a large 3x3 convolution."""
    import time

    def rate(fn, flops: float) -> float:  # type: ignore[no-untyped-def]
        fn()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
            n += 1
        return flops * n / (time.perf_counter() - t0)

    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    conv = torch.nn.Conv2d(128, 128, 3, padding=1).requires_grad_(False)
    x = torch.rand(1, 128, 112, 112).contiguous(memory_format=torch.channels_last)
    conv = conv.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    with torch.no_grad():
        return rate(lambda: a @ b, 2 * 2048**3), rate(lambda: conv(x), 2 * 128 * 128 * 9 * 112 * 112)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each tool, taken in turn; the fastest counts")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    runs: dict[str, list[tuple[float, torch.Tensor]]] = {}
    for _ in range(args.repeats):  # in turn, so a slow spell of a shared machine falls on every tool alike
        runs.setdefault("dreamloom", []).append(run_dreamloom(args.steps))
        for name, script in (("torch-lucent 0.1.8", LUCENT), ("torch-dreams 4.0.0", DREAMS)):
            runs.setdefault(name, []).append(run_peer(name, script, args.steps, threads))
    rows = []
    for name, results in runs.items():
        seconds, picture = min(results, key=lambda r: r[0])
        rows.append((name, seconds, activation(picture)))
    ours = args.steps / rows[0][1]
    print(f"channel {CHANNEL} of {LAYER}, {SIDE} px, {args.steps} steps, {threads} threads, best of {args.repeats}")
    print(f"{'tool':<20} {'it/s':>8} {'dreamloom x':>12} {'activation':>11}")
    for name, seconds, act in rows:
        rate = args.steps / seconds
        print(f"{name:<20} {rate:>8.2f} {ours / rate:>12.2f} {act:>11.3f}")
    bound = network_rate()
    peers = {name: args.steps / seconds for name, seconds, _ in rows[1:]}
    print(
        f"the network pass alone (forward to {LAYER} and back, {SIDE + 12} px): {bound:.1f} /s, "
        + ", ".join(f"{bound / rate:.2f}x {name}" for name, rate in peers.items())
        + ": the most a step with nothing else in it could be"
    )
    flops = step_flops()
    matmul, conv = machine_peaks()
    achieved = flops * ours
    print(
        f"dreamloom: {flops / 1e9:.2f} GFLOP of convolution and matrix products a step, {achieved / 1e9:.1f} GFLOP/s; "
        f"this machine: {matmul / 1e9:.1f} GFLOP/s on a 2048^2 matrix product ({achieved / matmul:.0%} of it), "
        f"{conv / 1e9:.1f} GFLOP/s on a 128-channel 3x3 convolution ({achieved / conv:.0%} of it)"
    )
    summary = {n: {"it_per_s": round(args.steps / s, 3), "activation": round(a, 4)} for n, s, a in rows}
    summary["machine"] = {"step_gflop": round(flops / 1e9, 3), "matmul_gflops": round(matmul / 1e9, 1)}
    summary["network_alone_per_s"] = round(bound, 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
