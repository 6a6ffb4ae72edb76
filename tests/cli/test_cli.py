"""The ``dreamloom`` command in its own process: bad input gets one line and exit code 2, good input runs.

Every case runs ``python -m engine … hydra.run.dir=<its folder>/run`` in its own working folder, as a process
forked from a worker that loaded the engine once (:mod:`tests.cli.zygote`; a case that limits memory starts a fresh
interpreter instead). The table's commands start together at the first test that needs one, a few at a time; the
Ctrl-C tests start real processes, alone and afterwards, because they depend on timing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import resource
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from engine.export import read_png_config

pytestmark = pytest.mark.slow

ERROR = "dreamloom: error: "
PROGRESS = re.compile(r"^(octave \d+/\d+ )?\[[#.]+\] \d+/\d+ ")
TIMEOUT_S = 180
WORKERS = max(2, min(4, os.cpu_count() or 2))
CHANNEL = ("recipe=channel", "steps=2", "size=64", "snapshot_every=0")
DREAM = ("recipe=deepdream", "steps=2", "octaves=1", "size=64", "snapshot_every=0")
CONVERT = ("recipe=deepdream", "steps=1", "octaves=1", "size=64")
STYLE = ("recipe=style", "steps=1", "octaves=1", "size=48", "snapshot_every=0", "content={assets}/whole.png")
HW = (48, 64)
"""Height and width of every test picture; ``size=64`` keeps them as they are."""
METRICS = {
    "recipe",
    "model",
    "steps",
    "seconds",
    "iterations_per_second",
    "loss_first",
    "loss_last",
    "seed",
    "image_size",
}


@dataclass(frozen=True)
class Case:
    """One command line and the words its one-line answer must contain.

    Args:
        id: the test id, also the name of the case's working folder.
        args: overrides; ``{assets}`` stands for the folder of test pictures and checkpoints.
        expect: words the error line must contain: the problem and its fix.
        prepare: fills the working folder before the run (the run folder is ``folder / "run"``).
        file_limit: the largest file the command may write, in bytes: a disk that fills up under it.
        memory_limit: the most address space the command may take, in bytes: a machine with less memory.
    """

    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...] = ()
    prepare: Callable[[Path], None] | None = None
    file_limit: int | None = None
    memory_limit: int | None = None


@dataclass(frozen=True)
class Result:
    """What a case's command did: exit code, stderr, and every file of its working folder before the run."""

    returncode: int
    stderr: str
    folder: Path
    before: dict[str, str]

    @property
    def run(self) -> Path:
        """The run folder passed as ``hydra.run.dir``."""
        return self.folder / "run"


def digest(root: Path) -> dict[str, str]:
    """Every file's SHA-256 and every folder under ``root``, by relative path."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "<folder>"
        for p in sorted(root.rglob("*"))
    }


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"  # runs share the cores; more threads per run only wait on each other
    return env


def command(args: tuple[str, ...], run: Path, assets: Path) -> list[str]:
    """The real CLI as a user starts it, writing into ``run`` (unless the case names its own run folder)."""
    given = [a.format(assets=assets) for a in args]
    own = any(a.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for a in given)
    return [sys.executable, "-m", "engine", *given, *([] if own else [f"hydra.run.dir={run}"])]


def run_case(case: Case, assets: Path, folder: Path) -> Result:
    """Prepare the case's folder, then run its command there and wait for it: forked from a worker's loaded engine
    (:mod:`tests.cli.zygote`), or as a fresh process where the case limits memory, which the loaded engine's own
    address space would decide."""
    if case.prepare is not None:
        case.prepare(folder)
    before = digest(folder)
    argv = command(case.args, folder / "run", assets)
    if case.memory_limit is None:
        return Result(*_forked(argv[3:], folder, case.file_limit), folder, before)
    proc = subprocess.run(
        argv,
        cwd=folder,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        preexec_fn=lambda: _limit(case.file_limit, case.memory_limit),
    )
    return Result(proc.returncode, proc.stderr, folder, before)


_WORKER = threading.local()
_ZYGOTES: list[subprocess.Popen[str]] = []


def _forked(args: list[str], folder: Path, file_limit: int | None) -> tuple[int, str]:
    """``python -m engine ARGS`` in ``folder``, forked from this thread's zygote; its exit code and stderr."""
    zygote = getattr(_WORKER, "zygote", None)
    if zygote is None or zygote.poll() is not None:
        zygote = subprocess.Popen(
            [sys.executable, "-m", "tests.cli.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=Path(__file__).resolve().parents[2],
        )
        _WORKER.zygote = zygote
        _ZYGOTES.append(zygote)
    assert zygote.stdin is not None and zygote.stdout is not None
    stderr = folder.with_name(folder.name + ".stderr")  # beside the folder, whose files the case compares
    request = {"cwd": str(folder), "args": args, "stderr": str(stderr), "timeout": TIMEOUT_S, "file_limit": file_limit}
    zygote.stdin.write(json.dumps(request) + "\n")
    zygote.stdin.flush()
    line = zygote.stdout.readline()
    if not line:
        raise RuntimeError(f"the zygote ended (exit code {zygote.wait()}) before answering {args}")
    answer = json.loads(line)
    if answer["returncode"] is None:
        raise subprocess.TimeoutExpired(args, TIMEOUT_S)
    return int(answer["returncode"]), stderr.read_text()


def _limit(file_size: int | None, memory: int | None) -> None:
    """In the child: writing past ``file_size`` bytes fails with "File too large", as a full disk fails a write;
    taking more than ``memory`` bytes fails to allocate, as on a smaller machine."""
    if file_size is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    if memory is not None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def file_in_the_way(folder: Path) -> None:
    """A file where the run folder should go."""
    (folder / "run").write_text("not a folder\n")


def earlier_run(folder: Path) -> None:
    """A finished run's folder, as a user would pass by mistake as ``hydra.run.dir``."""
    run = folder / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("steps: 256\n")
    (run / "metrics.json").write_text('{"steps": 256}\n')
    (run / "dreamloom.log").write_text("")
    Image.new("RGB", (8, 8), "teal").save(run / "image.png")


ERRORS = [
    Case("input-missing", (*DREAM, "input={assets}/missing.png"), ("missing.png' does not exist", "picture path")),
    Case("input-empty-file", (*DREAM, "input={assets}/empty.png"), ("empty.png", "not a picture", "PNG, JPEG")),
    Case("input-truncated-png", (*DREAM, "input={assets}/half.png"), ("half.png", "truncated", "PNG, JPEG")),
    Case("input-truncated-jpeg", (*DREAM, "input={assets}/half.jpg"), ("half.jpg", "truncated", "PNG, JPEG")),
    Case("input-text-as-jpg", (*DREAM, "input={assets}/notes.jpg"), ("notes.jpg", "not a picture", "PNG, JPEG")),
    Case("input-folder", (*DREAM, "input={assets}/album"), ("album", "is a folder", "input=")),
    Case("unknown-recipe", ("recipe=nope",), ("unknown recipe 'nope'", "choose one of", "deepdream")),
    Case("unknown-model", ("model=nope",), ("unknown model 'nope'", "choose one of", "mobilenet_v2")),
    Case("absent-device", (*CHANNEL, "device=cuda:99"), ("device=cuda:99 cannot be used", "device=auto")),
    Case(
        "unknown-layer",
        (*CHANNEL, "layer=features.99"),
        ("no layer 'features.99'", "did you mean features.9", "recipe=layers"),
    ),
    Case(
        "unknown-class",
        ("recipe=class", "steps=2", "size=64", "target=flamingoo"),
        ("unknown class 'flamingoo'", "did you mean flamingo", "index 0-999"),
    ),
    Case(
        "class-index-out-of-range",
        ("recipe=class", "steps=2", "size=64", "target=1000"),
        ("class index 1000 is out of range", "0 to 999"),
    ),
    Case("channel-out-of-range", (*CHANNEL, "channel=5000"), ("channel 5000 is out of range", "64 channels")),
    Case("channel-not-a-number", (*CHANNEL, "channel=abc"), ("channel=abc", "whole number >= 0")),
    Case(
        "size-null-where-it-does-not-apply",
        ("recipe=gradcam", "input={assets}/whole.png", "size=null"),
        ("size=null", "does not apply", "size=224"),
    ),
    Case("zoom-rotate-infinite", ("recipe=dream_zoom", "rotate=inf"), ("rotate=inf is not valid", "at most 180")),
    Case("steps-zero", (*CHANNEL, "steps=0"), ("steps=0", "whole number > 0")),
    Case("steps-negative", (*CHANNEL, "steps=-3"), ("steps=-3", "whole number > 0")),
    Case("lr-zero", (*CHANNEL, "lr=0"), ("lr=0", "number > 0")),
    Case("lr-nan", (*CHANNEL, "lr=nan"), ("lr=nan", "number > 0")),
    Case("octaves-zero", (*CHANNEL, "octaves=0"), ("octaves=0", "whole number > 0")),
    Case("size-too-small", (*CHANNEL, "size=4"), ("[4, 4] is too small", "first octave", "16 pixels", "larger size=")),
    Case("size-zero", (*CHANNEL, "size=0"), ("size=0 is not a size", "size=224")),
    Case("size-not-a-number", (*CHANNEL, "size=abc"), ("size='abc' is not a size", "size=224")),
    Case("size-fraction", (*CHANNEL, "size=1.5"), ("size=1.5 is not a size", "whole number")),
    Case("mistyped-key", (*CHANNEL, "stpes=5"), ("recipe channel has no key 'stpes'", "did you mean steps")),
    Case(
        "key-of-another-recipe",
        ("recipe=class", "steps=2", "size=64", "layer=features.3"),
        ("recipe class has no key 'layer'", "recipe=class --help lists its keys"),
    ),
    Case(
        "sweep-of-nothing",
        ("-m", "recipe=channel", "steps=range(5,1)", "hydra.sweep.dir=sw"),
        ("sweeps over no value",),
    ),
    Case(
        "sweep-step-zero", ("-m", "recipe=channel", "steps=range(1,5,0)", "hydra.sweep.dir=sw"), ("cannot be listed",)
    ),
    Case(
        "sweep-no-job-at-once",
        ("-m", "recipe=channel", "channel=0,1", "hydra.launcher.n_jobs=0", "hydra.sweep.dir=sw"),
        ("hydra.launcher.n_jobs=0 is not valid", "1 or more"),
    ),
    Case(
        "sweep-jobs-not-a-number",
        ("-m", "recipe=channel", "channel=0,1", "hydra.launcher.n_jobs=abc", "hydra.sweep.dir=sw"),
        ("hydra.launcher.n_jobs=abc is not valid", "give it a value of that kind"),
    ),
    Case(
        "sweep-part-value-out-of-range",
        ("-m", "recipe=channel", "channel=0,1", "param.decay=1,9", "hydra.sweep.dir=sw"),
        ("param.decay=9 is not valid", "from 0 to 4"),
    ),
    Case(
        "sweep-launcher-target",
        ("-m", "recipe=channel", "channel=0,1", "hydra.launcher._target_=os.system", "hydra.sweep.dir=sw"),
        ("hydra.launcher._target_ cannot name a class for Hydra to build", "hydra/launcher=slurm"),
    ),
    Case(
        "hydra-callback-target",
        (*CHANNEL, "+hydra.callbacks.x={{_target_:os.system}}"),
        ("hydra.callbacks.x cannot name a class for Hydra to build",),
    ),
    Case(
        "sweep-and-cfg",
        ("-m", "--cfg", "job", "recipe=channel", "steps=1,2", "hydra.sweep.dir=sw"),
        ("one or the other",),
    ),
    Case("package-with-equals", ("--package=x", "recipe=channel"), ("-p and --resolve only go with --cfg",)),
    Case(
        "run-dir-reference",
        (*CHANNEL, "hydra.run.dir=out/${{y}}"),
        ("hydra.run.dir= cannot be read (Interpolation key 'y' not found); name the folder plainly",),
    ),
    Case("rerun-long-name", ("rerun", "a" * 300 + ".png"), ("is not a usable path (File name too long)",)),
    Case("huge-whole-number", (*CHANNEL, "steps=1" + "0" * 400), ("steps=1000", "is not valid; steps must be")),
    Case("diversity-of-one", ("recipe=class", "steps=2", "size=64", "diversity=10"), ("batch=1 is one", "batch=4")),
    Case(
        "diversity-layer-missing",
        ("recipe=class", "steps=2", "size=64", "model=resnet18", "model.weights=none", "batch=2", "diversity=10"),
        ("diversity_layer=features.10: model resnet18 has no layer 'features.10'", "set diversity_layer="),
    ),
    Case(
        "atlas-batch",
        ("recipe=layer_atlas", "channels=0:4", "batch=2", "steps=2", "size=64"),
        ("batch=2 would be ignored: channels= makes one picture each (4); drop batch=",),
    ),
    Case(
        "interpolate-batch",
        ("recipe=interpolate", "frames=3", "batch=4", "steps=2", "size=64"),
        ("batch=4 would be ignored: frames= makes one picture each (3)",),
    ),
    Case("added-key-nothing-reads", (*CHANNEL, "+epocs=2"), ("no key 'epocs'", "nothing reads a key added with +")),
    Case("run-folder-not-empty", CHANNEL, ("already exists and is not empty", "hydra.run.dir="), earlier_run),
    Case(
        "checkpoint-missing",
        (*CHANNEL, "model.checkpoint={assets}/nothere.pth"),
        ("model.checkpoint", "nothere.pth' does not exist", ".pth state dict"),
    ),
    Case(
        "checkpoint-not-torch",
        (*CHANNEL, "model.checkpoint={assets}/notes.jpg"),
        ("model.checkpoint", "notes.jpg' is not a torch state dict"),
    ),
    Case(
        "checkpoint-of-another-model",
        (*CHANNEL, "model.checkpoint={assets}/resnet18.pth"),
        ("resnet18.pth' does not fit model mobilenet_v2", "choose the model it came from"),
    ),
    Case(
        "checkpoint-of-nan-weights",
        (*CHANNEL, "model.checkpoint={assets}/diverged.pth"),
        ("diverged.pth' holds weights that are not numbers (1 NaN", "saved before that"),
    ),
    Case(
        "style-missing",
        (*STYLE, "style={assets}/missing.png"),
        ("style '", "missing.png' does not exist", "picture path"),
    ),
    Case("mask-missing", (*STYLE, "mask={assets}/missing.png"), ("mask '", "missing.png' does not exist")),
    Case(
        "style-weights-length",
        (*STYLE, "style=[ihc,brick]", "style_weights=[1]"),
        ("2 style pictures but 1 style_weights", "one weight per style"),
    ),
    Case(
        "style-weights-negative",
        (*STYLE, "style=[ihc,brick]", "style_weights=[-1,2]"),
        ("style_weights=[-1,2] is not valid", "list of finite numbers >= 0"),
    ),
    Case(
        "style-weights-zero-sum",
        (*STYLE, "style=[ihc,brick]", "style_weights=[0,0]"),
        ("style_weights=[0.0, 0.0]", "add up to a positive number"),
    ),
    Case("style-scale-zero", (*STYLE, "style_scale=0"), ("style_scale=0", "number > 0")),
    Case("colors-unknown", (*STYLE, "colors=sepia"), ("colors=sepia is not known", "luminance or histogram")),
    Case("smoothing-unknown", (*STYLE, "smoothing=gauss"), ("smoothing=gauss is not known", "softmax")),
    Case("statistics-unknown", (*STYLE, "statistics=moments"), ("statistics=moments is not known", "sliced")),
    Case("pyramid-zero", (*STYLE, "pyramid=0"), ("pyramid=0 is not valid", "whole number of levels from 1")),
    Case("pyramid-null", (*STYLE, "pyramid=null"), ("pyramid=null is not valid", "whole number of levels from 1")),
    Case(
        "texture-keeps-no-colors",
        ("recipe=texture", "steps=1", "size=48", "colors=luminance"),
        ("keeps a content picture's colours", "content="),
    ),
    Case(
        "mask-more-colours-than-styles",
        (*STYLE, "style=[ihc,brick]", "mask={assets}/stripes.png"),
        ("the mask has 3 colours", "2 styles", "mask_colors="),
    ),
    Case(
        "mask-colour-without-style",
        (*STYLE, "style=[ihc,brick]", "mask={assets}/stripes.png", "mask_colors=[red,lime]"),
        ("mask colour #0000ff maps to no style", "mask_colors="),
    ),
    Case("sweep-without-layers", ("recipe=inversion_sweep", "layers=[]"), ("needs layers=", "recipe=layers")),
    Case(
        "inversion-unknown-layer",
        ("recipe=inversion", "steps=1", "size=48", "layer=features.99"),
        ("no layer 'features.99'", "recipe=layers"),
    ),
    Case(
        "gradcam-not-convolutional",
        ("recipe=gradcam", "size=64", "layer=classifier.1"),
        ("classifier.1 gives (1000,), not a (C, H, W) map", "convolutional layer"),
    ),
    Case("gradcam-top0", ("recipe=gradcam", "size=64", "target=top0"), ("target=top0 is not valid", "top1")),
    Case(
        "guided-rule-unknown", ("recipe=guided_backprop", "size=64", "rule=up"), ("rule=up is not known", "deconvnet")
    ),
    Case("guide-pull-unknown", (*DREAM, "guide=coffee", "guide_pull=sideways"), ("guide_pull=sideways is not known",)),
    Case("guide-pull-no-guide", (*DREAM, "guide_pull=along"), ("shape a guided dream", "guide=PICTURE")),
    Case("guide-gain-along", (*DREAM, "guide=coffee", "guide_pull=along", "guide_gain=2"), ("takes none",)),
    Case("guide-gain-zero", (*DREAM, "guide=coffee", "guide_gain=0"), ("guide_gain=0 is not valid",)),
    Case("guide-gain-huge", (*DREAM, "guide=coffee", "guide_gain=1e30"), ("guide_gain=1e+30 is too large",)),
    Case("guide-dense-layer", (*DREAM, "guide=coffee", "layer=classifier.1"), ("not a (C, H, W) map", "position by")),
    Case("class-log-prob-negative", ("recipe=class", "size=32", "log_prob=-1"), ("log_prob=-1 is not valid",)),
    Case("facets-pool-word", ("recipe=facets", "target=tabby", "pool=abc"), ("pool=abc",)),
    Case("facets-tiny", ("recipe=facets", "target=tabby", "size=16"), ("size=16 is too small for facets",)),
    Case(
        "train-size-list", ("recipe=style_train", "size=[64,32]"), ("size=[64, 32] is not valid", "square crops' side")
    ),
    Case(
        "train-dense-style-layer",
        ("recipe=style_train", "size=64", "style_layers=[classifier.1]"),
        ("classifier.1 gives (1000,), not a (C, H, W) map", "feature maps"),
    ),
    Case("train-no-style-layers", ("recipe=style_train", "size=64", "style_layers=[]"), ("names no layer",)),
    Case("fast-folder-truncated", ("recipe=style_fast", "size=64", "input={assets}/mixed"), ("half.png", "truncated")),
    Case("fast-still-frames", ("recipe=style_fast", "size=64", "frames=2"), ("frames= shapes a clip",)),
    Case(
        "fast-still-blend",
        ("recipe=style_fast", "size=64", "blend=0.5", "flow=dis"),
        ("flow= and blend= shape a clip", "flow=null blend=null"),
    ),
    Case("facets-layer-no-channel", ("recipe=facets", "size=32", "layer=features.10"), ("add channel=N",)),
    Case(
        "facets-channel-and-target",
        ("recipe=facets", "size=32", "target=tabby", "layer=features.10", "channel=3"),
        ("target=tabby names a class",),
    ),
    Case("facets-input", ("recipe=facets", "size=32", "input=chelsea"), ("drop input=",)),
    Case("facets-init", ("recipe=facets", "size=32", "init=zeros"), ("init=zeros", "drop init=")),
    Case("facets-batch", ("recipe=facets", "size=32", "batch=3"), ("batch=3", "set k=")),
    Case(
        "facets-channel-range",
        ("recipe=facets", "size=32", "layer=features.10", "channel=9999"),
        ("channel 9999 is out of range",),
    ),
    Case("occlusion-patch-too-big", ("recipe=occlusion", "size=64", "patch=100"), ("patch=100", "0 < patch <= 43")),
    Case("eps-zero", ("recipe=adversarial", "size=64", "eps=0"), ("eps=0 is not valid", "(0, 1]", "eps=2/255")),
    Case("eps-too-big", ("recipe=adversarial", "size=64", "eps=3"), ("eps=3 is not valid", "(0, 1]")),
    Case("eps-not-a-number", ("recipe=adversarial", "size=64", "eps=small"), ("eps=small is not valid",)),
    Case("attack-unknown", ("recipe=adversarial", "size=64", "method=pgd"), ("method=pgd is not known", "fgsm")),
    Case(
        "fooling-confidence",
        ("recipe=fooling", "size=64", "confidence=1.5"),
        ("confidence=1.5 is not valid", "between 0 and 1"),
    ),
    Case(
        "filters-not-a-convolution",
        ("recipe=filters", "layer=features.0.2"),
        ("features.0.2 is a ReLU6, not a convolution", "features.0.0"),
    ),
    Case("atlas-no-channels", ("recipe=layer_atlas", "channels=9:3"), ("channels=9:3 picks no channels", "0:16")),
    Case(
        "atlas-channel-out-of-range",
        ("recipe=layer_atlas", "size=32", "steps=1", "channels=60:70"),
        ("channel 64 is out of range", "features.10"),
    ),
    Case("activations-no-input", ("recipe=activations", "input=null"), ("pass input=PICTURE", "input=chelsea")),
    Case(
        "objective-target-misspelt",
        ("recipe=neuron", "objective._target_=objectives.nueron"),
        ("objectives has no nueron", "did you mean neuron"),
    ),
    Case(
        "run-target-module-misspelt",
        ("recipe=neuron", "run._target_=recipes.visualise.render"),
        ("there is no module recipes.visualise", "run._target_"),
    ),
    Case("remove-a-key", ("recipe=channel", "~size"), ("~size would remove the key size", "give size=VALUE")),
    Case(
        "clip-a-sample-picture",
        ("recipe=style_video", "input=chelsea"),
        ("is a sample picture, not a clip", "input=clip"),
    ),
    Case("style-net-misspelt", ("recipe=style_fast", "net=ihx"), ("net=ihx does not exist (did you mean ihc?)",)),
    Case("recipe-a-path", ("recipe=../model/vgg16",), ("recipe=../model/vgg16 is not one of its options", "channel")),
    Case(
        "activations-channel-outside",
        ("recipe=activations", "channels=0:32"),
        ("channel 24", "features.3 has 24 channels", "0 to 23"),
    ),
    Case("activations-top-too-many", ("recipe=activations", "top=30"), ("the 24 channels of features.3", "top=24")),
    Case("activations-channels-and-top", ("recipe=activations", "channels=0:4", "top=4"), ("give one of them",)),
    Case(
        "folder-missing",
        ("recipe=embedding", "folder=pictures"),
        ("folder 'pictures' does not exist", "folder=samples"),
    ),
    Case("folder-empty", ("recipe=embedding", "folder={assets}/album"), ("holds no pictures", "folder=samples")),
    Case(
        "embedding-method-unknown",
        ("recipe=embedding", "folder={assets}", "method=umap"),
        ("method=umap is not known", "method=pca"),
    ),
    Case(
        "max-patches-channel-out-of-range",
        ("recipe=max_patches", "folder={assets}", "size=64", "channel=999"),
        ("channel 999 is out of range", "0 to 31"),
    ),
    Case(
        "neighbours-query-missing",
        ("recipe=neighbours", "folder={assets}", "size=64", "query={assets}/nothere.jpg"),
        ("nothere.jpg' does not exist",),
    ),
    Case("size-huge", (*STYLE, "size=60000"), ("size=60000 needs more memory", "smaller size="), memory_limit=8 << 30),
    Case("size-absurd", (*STYLE, "size=200000"), ("size=200000 is not a size", "up to 65536")),
    Case(
        "batch-huge",
        (*CHANNEL, "batch=40000"),  # its 2 GB picture is made, the step it takes is not
        ("batch=40000 at size=64 needs more memory", "smaller batch="),
        memory_limit=6 << 30,
    ),
    Case("input-huge-header", (*DREAM, "input={assets}/huge.png"), ("huge.png' is too large", "89 megapixels")),
    Case("unknown-optimizer", (*CHANNEL, "optimizer=adamw"), ("unknown optimizer 'adamw'", "adam, lbfgs")),
    Case("unknown-transforms", (*CHANNEL, "transforms=wobble"), ("unknown transforms 'wobble'", "robust")),
    Case("lr-infinite", (*CHANNEL, "lr=inf"), ("lr=inf", "number > 0")),
    Case("tv-negative", (*CHANNEL, "tv=-1"), ("tv=-1", "number >= 0")),
    Case("tile-size-too-small", (*DREAM, "tile_size=8"), ("tile_size=8", "whole number > 63")),
    Case("group-key-nan", (*CHANNEL, "optimizer.lr=nan"), ("optimizer.lr=nan is not valid", "finite number")),
    Case("group-key-text", (*CHANNEL, "param.decay=abc"), ("param.decay=abc is not valid", "finite number")),
    Case("group-key-switch", (*CHANNEL, "param.decorrelate=maybe"), ("param.decorrelate=maybe", "true or false")),
    Case("renamed-thumb", ("recipe=activations", "tile=40"), ("no key 'tile'", "renamed", "thumb=")),
    Case("renamed-seamless", (*STYLE, "tile=true"), ("no key 'tile'", "renamed", "seamless=")),
    Case("penalty-on-a-view", ("recipe=saliency", "l1=5"), ("recipe=saliency takes no penalties", "l1=5", "drop it")),
    Case("unread-input", ("recipe=fooling", "input=chelsea"), ("recipe=fooling does not read input=", "drop it")),
    Case("unread-objective", ("recipe=gradcam", "objective=x"), ("does not read objective=", "objective=x would do")),
    Case("view-too-small", ("recipe=gradcam", "size=4"), ("makes a picture 4 pixels wide and 3 high", "at least 16")),
    Case("confidence-text", ("recipe=fooling", "confidence=abc"), ("confidence=abc is not valid", "number > 0")),
    Case("octave-scale-text", (*CHANNEL, "octave_scale=abc"), ("octave_scale=abc is not valid", "number > 1")),
    Case("mask-colors-alone", (*STYLE, "mask_colors=[red]"), ("mask_colors=[red] names a mask", "mask=PICTURE")),
    Case("seed-beyond-64-bits", (*CHANNEL, "seed=99999999999999999999999"), ("seed=", "fits in 64 bits")),
    Case("style-weights-text", (*STYLE, "style_weights=[a,b]"), ("style_weights=[a,b] is not valid", "list of")),
    Case("layer-weights-nan", (*STYLE, "layer_weights=[nan,1,1,1,1]"), ("layer_weights=", "finite numbers >= 0")),
    Case("zoom-shift-text", ("recipe=dream_zoom", "shift=[a,1]"), ("shift=[a,1] is not valid", "finite numbers")),
    Case("momentum-negative", (*CHANNEL, "optimizer=sgd", "optimizer.momentum=-1"), ("momentum=-1 is not valid",)),
    Case("input-path-too-long", (*DREAM, "input=" + "x" * 300 + ".png"), ("is not a usable path", "shorter path")),
    Case("style-in-tiles", (*STYLE, "tile_size=256"), ("recipe=style", "cannot run tile by tile", "drop tile_size=")),
    Case(
        "run-folder-is-a-file", CHANNEL, ("cannot make the run folder", "is a file", "hydra.run.dir="), file_in_the_way
    ),
    Case("override-syntax", (*CHANNEL, "steps=["), ("could not read the command line", "as key=value")),
    Case("size-negative", (*CHANNEL, "size=-5"), ("size=-5 is not a size", "size=224")),
    Case("octaves-negative", (*DREAM, "octaves=-1"), ("octaves=-1 is not valid", "whole number > 0")),
    Case("lr-negative", (*CHANNEL, "lr=-0.1"), ("lr=-0.1 is not valid", "number > 0")),
    Case("lr-overflows-the-optimizer", (*CHANNEL, "lr=1e38"), ("lr=1e+38 is too high", "try lr=1e+32")),
    Case(
        "optimizer-lr-overflows",
        (*CHANNEL, "optimizer=normalized", "optimizer.lr=1e308"),
        ("optimizer.lr=1e+308 is too high", "try optimizer.lr=1e+302"),
    ),
    Case(
        "run-folder-not-writable",
        (*CHANNEL, "hydra.run.dir=/proc/dreamloom-run"),  # not even root may make a folder there
        ("cannot make the run folder '/proc/dreamloom-run'", "is not writable", "choose another hydra.run.dir="),
    ),
    Case(
        "sweep-folder-exists",
        ("-m", "recipe=channel", "channel=1,2", "steps=2", "size=64", "hydra.sweep.dir=run"),
        ("sweep folder 'run' already exists", "choose another hydra.sweep.dir="),
        earlier_run,
    ),
    Case(
        "sweep-unknown-key",
        ("-m", "recipe=channel", "stepz=2", "channel=0,1", "hydra.sweep.dir=sweep"),
        ("no key 'stepz'", "did you mean steps?"),
    ),
    Case(
        "sweep-unknown-option",
        ("-m", "recipe=channel,deepdreem", "steps=2", "hydra.sweep.dir=sweep"),
        ("unknown recipe 'deepdreem'", "did you mean deepdream?"),
    ),
    Case(
        "sweep-with-run-dir",
        ("-m", "recipe=channel", "channel=1,2", "hydra.run.dir=sweep"),
        ("hydra.run.dir= names one run's folder", "hydra.sweep.dir=DIR"),
    ),
    Case("sweep-bad-grammar", ("-m", "channel=range(0", "hydra.sweep.dir=sweep"), ("could not read the command line",)),
    Case("fooling-lr-overflows", ("recipe=fooling", "size=32", "lr=1e38"), ("lr=1e+38 is too high",)),
    Case("occlusion-chunk-zero", ("recipe=occlusion", "size=64", "chunk=0"), ("chunk=0 is not valid", "> 0")),
    Case("embedding-thumb-zero", ("recipe=embedding", "folder={assets}", "thumb=0"), ("thumb=0", "> 7")),
    Case("neighbours-k-negative", ("recipe=neighbours", "folder={assets}", "k=-1"), ("k=-1 is not valid",)),
    Case("max-patches-top-zero", ("recipe=max_patches", "folder={assets}", "top=0"), ("top=0 is not valid",)),
    Case("adversarial-magnify-text", ("recipe=adversarial", "size=64", "magnify=abc"), ("magnify=abc",)),
    Case("zoom-frames-zero", ("recipe=dream_zoom", "frames=0"), ("frames=0 is not valid", "whole number > 0")),
    Case("zoom-fps-too-high", ("recipe=dream_zoom", "fps=500"), ("fps=500 is not valid", "from 0.1 to 60")),
    Case("zoom-fps-zero", ("recipe=dream_zoom", "fps=0"), ("fps=0 is not valid", "from 0.1 to 60")),
    Case("zoom-zero", ("recipe=dream_zoom", "zoom=0"), ("zoom=0 is not valid", "zoom=1.03")),
    Case("gif-ms-negative", (*CHANNEL, "gif_ms=-80"), ("gif_ms=-80 is not valid", "from 20 to 10000")),
    Case("gif-ms-not-a-number", (*CHANNEL, "gif_ms=slow"), ("gif_ms=slow is not valid", "whole milliseconds")),
    Case("gif-frames-one", (*CHANNEL, "gif_frames=1"), ("gif_frames=1 is not valid", "whole number > 1")),
    Case("interpolate-frames-zero", ("recipe=interpolate", "frames=0"), ("frames=0 is not valid", "> 1")),
    Case(
        "interpolate-unknown-end",
        ("recipe=interpolate", "from=wobble", "size=32", "steps=1"),
        ("'wobble' is not an objective to interpolate", "features.14:42", "class:flamingo"),
    ),
    Case(
        "video-frames-zero",
        ("recipe=style_video", "input={assets}/clip.gif", "frames=0"),
        ("frames=0 is not valid", "whole number > 0"),
    ),
    Case(
        "video-fps-not-a-number",
        ("recipe=style_video", "input={assets}/clip.gif", "fps=abc"),
        ("fps=abc is not valid", "from 0.1 to 60"),
    ),
    Case("zoom-shift-not-a-pair", ("recipe=dream_zoom", "shift=[1]"), ("shift=[1] is not valid", "shift=[x,y]")),
    Case(
        "layer-deeper-than-the-size-allows",
        (*CHANNEL, "model=alexnet", "model.weights=none", "layer=features.12", "size=24"),
        ("size [24, 24] is too small for features.12 of alexnet", "larger size="),
    ),
    Case(
        "model-of-larger-sizes",  # a ViT takes any size now (resized on the way in); MaxViT still needs room
        ("recipe=class", "steps=1", "size=32", "model.name=maxvit_t", "model.weights=none"),
        ("size [32, 32] is too small for logits of maxvit_t", "use a larger size="),
    ),
    Case("video-unreadable", ("recipe=style_video", "input={assets}/notes.jpg"), ("could not be read as a GIF",)),
    Case("video-missing", ("recipe=style_video", "input={assets}/clip.mp4"), ("clip.mp4' does not exist", "GIF")),
    Case("video-still", ("recipe=style_video", "input={assets}/whole.png"), ("is a still picture", "recipe=style")),
    Case("resume-without-checkpoint", ("resume={assets}/album",), ("holds no checkpoint.pt", "checkpoint_every")),
    Case("resume-no-folder", ("resume={assets}/nothere",), ("resume=", "nothere does not exist", "earlier run")),
    Case(
        "resume-foreign-checkpoint",
        ("resume=run",),
        ("checkpoint.pt is not a checkpoint dreamloom can read", "run the recipe again"),
        lambda folder: (folder / "run").mkdir() or (folder / "run" / "checkpoint.pt").write_text("not torch\n"),
    ),
    Case("resume-with-other-keys", ("resume={assets}/album", "steps=5"), ("steps=5 would be ignored", "only resume=")),
    Case("resume-added-form", ("++resume={assets}/album", "steps=5"), ("steps=5 would be ignored", "only resume=")),
    Case(
        "disk-full",
        ("recipe=deepdream", "steps=2", "octaves=1", "size=128", "snapshot_every=0"),
        ("could not write the results", "File too large", "free some space"),
        file_limit=12_000,
    ),
    Case(  # the picture fits, its 9-frame progress GIF does not: the picture must not stay without its metrics
        "disk-full-after-the-picture",
        ("recipe=deepdream", "steps=8", "octaves=1", "size=128", "snapshot_every=1"),
        ("could not write the results", "File too large", "nothing was kept", "free some space"),
        file_limit=50_000,
    ),
    Case(  # Hydra's own .hydra/config.yaml cannot be written
        "disk-full-at-the-start",
        (*CHANNEL,),
        ("could not write the run's files", "File too large", "nothing was kept", "hydra.run.dir="),
        file_limit=400,
    ),
]
BY_ID = {case.id: case for case in ERRORS}

CONVERSIONS = [
    Case("greyscale-L", (*CONVERT, "input={assets}/grey.png")),
    Case("rgba", (*CONVERT, "input={assets}/rgba.png")),
    Case("palette-P", (*CONVERT, "input={assets}/palette.png")),
    Case("16-bit-I16", (*CONVERT, "input={assets}/grey16.png")),
    Case("cmyk-jpeg", (*CONVERT, "input={assets}/cmyk.jpg")),
]
CONTRACT = Case("contract", ("recipe=channel", "steps=2", "size=64"))
DIVERGING = Case("diverging", ("recipe=channel", "steps=20", "size=64", "optimizer=sgd", "lr=1e38"))


def _gradient() -> np.ndarray:
    """A smooth colour picture (RGB, uint8) that one DeepDream step barely changes."""
    y, x = np.mgrid[0 : HW[0], 0 : HW[1]]
    rgb = np.stack([x * 255 / (HW[1] - 1), y * 255 / (HW[0] - 1), np.full(HW, 96.0)], axis=-1)
    return rgb.round().astype(np.uint8)


def _pictures(root: Path) -> dict[str, np.ndarray]:
    """Write one picture per input mode; return the RGB each should be read as."""
    rgb = _gradient()
    grey = rgb[..., 0]
    Image.fromarray(grey).save(root / "grey.png")
    alpha = np.where(np.arange(HW[1]) < HW[1] // 2, 0, 255).astype(np.uint8)[None, :].repeat(HW[0], 0)
    Image.fromarray(np.dstack([rgb, alpha])).save(root / "rgba.png")
    on_white = np.where(alpha[..., None] == 0, 255, rgb).astype(np.uint8)
    palette = Image.fromarray(rgb).quantize(64)
    palette.save(root / "palette.png")
    wide = grey.astype(np.uint16) * 257
    Image.fromarray(wide).save(root / "grey16.png")
    Image.fromarray(rgb).convert("CMYK").save(root / "cmyk.jpg", quality=95)
    with Image.open(root / "cmyk.jpg") as cmyk:
        cmyk_rgb = np.asarray(cmyk.convert("RGB"))
    grey3 = np.repeat(grey[..., None], 3, axis=2)
    return {
        "greyscale-L": grey3,
        "rgba": on_white,
        "palette-P": np.asarray(palette.convert("RGB")),
        "16-bit-I16": grey3,
        "cmyk-jpeg": cmyk_rgb,
    }


def _huge_png_header() -> bytes:
    """A PNG that says it is 20000 x 20000 (1.2 GB once decoded) and holds almost nothing."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")
    )


def _broken_inputs(root: Path) -> None:
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*HW, 3), dtype=np.uint8))
    for suffix in ("png", "jpg"):
        whole = root / f"whole.{suffix}"
        noise.save(whole)
        data = whole.read_bytes()
        (root / f"half.{suffix}").write_bytes(data[: len(data) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "huge.png").write_bytes(_huge_png_header())
    (root / "notes.jpg").write_text("shopping list: eggs, milk, flour\n")
    (root / "album").mkdir()
    (root / "mixed").mkdir()  # one good picture and one truncated one
    for order, name in enumerate(("whole.png", "half.png")):  # the good one first: a writer that does not look
        (root / "mixed" / f"{order}_{name}").write_bytes((root / name).read_bytes())  # ahead writes it

    stripes = np.zeros((30, 21, 3), dtype=np.uint8)  # red, green and blue thirds: a mask of another size
    for i in range(3):
        stripes[:, 7 * i : 7 * (i + 1), i] = 255
    Image.fromarray(stripes).save(root / "stripes.png")


@dataclass(frozen=True)
class Assets:
    """The inputs every case reads: pictures broken and in every mode, and a ResNet-18 checkpoint.

    Args:
        root: their folder.
        rgb: what each good picture holds as RGB, by case id. Shape: ``(H, W, 3)``.
        before: :func:`digest` of the folder once written.
    """

    root: Path
    rgb: dict[str, np.ndarray]
    before: dict[str, str]


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Assets:
    """Write the inputs once for the whole module."""
    import torch
    import torchvision

    root = tmp_path_factory.mktemp("assets")
    _broken_inputs(root)
    expected = _pictures(root)
    modes = {"grey.png": "L", "rgba.png": "RGBA", "palette.png": "P", "grey16.png": "I;16", "cmyk.jpg": "CMYK"}
    for name, mode in modes.items():
        with Image.open(root / name) as img:
            assert img.mode == mode, f"{name} was saved as {img.mode}, not {mode}"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), root / "resnet18.pth")
    diverged = torchvision.models.mobilenet_v2(weights=None).state_dict()
    diverged["features.0.0.weight"][0, 0, 0, 0] = float("nan")
    torch.save(diverged, root / "diverged.pth")
    shades = [Image.new("RGB", (HW[1], HW[0]), (40 * k, 90, 200 - 40 * k)) for k in range(3)]
    shades[0].save(root / "clip.gif", save_all=True, append_images=shades[1:], duration=100, loop=0)
    return Assets(root, expected, digest(root))


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest, assets: Assets, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[Result]]]:
    """Start the command of every selected case of this module, a few at a time; hand out results by case id."""
    cases: dict[str, Case] = {}
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if isinstance(params.get("case"), Case) and item.module is request.module:
            cases.setdefault(params["case"].id, params["case"])
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    try:
        yield {
            cid: pool.submit(run_case, case, assets.root, tmp_path_factory.mktemp(cid)) for cid, case in cases.items()
        }
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for zygote in _ZYGOTES:
            if zygote.stdin is not None:
                zygote.stdin.close()
            zygote.wait(timeout=30)
        _ZYGOTES.clear()


def _one_error_line(result: Result) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, f"exit code {result.returncode}:\n{result.stderr}"
    # a failure met after the optimization (a full disk) follows its progress bars
    lines = [line for line in result.stderr.splitlines() if not PROGRESS.match(line)]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    assert lines[0].startswith(ERROR), lines[0]
    return lines[0]


@pytest.mark.parametrize("case", ERRORS, ids=lambda c: c.id)
def test_bad_input_gets_one_line_and_writes_nothing(case: Case, runs: dict[str, Future[Result]]) -> None:
    result = runs[case.id].result()
    line = _one_error_line(result)
    for words in case.expect:
        assert words in line, f"{words!r} missing from: {line}"
    assert digest(result.folder) == result.before, "the failed run wrote, changed or removed files"


@pytest.mark.parametrize(
    ("case", "fix"),
    [(BY_ID["channel-out-of-range"], "from 0 to 63"), (BY_ID["checkpoint-not-torch"], ".pth")],
    ids=["channel-out-of-range", "checkpoint-not-torch"],
)
def test_error_line_names_the_fix(case: Case, fix: str, runs: dict[str, Future[Result]]) -> None:
    line = _one_error_line(runs[case.id].result())
    assert fix in line.split(";", 1)[-1], f"no fix ({fix!r}) after the problem: {line}"


@pytest.mark.parametrize("case", CONVERSIONS, ids=lambda c: c.id)
def test_input_modes_are_converted_to_rgb(case: Case, runs: dict[str, Future[Result]], assets: Assets) -> None:
    result = runs[case.id].result()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    metrics = json.loads((result.run / "metrics.json").read_text())
    assert metrics["image_size"] == list(HW)
    with Image.open(result.run / "image.png") as img:
        assert img.mode == "RGB" and img.size == (HW[1], HW[0])
        picture = np.asarray(img, dtype=np.float64)
    error = np.abs(picture - assets.rgb[case.id]).mean()
    assert error < 4, f"the picture is {error:.1f} grey levels away from the input read as RGB"


@pytest.mark.parametrize("case", [DIVERGING], ids=lambda c: c.id)
def test_a_diverging_run_stops_and_keeps_the_last_good_picture(case: Case, runs: dict[str, Future[Result]]) -> None:
    result = runs[case.id].result()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    last = result.stderr.splitlines()[-1]
    for words in ("the loss became NaN or infinite by step 8", "lr=1e+38 is probably too high", str(result.run)):
        assert words in last, last
    metrics = json.loads((result.run / "metrics.json").read_text())
    assert "NaN" in metrics["stopped"]
    with Image.open(result.run / "image.png") as img:
        picture = np.asarray(img.convert("RGB"), dtype=np.float64)
    assert picture.std() > 0  # a real picture (the start: grey plus noise), not a blank made of NaNs


@pytest.mark.parametrize("case", [CONTRACT], ids=lambda c: c.id)
def test_a_run_writes_the_contract_files(case: Case, runs: dict[str, Future[Result]]) -> None:
    result = runs[case.id].result()
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"dreamloom: wrote {result.run.name}"  # below the working folder
    config = read_png_config(result.run / "image.png")
    assert config is not None, "image.png has no dreamloom-config text chunk"
    assert yaml.safe_load(config)["steps"] == 2
    with Image.open(result.run / "progress.gif") as gif:
        assert gif.format == "GIF"
    metrics = json.loads((result.run / "metrics.json").read_text())
    assert metrics.keys() >= METRICS
    assert (metrics["recipe"], metrics["model"], metrics["steps"], metrics["seed"]) == ("channel", "mobilenet_v2", 2, 0)
    assert metrics["image_size"] == [64, 64] and metrics["interrupted"] is False
    assert metrics["seconds"] > 0 and metrics["iterations_per_second"] > 0
    assert math.isfinite(metrics["loss_first"]) and math.isfinite(metrics["loss_last"])
    assert (result.run / ".hydra" / "config.yaml").is_file() and (result.run / ".hydra" / "overrides.yaml").is_file()


def test_no_run_changed_its_inputs(runs: dict[str, Future[Result]], assets: Assets) -> None:
    for future in runs.values():
        future.exception()  # wait for every run; their own tests report their failures
    assert digest(assets.root) == assets.before


@contextlib.contextmanager
def _ctrl_c_enabled() -> Iterator[None]:
    """Let the child see SIGINT even when this process was started with SIGINT ignored (a background job)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@dataclass
class Live:
    """A running command and the stderr lines it has printed so far."""

    proc: subprocess.Popen[str]
    lines: list[str]
    reader: threading.Thread

    def stop(self, sig: int = signal.SIGINT) -> str:
        """Press Ctrl-C (or send ``sig``), wait for the command to end, and return all it printed on stderr."""
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        finally:
            self.proc.kill()
        self.reader.join(timeout=10)
        return "".join(self.lines)


def _start(run: Path, *extra: str) -> Live:
    """Start a long channel run writing into ``run``, with a checkpoint every 5 steps (``extra``: more arguments)."""
    flags = tuple(a for a in extra if a.startswith("-"))
    args = (
        *flags,
        "recipe=channel",
        "steps=100000",
        "size=64",
        "checkpoint_every=5",
        *(a for a in extra if a not in flags),
    )
    with _ctrl_c_enabled():
        proc = subprocess.Popen(
            command(args, run, run.parent), cwd=run.parent, env=_env(), stderr=subprocess.PIPE, text=True
        )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    return Live(proc, lines, reader)


def _wait_for(ready: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not ready() and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_saves_the_picture_so_far(tmp_path: Path, sig: int) -> None:
    run = tmp_path / "run"
    live = _start(run)
    _wait_for((run / "checkpoint.pt").is_file, TIMEOUT_S)  # written at step 5: the loop is running
    assert (run / "checkpoint.pt").is_file(), f"no checkpoint within {TIMEOUT_S} s: {''.join(live.lines)}"
    stderr = live.stop(sig)
    assert "Traceback" not in stderr, stderr
    assert live.proc.returncode == 130, stderr
    last = stderr.splitlines()[-1]
    assert last.startswith("dreamloom: interrupted after") and last.endswith(f"dreamloom resume={run}"), last
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["interrupted"] is True and 5 <= metrics["steps"] < 100000
    assert read_png_config(run / "image.png") is not None
    with Image.open(run / "progress.gif") as gif:  # the frames so far: one every 8 steps, at most 100
        taken = len(range(0, metrics["steps"], 8))
        assert gif.n_frames == taken if taken <= 100 else 50 < gif.n_frames <= 100


def test_ctrl_c_before_the_first_step_writes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "run"
    live = _start(run)
    _wait_for(lambda: (run / ".hydra").is_dir(), TIMEOUT_S)
    stderr = live.stop()
    assert "Traceback" not in stderr, stderr
    assert live.proc.returncode == 130, stderr
    assert stderr.splitlines() == ["dreamloom: interrupted before any result was written; nothing was saved"], stderr
    assert not run.exists()


def test_ctrl_c_during_a_sweep_names_the_folder_of_the_jobs_begun(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    live = _start(tmp_path / "unused", "-m", "channel=0,1", "hydra.launcher.n_jobs=1", f"hydra.sweep.dir={sweep}")
    _wait_for((sweep / "0" / "checkpoint.pt").is_file, TIMEOUT_S)
    stderr = live.stop()
    assert "Traceback" not in stderr and live.proc.returncode == 130, stderr
    last = stderr.splitlines()[-1]
    assert last.startswith("dreamloom: interrupted; the 1 job(s) run or begun are in sweep ("), last
    assert "channel=0): interrupted after" in stderr and f"dreamloom resume={sweep / '0'}" in stderr, stderr
    assert "nothing was saved" not in stderr and (sweep / "0" / "image.png").is_file()
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "multirun.yaml"]  # job 1 not begun


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path: Path, sig: int, code: int) -> None:
    run = tmp_path / "run"
    live = _start(run)
    time.sleep(0.5)  # torch is still loading: no handler of the command's own yet
    stderr = live.stop(sig)
    assert "Traceback" not in stderr, stderr
    assert live.proc.returncode == code, stderr
    assert stderr.splitlines()[-1].startswith("dreamloom: interrupted"), stderr
    assert not run.exists()
