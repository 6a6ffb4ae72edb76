"""The one compose helper: group picks kept, Hydra's failures answered from their types, optional parts named."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import MissingConfigException
from omegaconf import OmegaConf

from engine.checks import absolute_path, check_groups
from engine.configs import compose, explain, options, recipes
from engine.errors import UserError
from engine.images import is_input_folder, load_image
from engine.results import config_yaml
from engine.runner import forget_unread, prepare_function
from engine.spec import refuse_unread
from engine.stored import rebuild
from tests.helpers import run


def test_compose_keeps_the_picks_and_drops_hydras_node_unless_asked() -> None:
    cfg = compose(["recipe=deepdream", "optimizer=adam"])
    assert dict(cfg.choices) == {
        "recipe": "deepdream",
        "model": "mobilenet_v2",
        "param": "pixel",
        "transforms": "dream",
        "optimizer": "adam",
    }
    assert "hydra" not in cfg and "hydra" in compose(["recipe=channel"], hydra=True)
    assert set(recipes()) >= {"channel", "style", "layers"} and "adam" in options("optimizer")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["recipe=deepdreem"], ("unknown recipe 'deepdreem'", "did you mean", "deepdream")),
        (["recipe=channel", "model=resnet5"], ("unknown model 'resnet5'", "model.name=ANY_TORCHVISION_CLASSIFIER")),
        (["recipe=channel", "chanel=3"], ("recipe channel has no key 'chanel'", "channel")),
        (["recipe=channel", "optimizer.lrr=3"], ("optimizer=adam has no key 'lrr'; did you mean lr?",)),
        (["recipe=class", "param=maco", "param.decay=1"], ("param=maco has no key 'decay'; its keys: sd, contrast",)),
        (["recipe=filters", "tile=4"], ("no key 'tile'", "renamed: use thumb= (the thumbnail size)")),
        (["recipe=texture", "tile=true"], ("no key 'tile'", "renamed: use seamless=true (a picture that")),
        (["recipe=saliency", "patch=64"], ("no key 'patch'; patch is a key of recipe occlusion (",)),
        (["recipe=neighbours", "top=3"], ("no key 'top'; top is a key of recipe activations and max_patches (",)),
        (["recipe=channel", "channel=1,2"], ("Ambiguous value", "; to run one job per value, add -m")),
        (["channel"], ("'channel' is not key=value; to run that recipe, write recipe=channel",)),
        (["recipe=channel", "task=render"], ("no key 'task'", "run=")),
        (["recipe=channel", "steps=["], ("could not read the command line", "'steps=['")),
        (["recipe=channel", "param=null"], ("param takes exactly one option; choose param= one of alpha, cppn",)),
        (
            ["recipe=channel", "optimizer.weight_decay=0.3"],
            ("no key 'weight_decay' of its own; add it with +optimizer.",),
        ),
        (
            ["recipe=channel", "optimizer=lbfgs", "optimizer.weight_decay=0.3"],
            ("lbfgs has no key 'weight_decay'; its",),
        ),
        (["recipe=channel", "model=NULL"], ("model takes exactly one option; choose model= one of alexnet",)),
        (
            ["recipe=channel", "hydra/launcher=[local,slurm]"],
            ("hydra/launcher takes exactly one option", "local, slurm"),
        ),
    ],
)
def test_a_composition_failure_is_one_line_naming_the_fix(args: list[str], words: tuple[str, ...]) -> None:
    with pytest.raises(UserError) as caught:
        compose(args)
    message = str(caught.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_a_missing_optional_launcher_names_its_extra() -> None:
    missing = MissingConfigException("not found", missing_cfg_file="hydra/launcher/submitit_slurm", options=[])
    assert "pip install 'dreamloom[slurm]'" in explain(missing, [])


def test_a_slurm_sweep_where_slurm_is_not_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import arguments

    monkeypatch.setattr(arguments.shutil, "which", lambda name: None)
    launcher = OmegaConf.create({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"})
    with pytest.raises(UserError, match="this machine has no srun command"):
        arguments._check_launcher(launcher)
    for taken in ({"_target_": "JoblibLauncher", "n_jobs": 2}, {"_target_": "JoblibLauncher", "n_jobs": -1}):
        arguments._check_launcher(OmegaConf.create(taken))  # -1: one job per core, as joblib reads it
    arguments._check_launcher(OmegaConf.create({"_target_": "hydra_plugins.x.LocalLauncher"}))  # submitit's local one


@pytest.mark.slow
def test_a_missing_optional_tsne_names_its_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.samples import make_samples

    make_samples(tmp_path / "pictures", per_picture=1, side=48)
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)  # as if scikit-learn were not installed
    with pytest.raises(UserError, match=r"pip install 'dreamloom\[tsne\]' \(or use method=pca\)"):
        run(tmp_path / "run", "embedding", f"folder={tmp_path / 'pictures'}", "size=48", "method=tsne")
    assert run(tmp_path / "pca", "embedding", f"folder={tmp_path / 'pictures'}", "size=48", "method=pca")["steps"] == 0


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["optimizer._target_=builtins.open"], "optimizer._target_ cannot be changed; choose optimizer= one of adam"),
        (["transforms._args_.0._target_=os.system"], "transforms._args_.0._target_ cannot be changed"),
        (["param._partial_=false"], "param._partial_ cannot be changed"),
        (["transforms._args_.0.pad=nan"], "transforms._args_.0.pad=nan is not valid; transforms._args_.0.pad must be"),
        (["transforms._args_.0.angles=[1,inf]"], "transforms._args_.0.angles.1=inf is not valid"),
        (["transforms._args_.0.scales=[]"], "transforms._args_.0.scales=[] is not valid; "),
        (["optimizer=lbfgs", "optimizer.history_size=0"], "optimizer.history_size must be a whole number from 1 to"),
        ([f"transforms._args_.0.pad={2**70}"], "transforms._args_.0.pad must be a whole number from 0 to 65536"),
        (["param=shared", "param.shared=[8,0]"], "param.shared.1=0 is not valid"),
        (["model.style=3"], "model.style=3 is not valid; model.style holds keys"),
        (["model.style.style_layers=[1]"], "model.style.style_layers.0=1 is not valid"),
        (["+param.foo=1"], "param=fft has no key 'foo'; its keys: decay, decorrelate, sd"),
        (["param=maco", "++param.decay=1"], "param=maco has no key 'decay'; its keys: sd, contrast"),
        (["param.decay=9"], "param.decay=9 is not valid; param.decay must be from 0 to 4"),
        (["param.sd=${name}"], "param.sd=channel is not valid; param.sd must be a finite number"),
        (["optimizer.lr=${nosuch}"], "optimizer.lr cannot be read (Interpolation key 'nosuch' not found)"),
    ],
)
def test_every_key_of_a_group_is_checked_down_to_list_items(overrides: list[str], words: str) -> None:
    from engine.checks import check_groups

    with pytest.raises(UserError, match=re.escape(words)):
        check_groups(compose(["recipe=channel", *overrides]))


def test_zero_turns_a_transform_step_off_rather_than_failing() -> None:
    from engine.checks import check_groups

    check_groups(compose(["recipe=channel", "transforms=dream", "transforms._args_.0.pad=0"]))


def test_an_added_key_must_be_one_something_reads() -> None:
    """+KEY= for a key no recipe has would change nothing: refused. An argument of a part built from its option file
    (the optimizer's constructor reads it) and Hydra's own keys are added."""
    with pytest.raises(UserError, match=r"recipe channel has no key 'epocs'.*nothing reads a key added with \+"):
        compose(["recipe=channel", "+epocs=2"])
    with pytest.raises(UserError, match=r"no key 'model\.wobble'"):
        compose(["recipe=channel", "+model.wobble=1"])
    assert compose(["recipe=channel", "+optimizer.weight_decay=0.01"]).optimizer.weight_decay == 0.01
    assert compose(["recipe=channel", "++steps=3"]).steps == 3


def test_file_keys_become_absolute_but_an_empty_one_stays_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photo.png").write_bytes(b"")
    assert absolute_path("photo.png") == str(tmp_path / "photo.png")
    assert absolute_path("chelsea") == "chelsea"  # a sample name, not a file here
    assert absolute_path("") == "" and absolute_path("  ") == "  "  # not the working folder


def test_a_run_folder_bearing_a_samples_name_does_not_hide_the_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hydra.run.dir=logo style=logo``: Hydra makes ./logo before the keys are read; the key means the sample."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "logo").mkdir()
    assert absolute_path("logo") == "logo"  # the run's own folder stays a name, as any folder bearing a sample's
    assert absolute_path("./logo") == str(tmp_path / "logo")  # which ./logo names
    (tmp_path / "mine").mkdir()
    assert absolute_path("mine") == str(tmp_path / "mine")  # any other folder is a path, as before
    read_here = load_image("logo", "style")  # a folder is never a picture: the sample
    assert not is_input_folder("logo")  # nor a folder of inputs (style_fast, faithfulness)
    assert is_input_folder("./logo") and is_input_folder(str(tmp_path / "logo"))
    monkeypatch.chdir(tmp_path / "logo")  # where no ./logo exists
    assert torch.equal(read_here, load_image("logo", "style"))


def test_a_run_stored_before_the_pyramid_is_rebuilt_as_it_ran() -> None:
    """A style run stored before ``pyramid`` existed had one level: a rerun or resume of it keeps one."""
    text = config_yaml(compose(["recipe=style"]))
    assert rebuild(text, "new.png").pyramid == 3
    old = "\n".join(line for line in text.splitlines() if not line.startswith("pyramid:"))
    assert rebuild(old, "old.png").pyramid == 1
    assert rebuild(old, "old.png", ["pyramid=2"]).pyramid == 2
    assert "pyramid" not in rebuild(config_yaml(compose(["recipe=channel"])), "channel.png")


@pytest.mark.parametrize(("change", "fix"), [("recipe=style", "start it by name"), ("out=runs/x", "hydra.run.dir=")])
def test_a_rerun_given_a_key_of_the_command_says_where_it_goes(change: str, fix: str) -> None:
    with pytest.raises(UserError, match=f"rerun keeps the run's recipe and its own folder name.*{fix}"):
        rebuild(config_yaml(compose(["recipe=channel"])), "channel.png", [change])


def test_a_style_run_stored_before_flatten_is_rebuilt_unflattened() -> None:
    text = config_yaml(compose(["recipe=style"]))
    assert rebuild(text, "new.png").flatten == "auto"
    old = "\n".join(line for line in text.splitlines() if not line.startswith("flatten:"))
    assert rebuild(old, "old.png").flatten is None


def test_a_stored_key_the_recipe_does_not_read_is_left_out_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    """A picture made before unread keys were refused (``recipe=style input=chelsea``) still reruns and resumes: the
    key is left out, and said so; given anew on the rerun's command line, it is refused as on any run."""
    text = config_yaml(compose(["recipe=style"])).replace("\ninput: null\n", "\ninput: chelsea\n")
    cfg = rebuild(text, "old.png")
    assert cfg.input == "chelsea"
    forget_unread(cfg, "old.png")
    assert (
        cfg.input is None and "old.png: keys this recipe does not read were left out: input" in capsys.readouterr().err
    )
    again = rebuild(text, "old.png", ["input=coffee"])
    forget_unread(again, "old.png", ["input=coffee"])
    assert again.input == "coffee"  # kept, so the run names it in one line


def test_an_added_optimizer_setting_is_carried_by_a_rerun_and_may_be_given_to_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = config_yaml(compose(["recipe=channel", "+optimizer.weight_decay=0.05"]))
    cfg = rebuild(text, "run.png")
    check_groups(cfg)
    assert cfg.optimizer.weight_decay == 0.05 and "left out" not in capsys.readouterr().err
    again = rebuild(text, "run.png", ["+optimizer.weight_decay=0.2", "++optimizer.eps=1e-6"])
    check_groups(again)
    assert (again.optimizer.weight_decay, again.optimizer.eps) == (0.2, 1e-6)
    for change, said in (("+optimizer.foo=1", "optimizer.foo is not a setting"), ("+optimizer.eps=-1", "eps=-1")):
        with pytest.raises(UserError, match=re.escape(said)):
            check_groups(rebuild(text, "run.png", [change]))
    with pytest.raises(UserError, match=re.escape("no key 'eps' of its own; add it with +optimizer.eps=1e-6")):
        rebuild(text, "run.png", ["optimizer.eps=1e-6"])  # without +: as on a run
    rebuild(text.replace("weight_decay: 0.05", "foreach: true"), "run.png")  # a setting no run could add: left out
    assert "left out: optimizer.foreach" in capsys.readouterr().err
    rebuild(text.replace("weight_decay: 0.05", "momentum: 0.5"), "run.png")  # one Adam does not take: left out too
    assert "left out: optimizer.momentum" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("recipe", "change", "said"),
    [
        ("gradcam", "channel=3", "recipe gradcam has no key 'channel'; channel is a key of recipe channel"),
        ("channel", "param.decay=1", "param=pixel has no key 'decay'; its keys: decorrelate, sd"),
        ("channel", "hydra.sweep.dir=x", "of Hydra's keys it takes hydra.run.dir= only"),
        ("channel", "param=fft,cppn", "a rerun runs one job: give one value"),
    ],
)
def test_a_rerun_answers_a_key_as_a_run_does(recipe: str, change: str, said: str) -> None:
    text = config_yaml(compose([f"recipe={recipe}", "param=pixel"] if recipe == "channel" else [f"recipe={recipe}"]))
    with pytest.raises(UserError) as caught:
        rebuild(text, "run.png", [change])
    assert said in str(caught.value) and "-m" not in str(caught.value), caught.value


def test_a_rerun_that_picks_a_group_anew_names_the_settings_it_leaves(capsys: pytest.CaptureFixture[str]) -> None:
    text = config_yaml(compose(["recipe=channel", "+optimizer.weight_decay=0.05", "param.decay=2"]))
    rebuild(text, "run.png", ["optimizer=sgd", "param=shared"])  # shared has a decay too, at its own 1.0
    said = "leaves out the run's param.decay=2, optimizer.weight_decay=0.05; give it again to keep it"
    assert said in capsys.readouterr().err
    rebuild(text, "run.png", ["param=pixel"])
    assert "leaves out the run's param.decay=2;" in capsys.readouterr().err  # decorrelate: the file's own
    rebuild(config_yaml(compose(["recipe=channel"])), "run.png", ["param=pixel"])
    assert "leaves out" not in capsys.readouterr().err


def test_a_diverged_run_names_the_key_that_set_its_rate() -> None:
    from engine.callbacks import Diverged, Recorder
    from engine.checks import rate_key
    from engine.runner import _diverged

    assert rate_key(compose(["recipe=channel", "lr=0.2"])) == ("lr", 0.2)
    apart = compose(["recipe=channel", "lr=0.2", "optimizer.lr=0.3"])
    assert rate_key(apart) == ("optimizer.lr", 0.3)
    with pytest.raises(UserError, match=re.escape("lower the learning rate (optimizer.lr=0.3)")):
        _diverged(apart, Diverged(3, "loss", None, 0), Recorder(), None)  # type: ignore[arg-type]
    kept = _diverged(apart, Diverged(3, "loss", torch.zeros(1, 3, 8, 8), 2), Recorder(), None)  # type: ignore[arg-type]
    assert "optimizer.lr=0.3 is probably too high, try optimizer.lr=0.03" in str(kept.stopped)


def test_a_stored_group_the_recipe_does_not_read_goes_back_to_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    """A fooling run stored with optimizer=sgd reruns with its own Adam, pick and all, so the groups' checks pass;
    a group key given anew on the rerun's command line is kept, and so refused as on any run."""
    text = config_yaml(compose(["recipe=fooling", "optimizer=sgd"]))
    cfg = rebuild(text, "old.png")
    forget_unread(cfg, "old.png")
    assert (cfg.choices.optimizer, cfg.optimizer._target_) == ("adam", "torch.optim.Adam")
    assert OmegaConf.is_interpolation(cfg.optimizer, "lr") and "left out: optimizer" in capsys.readouterr().err
    check_groups(cfg)
    gradcam = rebuild(config_yaml(compose(["recipe=gradcam"])), "cam.png", ["param.decay=2"])
    forget_unread(gradcam, "cam.png", ["param.decay=2"])
    with pytest.raises(UserError, match=r"does not read param=, so param.decay=2 would do nothing"):
        refuse_unread(gradcam, prepare_function(gradcam)[1], "gradcam")


@pytest.mark.parametrize(
    ("recipe", "keys", "said"),
    [
        ("gradcam", ["steps=256", "lr=5e-2", "param=fft", "snapshot_every=8"], None),  # its own defaults
        ("gradcam", ["steps=10"], "steps=10"),
        ("gradcam", ["param=pixel"], "param=pixel"),
        ("gradcam", ["transforms._args_.0.pad=0"], "transforms._args_.0.pad=0"),
        ("fooling", ["optimizer.lr=0.5"], "optimizer.lr=0.5"),  # set apart from lr=, which fooling reads
        ("fooling", ["lr=0.01", "+optimizer.weight_decay=0.01"], "so optimizer.weight_decay=0.01 would"),
        ("fooling", ["lr=0.01", "steps=3"], None),
        ("style_fast", ["octaves=2", "gif_ms=40"], "so octaves=2 gif_ms=40 would do nothing; drop them"),
    ],
)
def test_a_shared_key_is_refused_only_where_it_is_set_apart_and_unread(
    recipe: str, keys: list[str], said: str | None
) -> None:
    cfg = compose([f"recipe={recipe}", *keys])
    spec = prepare_function(cfg)[1]
    if said is None:
        refuse_unread(cfg, spec, recipe)
        return
    with pytest.raises(UserError, match=re.escape(said)):
        refuse_unread(cfg, spec, recipe)


def test_a_stored_transform_setting_is_rebuilt_as_it_ran() -> None:
    text = config_yaml(compose(["recipe=channel", "transforms._args_.0.pad=20"]))
    assert rebuild(text, "padded.png").transforms._args_[0].pad == 20
    assert rebuild(text, "padded.png", ["transforms._args_.0.pad=4"]).transforms._args_[0].pad == 4
    foreign = text.replace("regularizers.transforms.RandomAffine", "builtins.exec")
    with pytest.raises(UserError, match=r"stores the target 'builtins.exec' at transforms._args_.0"):
        rebuild(foreign, "shared.png")


def test_a_shared_pictures_values_are_never_resolved(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    text = config_yaml(compose(["recipe=channel"]))
    for value in ("[['${oc.env:SECRET_TOKEN}']]", "[[1, ['${layer}']]]"):  # hidden in lists of lists
        with pytest.raises(UserError, match="an interpolation"):
            rebuild(text.replace("name: channel", f"name: {value}"), "shared.png")
    odd = rebuild(text.replace("name: channel", "name: x/../../../../tmp/escaped"), "shared.png")
    assert odd.name == "channel"  # the run folder is named after it: never a path
    note = text.replace("steps: 256", 'steps: 256\n"\\e[2K\\rfake line": 1')
    rebuild(note, "shared.png")
    err = capsys.readouterr().err
    assert "fake line" in err and "\x1b" not in err  # a stored key's control characters reach no terminal


def test_a_target_whose_module_fails_to_import_shows_that_modules_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.errors import unlocatable

    (tmp_path / "half_made.py").write_text("from objectives import not_exported_yet\n\n\ndef fn():\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    line = unlocatable("half_made.fn", "run")
    assert line.startswith("run._target_=half_made.fn cannot be loaded: importing half_made fails (ImportError: ")
    assert "not_exported_yet" in line and line.endswith("fix that module")


def test_a_recipe_yaml_without_its_package_line_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import engine.configs

    configs = tmp_path / "recipes"
    shutil.copytree(engine.configs.CONFIG_DIR, configs)
    (configs / "recipe" / "fresh.yaml").write_text("name: fresh\nobjective: {_target_: objectives.channel}\n")
    monkeypatch.setattr(engine.configs, "CONFIG_DIR", str(configs))
    with pytest.raises(UserError, match=r"fresh.yaml must begin with the line '# @package _global_' and hold name"):
        compose(["recipe=fresh"])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("run={_target_:os.system}", "a change names no class to build"),
        ("objective=[{_target_:builtins.print}]", "a change names no class to build"),
        ("objective={layer:features.3}", "change one of its values, such as objective.KEY=VALUE"),
        ("size={a:1}", "size takes no mapping here; give one value or a list"),
        ("objective=[{layer:features.3}]", "change one of its values"),
    ],
)
def test_a_rerun_change_builds_nothing_new(change: str, words: str) -> None:
    text = config_yaml(compose(["recipe=channel"]))
    with pytest.raises(UserError, match=re.escape(words)):
        rebuild(text, "mine.png", [change])


def test_a_rerun_change_may_mention_target_in_a_plain_value() -> None:
    text = config_yaml(compose(["recipe=channel"]))
    assert rebuild(text, "mine.png", ["name=best_target_run"]).name == "best_target_run"


@pytest.mark.parametrize("change", ["transforms._args_.pad=3", "..=1", ".steps=7", "a[0=1"])
def test_a_rerun_answers_an_odd_key_as_unknown(change: str) -> None:
    with pytest.raises(UserError, match=r"unknown key .* for this run|recipe channel has no key 'transforms"):
        rebuild(config_yaml(compose(["recipe=channel"])), "channel.png", [change])


def test_a_rerun_keeps_a_key_the_run_set_apart_from_the_one_it_follows() -> None:
    """``optimizer.lr`` follows ``lr``; a run made with ``optimizer.lr=0.5`` reruns with 0.5, and one that left it
    alone still follows (a rerun given ``lr=`` moves both). A picture of a resumed run names the run it carried on:
    its rerun starts afresh."""
    apart = rebuild(config_yaml(compose(["recipe=channel", "optimizer.lr=0.5"])), "apart.png")
    assert (apart.optimizer.lr, apart.lr) == (0.5, 0.05)
    linked = rebuild(config_yaml(compose(["recipe=channel", "lr=0.2"])), "linked.png", ["lr=0.3"])
    assert linked.optimizer.lr == 0.3
    resumed = config_yaml(compose(["recipe=channel"])).replace("resume: null", "resume: /elsewhere/run")
    assert "/elsewhere/run" in resumed and rebuild(resumed, "resumed.png").resume is None
