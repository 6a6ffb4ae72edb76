"""Values that are well-formed but far out of range, digits of other scripts, optimizer settings added with ``+``, and
shared files built to exhaust the reader: each is one line and exit 2 before the work starts, with no folder left."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, PngImagePlugin

import engine.runner as runner
from engine.export import CONFIG_KEY, STORED_LIMIT, check_plain_yaml, plain_yaml
from tests.helpers import assert_answered, command, compose_recipe, reads

TINY = ["size=32", "steps=1", "octaves=1", "snapshot_every=0", "device=cpu"]

REFUSED = [
    (["recipe=embedding", "method=pca", "thumb=65536"], "use thumb="),
    (["recipe=activations", "thumb=100000"], "use thumb="),
    (["recipe=filters", "thumb=100000"], "use thumb="),
    (["recipe=channel", "param=cppn", "param.depth=65536"], "depth from 1 to 32"),
    (["recipe=channel", "param=cppn", "param.width=65536"], "width from 1 to 256"),
    (["recipe=channel", "+optimizer.capturable=true"], "optimizer.capturable is not a setting"),
    (["recipe=channel", "+optimizer.differentiable=true"], "optimizer.differentiable is not a setting"),
    (["recipe=channel", "+optimizer.betas=[0.9]"], "optimizer.betas must be two numbers"),
    (["recipe=channel", "+optimizer.betas={a:1}"], "optimizer.betas must be two numbers"),
    (["recipe=channel", "+optimizer.eps=-0.0"], "optimizer.eps must be a number above 0"),
    (["recipe=channel", "+optimizer.weight_decay=1e308"], "optimizer.weight_decay must be a number from 0 to 1"),
    (["recipe=channel", "+optimizer.amsgrad=maybe"], "optimizer.amsgrad must be a switch"),
    (["recipe=channel", "optimizer=sgd", "+optimizer.betas=[0.9,0.99]"], "use weight_decay, momentum"),
    (["recipe=channel", "optimizer=lbfgs", "+optimizer.eps=0.1"], "it takes none beyond its own keys"),
    (["recipe=channel", "optimizer=normalized", "optimizer.lr=-1"], "optimizer.lr must be a number > 0"),
    (["recipe=channel", "optimizer=sgd", "optimizer.momentum=2"], "optimizer.momentum must be a number from 0 to 1"),
    (["recipe=channel", "param=cppn", "param.sd=-1"], "param.sd must be from 0 to 10"),
    (["recipe=channel", "channel=null"], "channel=null is not valid; channel must be a whole number >= 0"),
    (["recipe=neuron", "channel=null"], "channel=null is not valid; channel must be a whole number >= 0"),
    (["recipe=channel", "diversity=null"], "diversity=null is not valid; diversity must be a number >= 0"),
    (["recipe=channel", "channel='7'"], "channel='7' is not valid; channel must be a whole number >= 0 (it was given"),
    (["recipe=channel", "transforms=crops", "transforms._args_.1.low=2"], "a crop's sides must satisfy 0 < low"),
    (["recipe=style", "style_scale=1e308"], "style_scale must be a number > 0 and at most 4"),
    (["recipe=texture", "style_scale=1e5"], "style_scale must be a number > 0 and at most 4"),
    (["recipe=style_train", "style_scale=1e308"], "style_scale must be a number > 0 and at most 4"),
    (["recipe=channel", "transforms._args_.0.scales=[1e308]"], "scales must lie from 0.1 to 10"),
    (["recipe=channel", "transforms._args_.0.scales=[0]"], "scales must lie from 0.1 to 10"),
    (["recipe=channel", "transforms._args_.0.angles=[1e308]"], "angles are degrees from -360 to 360"),
    (["recipe=dream_zoom", "frames=2", "shift=[1e308,0]"], "each at most the picture's side (32)"),
    (["recipe=dream_zoom", "frames=2", "rotate=1e308"], "rotate must be a number >= -180 and at most 180"),
    (["recipe=layer_atlas", "channels='²'"], "picks no channels"),
    (["recipe=layer_atlas", "channels='٣'"], "picks no channels"),
    (["recipe=class", "target='²'"], "unknown class '²'"),
    (["recipe=layer_atlas", "channels=0:1000000000"], "picks 1000000000 channels; pick at most 256 per sheet"),
    (["recipe=interpolate", "frames=1000000000"], "frames must be a whole number > 1 and at most 256"),
    (["recipe=dream_zoom", "frames=1000000000"], "frames must be a whole number > 0 and at most 10000"),
]


def _tiny(recipe: str) -> list[str]:
    """The keys of ``TINY`` that ``recipe`` reads (it refuses the others as doing nothing)."""
    cfg = compose_recipe(recipe)
    return [a for a in TINY if reads(cfg, a.split("=", 1)[0])]


@pytest.mark.parametrize(("args", "said"), REFUSED, ids=[" ".join(a[1:]) for a, _ in REFUSED])
def test_an_out_of_range_value_is_one_line_before_the_work(args: list[str], said: str, tmp_path: Path) -> None:
    folder = tmp_path / "run"
    tiny = _tiny(args[0].split("=", 1)[1])
    code, err = command([*args, *tiny, f"hydra.run.dir={folder}"])
    assert_answered(code, err, args, folder)
    assert code == 2 and said in err, err
    assert not folder.exists()


def test_the_optimizer_settings_dreamloom_passes_on_still_reach_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["recipe=channel", "+optimizer.weight_decay=0.01", "+optimizer.betas=[0.8,0.99]", "+optimizer.amsgrad=true"]
    stepped: list[dict[str, Any]] = []

    def optimize(*args: Any, **kwargs: Any) -> Any:  # the loop, handed the optimizer the run built
        stepped.append(dict(args[5].param_groups[0]))
        return loop(*args, **kwargs)

    loop = runner.optimize
    monkeypatch.setattr(runner, "optimize", optimize)
    code, err = command([*args, *TINY, f"hydra.run.dir={tmp_path / 'run'}"])
    assert code == 0, err
    used = stepped[0]
    assert (used["weight_decay"], tuple(used["betas"]), used["amsgrad"]) == (0.01, (0.8, 0.99), True)


@pytest.mark.parametrize("recipe", ["inversion", "inversion_sweep"])
def test_a_layer_without_a_map_is_inverted_from_its_values(recipe: str, tmp_path: Path) -> None:
    """The classifier's logits are a vector, not a map; inverting them is Mahendran and Vedaldi's deepest case."""
    layer = "layer=classifier" if recipe == "inversion" else "layers=[classifier]"
    code, err = command([f"recipe={recipe}", layer, *TINY, "steps=2", f"hydra.run.dir={tmp_path / 'run'}"])
    assert code == 0, err
    assert (tmp_path / "run" / "image.png").is_file()


def test_stored_yaml_with_aliases_or_past_the_limit_is_refused_unread() -> None:
    assert plain_yaml("a: 1\nb: [x, y]") == {"a": 1, "b": ["x", "y"]}
    with pytest.raises(ValueError, match="aliases"):
        check_plain_yaml("a: &a [x, x]\nb: [*a, *a]")
    with pytest.raises(ValueError, match="longer than"):
        check_plain_yaml("a: " + "x" * STORED_LIMIT)
    check_plain_yaml("[" * 32 + "]" * 32)
    with pytest.raises(ValueError, match="nested more than 32 deep"):
        check_plain_yaml("[" * 33 + "]" * 33)


def _alias_bomb(folder: Path) -> Path:
    """Eight lines that would expand to 10⁸ values when read."""
    lines = ["a0: &a0 [x,x,x,x,x,x,x,x,x,x]"] + [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    info = PngImagePlugin.PngInfo()
    info.add_itxt(CONFIG_KEY, "\n".join(lines))
    Image.new("RGB", (8, 8)).save(folder / "alias.png", pnginfo=info)
    return folder / "alias.png"


def _deep(folder: Path) -> Path:
    """A config nested past what the YAML reader's stack holds."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(CONFIG_KEY, "a: " + "[" * 2000 + "]" * 2000)
    Image.new("RGB", (8, 8)).save(folder / "deep.png", pnginfo=info)
    return folder / "deep.png"


def _huge_text(folder: Path) -> Path:
    """A config chunk that inflates past what the PNG reader will hold."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(CONFIG_KEY, "a" * 3_000_000, zip=True)
    Image.new("RGB", (8, 8)).save(folder / "text.png", pnginfo=info)
    return folder / "text.png"


def _bomb(folder: Path) -> Path:
    """A few hundred bytes whose header claims 20000 × 20000 pixels."""
    path = folder / "bomb.png"
    Image.new("RGB", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 20000, 20000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make", [_alias_bomb, _deep, _huge_text, _bomb], ids=["aliases", "nested", "huge text", "huge header"]
)
def test_a_shared_picture_built_to_exhaust_the_reader_is_one_line(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    picture = make(tmp_path)
    code, err = command(["rerun", str(picture), f"hydra.run.dir={tmp_path / 'run'}"])
    assert_answered(code, err, ["rerun", picture.name], tmp_path / "run")
    assert code == 2 and "carries no dreamloom config" in err, err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["recipe=dream_zoom", "shift={a:1}"], "shift={a:1} is not valid; shift takes a list like [0,0]"),
        (["recipe=style", "style={a:1}"], "style={a:1} is not valid; style takes a list like [ihc]"),
        (["recipe=faithfulness", "fractions={a:1}"], "fractions takes a list like [0.1,0.3,0.5,0.7,0.9]"),
    ],
)
def test_keys_given_to_a_list_are_answered_as_the_wrong_kind_not_as_unknown(
    given: list[str], said: str, tmp_path: Path
) -> None:
    code, err = command([*given, f"hydra.run.dir={tmp_path / 'run'}"])
    assert code == 2 and said in err and "no key" not in err, err


def test_a_python_run_into_a_file_is_one_line(tmp_path: Path) -> None:
    from engine import api
    from engine.errors import UserError

    (tmp_path / "taken").write_text("mine")
    for out in (tmp_path / "taken", tmp_path / "taken" / "run"):
        with pytest.raises(UserError, match=r"is a file, not a folder; choose another out="):
            api.channel(out=out, size=32, steps=1)
    assert (tmp_path / "taken").read_text() == "mine"


@pytest.mark.parametrize("value", ["a\nb", "a\r\nb", "a\x1b[31mb"], ids=["newline", "crlf", "escape"])
def test_a_value_with_control_characters_still_gets_one_line(value: str, tmp_path: Path) -> None:
    code, err = command(["recipe=channel", f"layer={value}", *TINY, f"hydra.run.dir={tmp_path / 'run'}"])
    assert code == 2 and err.count("\n") == 1 and err.startswith("dreamloom: error: "), err
    assert "\x1b" not in err and not (tmp_path / "run").exists()


def test_a_python_value_is_never_resolved_as_an_interpolation(tmp_path: Path) -> None:
    """A service that passes a visitor's text on as a key must not hand them its environment."""
    from engine import api
    from engine.errors import UserError

    for value in ("${oc.env:HOME}", ["features.1", "${oc.env:HOME}"]):
        with pytest.raises(UserError, match=r"^layer: the value .* holds '\$\{'"):
            api.channel(layer=value, size=32, steps=1, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


FLAGS_AND_FOLDERS = [
    (["-p", "recipe", "recipe=channel"], "-p and --resolve only go with --cfg"),
    (["--resolve", "recipe=channel"], "-p and --resolve only go with --cfg"),
    (["--cfg", "job", "recipe=channel", "stpes=5"], "no key 'stpes'; did you mean steps?"),
    (["--cfg", "bogus", "recipe=channel"], "use --cfg job, --cfg hydra or --cfg all"),
    (["recipe=channel", "--cfg"], "--cfg needs a value"),
    (["recipe=channel", "hydra.job.name=../../jn"], "hydra.job.name= cannot be changed"),
    (["recipe=channel", "hydra.job.chdir=true"], "hydra.job.chdir= cannot be changed"),
    (["-m", "recipe=channel", "channel=1,2", "hydra.sweep.subdir=same"], "hydra.sweep.subdir= cannot be changed"),
    (["recipe=faithfulness", "input=chelsea", "size=48", "points=1000000000"], "from 2 points to one per pixel (2304)"),
    (["recipe=faithfulness", "input=chelsea", "size=48", "random_maps=1000000000"], "use at most 256"),
    (["-m", "recipe=channel", "channel=range(0,1000000000)"], "the sweep would run more than 1000 jobs (at channel)"),
    (["-m", "recipe=channel", "channel=range(0,40)", "steps=range(1,40)"], "more than 1000 jobs (at steps)"),
    (["recipe=channel", "model.checkpoint=/dev/zero"], "model.checkpoint '/dev/zero' is not a regular file"),
    (["recipe=channel", "run._target_=builtins.exec"], "run._target_=builtins.exec is not allowed; remove that"),
    (["-m", "recipe=channel", "channel=shuffle(range(0,1000000000))"], "more than 1000 jobs (at channel)"),
    (["recipe=layer_atlas", "channels=0:100000000000000000000"], "pick at most 256 per sheet"),
]


@pytest.mark.parametrize(("args", "said"), FLAGS_AND_FOLDERS, ids=[" ".join(a) for a, _ in FLAGS_AND_FOLDERS])
def test_flags_and_hydra_keys_that_would_skip_the_checks_or_leave_the_folder_are_one_line(
    args: list[str], said: str, tmp_path: Path
) -> None:
    code, err = command(args)
    assert code == 2 and err.count("\n") == 1 and said in err, err


def test_hydras_files_never_land_outside_the_run_folder(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "config.yaml").write_text("mine\n")
    code, err = command(["recipe=channel", *TINY, f"hydra.output_subdir={victim}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert code == 2 and "hydra.output_subdir= cannot be changed" in err, err
    assert (victim / "config.yaml").read_text() == "mine\n" and sorted(victim.iterdir()) == [victim / "config.yaml"]
    assert not (tmp_path / "run").exists()


def test_a_failed_run_leaves_no_empty_folders_it_made_and_keeps_the_users(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    code, err = command(["recipe=channel", "channel=99999", *TINY, f"hydra.run.dir={tmp_path / 'mine/a/b/run'}"])
    assert code == 2 and "out of range" in err, err
    assert list(tmp_path.iterdir()) == [tmp_path / "mine"] and list((tmp_path / "mine").iterdir()) == []
    (tmp_path / "data" / "empty").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "data" / "empty")  # a run folder given through a link
    code, err = command(["recipe=channel", "channel=99999", *TINY, f"hydra.run.dir={tmp_path / 'link'}"])
    assert code == 2 and (tmp_path / "data" / "empty").is_dir() and (tmp_path / "link").is_symlink(), err


def test_a_long_thin_picture_and_a_link_to_nowhere_are_named_as_such(tmp_path: Path) -> None:
    Image.new("RGB", (400, 2), "red").save(tmp_path / "thin.png")
    code, err = command(
        ["recipe=deepdream", f"input={tmp_path / 'thin.png'}", *TINY, f"hydra.run.dir={tmp_path / 'a'}"]
    )
    assert code == 2 and "give both sides, such as size=[64,64]" in err, err
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    code, err = command(
        ["recipe=deepdream", f"input={tmp_path / 'loop.png'}", *TINY, f"hydra.run.dir={tmp_path / 'b'}"]
    )
    assert code == 2 and "is a link that leads to no file" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.png", "thin.png"]


def test_a_pipe_given_as_a_picture_is_refused_not_read(tmp_path: Path) -> None:
    import os

    pipe = tmp_path / "picture.png"
    os.mkfifo(pipe)
    code, err = command(["recipe=saliency", f"input={pipe}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert code == 2 and "is not a regular file" in err, err


def test_a_render_too_large_to_hold_is_refused_from_its_size(tmp_path: Path) -> None:
    run = tmp_path / "cppn"
    assert command(["recipe=channel", "param=cppn", *TINY, f"hydra.run.dir={run}"])[0] == 0
    code, err = command(["render", str(run), "size=[65536,65536]"])
    assert code == 2 and "4295 megapixels" in err and "use a size up to about 10000×10000" in err, err
    assert sorted(p.name for p in run.glob("image_*")) == []


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        (["recipe=saliency"], "recipe is not a key of the recipe called"),
        (["hydra.run.dir=/tmp/x"], "name the run's folder with out="),
        (["channel=${oc.env:SHLVL}"], "would be resolved as an interpolation"),
    ],
)
def test_the_python_overrides_stay_keys_of_the_recipe_called(overrides: list[str], said: str, tmp_path: Path) -> None:
    from engine import api
    from engine.errors import UserError

    with pytest.raises(UserError, match=said):
        api.channel(size=32, steps=1, out=tmp_path / "run", overrides=overrides)
    assert not (tmp_path / "run").exists()


def test_a_python_error_is_one_line_too() -> None:
    from engine import api
    from engine.errors import UserError

    with pytest.raises(UserError) as raised:
        api.channel(layer="features.10\nx", size=32, steps=1)
    assert "\n" not in str(raised.value) and "features.10\\nx" in str(raised.value)
