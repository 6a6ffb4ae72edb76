"""``make mutate``: deliberate breaks of user-visible behaviour, each of which the named tests must catch.

Each mutant changes one piece of code in a copy of the working tree and runs the tests that guard that behaviour
(stopping at the first failure). A mutant the tests let pass is a hole in the tests. Not part of ``make test``:
it takes about 17 minutes on two cores.

    .venv/bin/python tests/mutations.py              # every mutant
    .venv/bin/python tests/mutations.py channel      # the mutants whose name contains "channel"
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = "not slow"


@dataclass(frozen=True)
class Mutant:
    """A named break: in ``path``, ``old`` (which must occur) becomes ``new``; ``tests`` must then fail."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    marks: str = ""


OBJ, REG, E, C = "tests/objectives", "tests/regularizers", "tests/engine", "tests/cli"
RECIPES = "tests/recipes"
MUTANTS = [
    # objectives
    Mutant("channel objective zeroed", "objectives/activation.py", "return -t[:, channel].mean(dim=(-2, -1)).sum()",
           "return 0 * t[:, channel].mean(dim=(-2, -1)).sum()", (OBJ,)),
    Mutant("channel objective minimizes", "objectives/activation.py", "return -t[:, channel].mean(dim=(-2, -1)).sum()",
           "return t[:, channel].mean(dim=(-2, -1)).sum()", (OBJ,)),
    Mutant("deepdream objective minimizes", "objectives/activation.py",
           "return -t.pow(2).flatten(1).mean(dim=1).sum()", "return t.pow(2).flatten(1).mean(dim=1).sum()", (OBJ,)),
    Mutant("class objective minimizes", "objectives/classes.py", 'return -batch_slice(acts["logits"], batch)',
           'return batch_slice(acts["logits"], batch)', (OBJ,)),
    Mutant("gram not averaged over positions", "objectives/transfer.py",
           "return x @ x.transpose(1, 2) / x.shape[-1]", "return x @ x.transpose(1, 2)",
           (f"{RECIPES}/test_transfer.py",)),
    Mutant("content error not relative", "objectives/transfer.py",
           "return (current - target).square().sum() / target.square().sum().clamp_min(1e-12)",
           "return (current - target).square().sum()", (f"{RECIPES}/test_transfer.py",)),
    Mutant("sliced loss compares unsorted projections", "objectives/transfer.py",
           "values = (dirs[pick] @ f).sort(dim=2).values", "values = dirs[pick] @ f", (f"{OBJ}/test_sliced.py",)),
    Mutant("sliced regions ignore their masks", "objectives/transfer.py",
           "f[:, :, where == region]", "f[:, :, where >= 0]", (f"{OBJ}/test_sliced.py",)),
    Mutant("style pyramid keeps the picture's own scale", "engine/scales.py",
           "while len(factors) < levels and", "while False and", (f"{E}/test_scales.py",)),
    Mutant("scaled layers read the whole picture", "engine/scales.py",
           "acts = model(shrink(x, factor),", "acts = model(x,", (f"{E}/test_scales.py",)),
    Mutant("later octaves keep their drifted colours", "engine/octaves.py",
           "start if restart is None else restart(start)", "start", (f"{RECIPES}/test_octave_colors.py",), "slow"),
    # regularizers
    Mutant("l1 ignores its centre", "regularizers/penalties.py", "return (acts[INPUT] - constant).abs().mean()",
           "return acts[INPUT].abs().mean()", (REG,)),
    Mutant("tv ignores vertical edges", "regularizers/penalties.py", "return dx.mean() + dy.mean()",
           "return dx.mean() + 0 * dy.mean()", (REG,)),
    Mutant("jitter never moves", "regularizers/transforms.py",
           "dy, dx = self._randint(d + 1), self._randint(d + 1)\n        return x[..., dy : dy + x.shape[-2] - d, dx",
           "dy, dx = 0, 0\n        return x[..., dy : dy + x.shape[-2] - d, dx", (REG,)),
    # parameterizations and loop
    Mutant("fft ignores its decay", "engine/params.py", "return freq.clamp_min(1.0 / max(h, w)).pow(-decay) / 4.0",
           "return freq.clamp_min(1.0 / max(h, w)).pow(-1.0) / 4.0", (f"{E}/test_params.py",)),
    Mutant("pixels leave [0, 1]", "engine/params.py", "    return torch.sigmoid(t)\n", "    return t\n",
           (f"{E}/test_params.py",)),
    Mutant("penalties never added", "engine/runner.py", "    objective = penalized(cfg, objective)\n",
           "    objective = objective\n", (f"{RECIPES}/test_every_recipe.py",), "slow or not slow"),
    # checkpoints and resume
    Mutant("resume ignores the saved picture", "engine/checkpoints.py", "            p.copy_(s)",
           "            p.copy_(p)", (f"{E}/test_reliability.py",), "slow"),
    Mutant("resume starts from step 0", "engine/checkpoints.py", 'return int(state["step"])', "return 0",
           (f"{E}/test_reliability.py",), "slow"),
    Mutant("resume forgets the random state", "engine/checkpoints.py", 'generator.set_state(state["generator"])',
           "generator.get_state()", (f"{E}/test_reliability.py",), "slow"),
    # export and the run folder
    Mutant("results written in place", "engine/export.py", "        write(tmp)\n",
           "        write(str(target))\n", (f"{E}/test_export.py",)),
    Mutant("contact sheet repeats the first picture", "engine/export.py", "sheet.paste(to_pil(images[i]), (x, y))",
           "sheet.paste(to_pil(images[0]), (x, y))", (f"{E}/test_export.py", f"{RECIPES}/test_recipes.py")),
    Mutant("picture carries no config", "engine/export.py", "    if config_text:\n        info.add_itxt(",
           "    if False:\n        info.add_itxt(", (C, E)),
    Mutant("run folders not claimed", "engine/results.py", "os.O_CREAT | os.O_EXCL | os.O_WRONLY",
           "os.O_CREAT | os.O_WRONLY", (f"{C}/test_together.py",), "slow"),
    # configs: reruns and checks
    Mutant("rerun drops the stored values", "engine/stored.py",
           "        else:\n            fresh[key] = value",
           "        else:\n            pass", (f"{C}/test_trust.py",)),
    Mutant("rerun trusts stored targets", "engine/stored.py",
           'if key == "_target_" and fresh.get("_target_") != value:', "if False:", (f"{C}/test_trust.py",)),
    Mutant("group keys unchecked", "engine/runner.py", "    check_groups(cfg)\n", "    pass\n",
           (f"{C}/test_cli.py::test_bad_input_gets_one_line_and_writes_nothing",), "slow"),
    Mutant("penalties accepted by views", "engine/runner.py", "    if not spec.penalties:", "    if False:",
           (f"{C}/test_cli.py::test_bad_input_gets_one_line_and_writes_nothing",), "slow"),
    # recipes
    Mutant("guided backprop ignores rule", "recipes/attribution.py", "rectifier_view(view, str(cfg.rule))",
           'rectifier_view(view, "guided")', (f"{RECIPES}/test_attribution.py",), "slow or not slow"),
    Mutant("guided Grad-CAM ignores cam_layer", "recipes/attribution.py",
           "            grad = grad * gradcam(view, picture, target, str(cfg.cam_layer))", "            grad = grad",
           (f"{RECIPES}/test_attribution.py",), "slow or not slow"),
    Mutant("occlusion map upside down", "recipes/attribution.py", "+= clean - p", "+= p - clean",
           (f"{RECIPES}/test_attribution.py",), "slow or not slow"),
    Mutant("Grad-CAM keeps negative evidence", "recipes/cams.py", "F.interpolate(raw.relu()[None, None]",
           "F.interpolate(raw.abs()[None, None]", (f"{RECIPES}/test_attribution.py",), "slow or not slow"),
    Mutant("Grad-CAM++ forgets the activation sum", "recipes/cams.py",
           "denom = 2 * g2 + r.acts.sum((1, 2), keepdim=True) * g3", "denom = 2 * g2 + g3",
           (f"{RECIPES}/test_cams.py",)),
    Mutant("Score-CAM without its black baseline", "recipes/cams.py", "[LOGITS].softmax(-1)[:, r.target] - base",
           "[LOGITS].softmax(-1)[:, r.target]", (f"{RECIPES}/test_cams.py",)),
    Mutant("Integrated Gradients forget the baseline", "recipes/gradients.py",
           "return ((x - start) * total / steps)[0]", "return (x * total / steps)[0]", (f"{RECIPES}/test_cams.py",)),
    Mutant("deletion takes the least relevant first", "recipes/faithfulness.py",
           "masks = place.view(1, 1, *place.shape) < taken", "masks = place.view(1, 1, *place.shape) >= count - taken",
           (f"{RECIPES}/test_faithfulness.py",)),
    Mutant("ROAD fills from nothing", "recipes/faithfulness.py",
           "rhs = rhs + (share * ~flags[index])[:, None] * known[index]", "rhs = rhs + 0 * known[index]",
           (f"{RECIPES}/test_faithfulness.py",)),
    Mutant("ViT keeps its class token in the map", "engine/tokens.py", "output[:, n - gh * gw :]",
           "output[:, : gh * gw]", (f"{E}/test_tokens.py",)),
    Mutant("luminance colours act as style colours", "recipes/transfer.py",
           '    if photo is not None and cfg.colors == "luminance":\n        out.picture',
           '    if False:\n        out.picture', (f"{RECIPES}/test_style_keys.py",), "slow or not slow"),
    Mutant("zoom resamples bilinearly", "recipes/motion.py", 'mode="bicubic"', 'mode="bilinear"',
           (f"{RECIPES}/test_motion.py",), "slow or not slow"),
    Mutant("dream zoom throws the dream away", "recipes/motion.py", "            current = quantize(out.picture)",
           "            current = quantize(start)", (f"{RECIPES}/test_motion.py",), "slow or not slow"),
    Mutant("dream zoom neither turns nor shifts", "recipes/motion.py", "zoom_and_turn(current, zoom, rotate, shift)",
           "zoom_and_turn(current, zoom, 0.0, (0.0, 0.0))", (f"{RECIPES}/test_motion.py",), "slow or not slow"),
    Mutant("a style start from a path is noise", "recipes/transfer.py", '    return load_image(cfg.init, "init")',
           "    return None", (f"{RECIPES}/test_style_keys.py",), "slow or not slow"),
    Mutant("init=zeros starts from noise", "engine/runner.py", '**({"sd": 0.0} if cfg.init == "zeros" else {})',
           "**{}", (f"{RECIPES}/test_style_keys.py",), "slow or not slow"),
    Mutant("content_weight is ignored", "recipes/transfer.py",
           'content_weight = check_number(cfg, "content_weight", strict=False) * content_factor',
           "content_weight = content_factor", (f"{RECIPES}/test_style_keys.py",), "slow or not slow"),
    Mutant("style video forgets the frame before", "recipes/clips.py",
           "start = mask * carried + (1 - mask) * fresh", "start = fresh",
           (f"{RECIPES}/test_clips.py",), "slow or not slow"),
    Mutant("clips carry frames unmoved", "recipes/clips.py", "    return moved.carry(before)",
           "    return before, torch.ones_like(before[:, :1])", (f"{RECIPES}/test_clips.py",), "slow or not slow"),
    Mutant("dream video forgets the dream before", "recipes/clips.py",
           "base = base + blend * mask * (carried - base)", "base = base",
           (f"{RECIPES}/test_clips.py",), "slow or not slow"),
    Mutant("occlusion test ignores the way home", "engine/flow.py", "return (home & inside & ~edge)",
           "return (inside & ~edge)", (f"{E}/test_flow.py",)),
    Mutant("flow flicker forgets the warp", "engine/flow.py", "carried, mask = motion(f0, f1, method).carry(r0)",
           "mask = motion(f0, f1, method).carry(r0)[1]; carried = r0", (f"{E}/test_flow.py",)),
    Mutant("temporal loss ignores its mask", "objectives/transfer.py",
           "weight * (where * (x - target).square()).mean()", "weight * (x - target).square().mean()",
           (f"{E}/test_flow.py",)),
    Mutant("embedding at random places", "recipes/folders.py", "points = _pca(features).numpy()",
           "points = __import__('numpy').random.default_rng(0).random((len(names), 2))",
           (f"{RECIPES}/test_folders.py",), "slow or not slow"),
    Mutant("max patches keeps the weakest", "recipes/folders.py", "key=lambda i: -peaks[i][0]",
           "key=lambda i: peaks[i][0]", (f"{RECIPES}/test_folders.py",), "slow or not slow"),
    Mutant("neighbours are the farthest", "recipes/folders.py", "(feats[1:] @ feats[0]).topk(k)",
           "(feats[1:] @ feats[0]).topk(k, largest=False)", (f"{RECIPES}/test_folders.py",), "slow or not slow"),
    Mutant("pixel neighbours ranked by features", "recipes/folders.py",
           "by_pixels = (tiny[1:] - tiny[0]).norm(dim=1).topk(k, largest=False).indices.tolist()",
           "by_pixels = by_features", (f"{RECIPES}/test_folders.py",), "slow or not slow"),
    Mutant("histogram colours act as style colours", "recipes/transfer.py",
           "styles = [match_colors(s, photo) for s in styles]", "pass",
           (f"{RECIPES}/test_style_keys.py",), "slow or not slow"),
    Mutant("strength leaves the start alone", "recipes/transfer.py",
           "first = _recoloured(seen, styles, masks, blend, colour_share)", "pass",
           (f"{RECIPES}/test_style_keys.py",), "slow or not slow"),
    Mutant("style training ignores the colours", "recipes/fast_style.py",
           "looks = looks + self.colors({INPUT: painted})", "pass",
           (f"{RECIPES}/test_fast_style.py",), "slow or not slow"),
    Mutant("facets start from noise", "recipes/facets.py",
           "first=starts.to(view.device)", "first=None",
           (f"{RECIPES}/test_facets.py",), "slow or not slow"),
    Mutant("class facets drop the log-probability", "recipes/facets.py",
           "class_logit(index, view.categories, log_prob=_log_prob(cfg))", "class_logit(index, view.categories)",
           (f"{RECIPES}/test_facets.py",), "slow or not slow"),
    Mutant("the log-probability is the logit", "objectives/classes.py",
           ".log_softmax(dim=1)[:, index].sum()", "[:, index].sum()",
           (f"{OBJ}/test_objectives.py",), "slow or not slow"),
    Mutant("colour transfer moves nothing", "engine/colors.py", "x = x + basis @ (moved - px)", "x = x",
           (f"{RECIPES}/test_transfer.py", f"{RECIPES}/test_style_keys.py"), "slow or not slow"),
    Mutant("a full disk leaves half the results", "engine/runner.py", "kept = withdraw(folder)", "kept = False",
           (f"{E}/test_reliability.py",), "slow or not slow"),
    Mutant("a group option's class can be swapped", "engine/checks.py",
           "elif node[key] != default[key] or type(node[key]) is not type(default[key]):", "elif False:",
           (f"{C}/test_fuzz_entries.py", f"{E}/test_configs.py"), "slow or not slow"),
    Mutant("one faulty job ends the sweep", "engine/cli.py", "    except Exception as e:  # a fault of ours",
           "    except ZeroDivisionError as e:  # a fault of ours", (f"{C}/test_together.py",), "slow or not slow"),
    # the newcomer's path and the maps without a grid
    Mutant("moved copies not put back", "recipes/gradients.py", "acc[:, dy : dy + h, dx : dx + w] += per[k]",
           "acc[:, pad : pad + h, pad : pad + w] += per[k]", (f"{RECIPES}/test_gradients.py",), "slow or not slow"),
    Mutant("layers marks no blocks", "engine/layers.py",
           "    if any(True for _ in module.children()):\n        return True",
           "    if any(True for _ in module.children()):\n        return False", (f"{E}/test_layers.py",)),
    Mutant("help leaves shared keys unexplained", "engine/help.py", "k.meaning or shared.get(k.name, \"\")",
           "k.meaning", (f"{C}/test_help.py",)),
    Mutant("diversity ignored", "objectives/activation.py",
           "return objective + float(weight) * diversity(layer) if weight else objective", "return objective",
           (f"{RECIPES}/test_recipes.py::test_diversity_pushes_a_batch_apart",), "slow"),
    # parameterizations
    Mutant("maco's magnitude not fixed", "engine/params.py", "torch.polar(magnitude.expand_as(phase), phase)",
           "torch.polar(magnitude.expand_as(phase) * (1 + phase.cos()), phase)", (f"{E}/test_parameterizations.py",)),
    Mutant("alpha's opacity unbounded", "engine/params.py",
           "a = a * (opacity / a.mean(dim=(1, 2, 3), keepdim=True).clamp_min(opacity))", "a = a",
           (f"{E}/test_parameterizations.py",)),
    Mutant("transparent pictures seen over one background", "regularizers/transforms.py",
           "x = composite(x, random_backgrounds(x.shape[0], x.shape[-2], x.shape[-1], self.generator).to(x))",
           "x = composite(x, torch.zeros_like(x[:, :3]))", (f"{E}/test_parameterizations.py",)),
    Mutant("a wider cppn render is stretched", "engine/cppn.py", "w / 2) / side * 2 * RADIUS",
           "w / 2) / w * 2 * RADIUS", (f"{E}/test_parameterizations.py",)),
    Mutant("render overwrites a picture", "engine/render.py", "    if taken:", "    if False:",
           (f"{E}/test_parameterizations.py",), "slow"),
    Mutant("a reached goal does not stop the loop", "engine/loop.py",
           "if any(isinstance(cb, Goal) and cb.done_at is not None for cb in callbacks):", "if False:",
           (f"{E}/test_loop.py",)),
    Mutant("periodic blur does nothing", "regularizers/periodic.py", "p.copy_(GaussianBlur(sigma)(p))", "pass",
           (f"{REG}/test_periodic.py",)),
    Mutant("the centre region never grows", "regularizers/periodic.py",
           "self._hold_outside(min(1.0, done / (self.centre * self.steps)))", "self._hold_outside(0.0)",
           (f"{REG}/test_periodic.py",)),
    Mutant("periodic flattening does nothing", "regularizers/periodic.py",
           "self.picture.copy_(from_rgb(flatten(image_fn(), self.flatten[1]), self.decorrelate))", "pass",
           (f"{REG}/test_flat.py",)),
    Mutant("flatten keeps one pixel's gradient in a hundred", "regularizers/flat.py",
           "keep = (energy > cut)", "keep = (energy > cut * 0.01)", (f"{REG}/test_flat.py",)),
    Mutant("flatten=auto never turns on", "regularizers/flat.py",
           "return round(share, 3) if share >= own + 0.01 else None", "return None", (f"{REG}/test_flat.py",)),
    Mutant("render unpickles code", "engine/render.py", "weights_only=True", "weights_only=False",
           (f"{E}/test_parameterizations.py",), "slow"),
    Mutant("style network tiles see no context", "engine/stylenet.py", "CONTEXT = 48", "CONTEXT = 0",
           (f"{RECIPES}/test_fast_style.py",)),
    Mutant("style network file unpickles code", "engine/stylenet.py", "weights_only=True", "weights_only=False",
           (f"{RECIPES}/test_fast_style.py",)),
    Mutant("style network built at any width", "engine/stylenet.py", "not bounds[0] <= value <= bounds[1]",
           "value is None", (f"{RECIPES}/test_fast_style.py",)),
    Mutant("style training resumes from scratch", "recipes/fast_style.py",
           't.step, t.seconds, t.curves = int(saved["step"])', 't.step, t.seconds, t.curves = 0 * int(saved["step"])',
           (f"{RECIPES}/test_fast_style.py",), "slow"),
    Mutant("guided dream pulls the padded ring", "objectives/activation.py",
           "x[..., 1:-1, 1:-1] if min(x.shape[-2:]) > 4 else x", "x", (OBJ,)),
    Mutant("an untargeted attack pulls toward the answer", "recipes/adversarial.py",
           "sign = -1.0 if target is not None else 1.0", "sign = -1.0",
           (f"{RECIPES}/test_adversarial.py",)),
    Mutant("grey clip frames read as three columns", "recipes/clips.py",
           "Image.fromarray(frame if frame.ndim == 2 else frame[..., :3])", "Image.fromarray(frame[..., :3])",
           (f"{RECIPES}/test_clips.py",)),
    Mutant("a luminance style video starts later frames in colour", "recipes/clips.py",
           "start, carried = luminance(start), luminance(carried)", "pass",
           (f"{RECIPES}/test_clips.py",), "slow or not slow"),
    Mutant("a fast clip's GIF keeps every frame", "recipes/motion.py",
           "step = max(1, math.ceil(fps / 50))", "step = 1", (f"{RECIPES}/test_motion.py",)),
    Mutant("a shared key with a value is taken where unread", "engine/spec.py",
           "    return change(cfg.get(key), defaults.get(key), key) is not None",
           "    return change(cfg.get(key), defaults.get(key), key) is not None and defaults.get(key) is None",
           (f"{E}/test_every_key.py",), "slow or not slow"),
    Mutant("fast style clips ignore blend", "recipes/fast_style.py",
           "painted = painted + blend * mask * (carried - painted)", "pass",
           (f"{RECIPES}/test_fast_style.py",), "slow or not slow"),
    Mutant("a denied input folder is blamed on the run's writing", "engine/errors.py",
           "    if path == folder.absolute() or folder.absolute() in path.parents:", "    if True:",
           (f"{E}/test_reliability.py::test_permission_denied_names_the_path_it_was_denied",), "slow or not slow"),
    Mutant("a texture takes a content it reads only for its shape", "recipes/transfer.py",
           "    if cfg.content and not weight and", "    if False and not weight and",
           (f"{RECIPES}/test_style_keys.py::test_a_texture_refuses_a_content_it_would_read_only_for_its_shape",),
           "slow or not slow"),
    Mutant("another recipe's key gets a near name it does not read", "engine/configs.py",
           "hint = f\"{name} is a key of recipe {named}\" if owners else hint", "hint = hint",
           (f"{E}/test_configs.py",)),
    Mutant("a fooling run short of its confidence says nothing", "recipes/adversarial.py",
           "    if float(probs[target]) < confidence:", "    if False:", (f"{RECIPES}/test_adversarial.py",)),
    Mutant("a key added to param= reaches its builder", "engine/checks.py",
           "            if added:  # +param.KEY", "            if False:  # +param.KEY", (f"{E}/test_configs.py",)),
    Mutant("a picture cropped below a model's kernel is a traceback", "engine/errors.py",
           "    if any(words in text for words in TOO_SMALL):", "    if False:",
           (f"{E}/test_model_configs.py::test_a_picture_cropped_below_a_models_kernel_is_one_line",)),
    Mutant("style paints a photo onto a transparent picture", "recipes/transfer.py",
           "    if cfg.content:\n        refuse_alpha(", "    if False:\n        refuse_alpha(",
           (f"{RECIPES}/test_every_recipe.py::test_every_optimizing_recipe_takes_each_parameterization",),
           "slow or not slow"),
    Mutant("optimizer.lr set apart from lr may be negative", "engine/checks.py",
           '        if followed == "lr":', '        if False:',
           (f"{C}/test_limits.py::test_an_out_of_range_value_is_one_line_before_the_work",)),
    Mutant("an option file's optimizer setting goes unchecked", "engine/checks.py",
           "for key in (str(k) for k in node if k in ADDED_SETTINGS or k not in written):",
           "for key in (str(k) for k in node if k not in written):",
           (f"{C}/test_limits.py::test_an_out_of_range_value_is_one_line_before_the_work",)),
    Mutant("an overflowing optimizer.lr is blamed on lr", "engine/checks.py",
           '        return "optimizer.lr", opt.lr', '        return "lr", cfg.get("lr")',
           (f"{C}/test_cli.py::test_bad_input_gets_one_line_and_writes_nothing[optimizer-lr-overflows]",),
           "slow or not slow"),
    Mutant("a sweep with no job at once reaches joblib", "engine/arguments.py",
           "or jobs == 0:", "or jobs == 1:",
           (f"{C}/test_cli.py::test_bad_input_gets_one_line_and_writes_nothing[sweep-no-job-at-once]",),
           "slow or not slow"),
    Mutant("a slurm sweep without slurm reaches submitit", "engine/arguments.py",
           'and shutil.which("srun") is None:', "and False:",
           (f"{E}/test_configs.py::test_a_slurm_sweep_where_slurm_is_not_is_one_line",)),
    Mutant("a launcher's class may be changed", "engine/arguments.py",
           'if key.startswith("hydra.") and "_target_" in key + value:', "if False:",
           (f"{C}/test_cli.py::test_bad_input_gets_one_line_and_writes_nothing[sweep-launcher-target]",),
           "slow or not slow"),
    Mutant("a rerun drops the optimizer settings its run added", "engine/stored.py",
           'if path == "optimizer" and _added_setting(fresh, key)', 'if False and _added_setting(fresh, key)',
           (f"{E}/test_configs.py::test_an_added_optimizer_setting_is_carried_by_a_rerun_and_may_be_given_to_one",)),
    Mutant("a group picked as null gets Hydra's words", "engine/configs.py",
           '(picked == "null" or picked.startswith("["))', '(picked.startswith("["))',
           (f"{E}/test_configs.py",)),
    Mutant("a rerun keeps an optimizer setting its optimizer does not take", "engine/stored.py",
           "return key in ADDED_SETTINGS and key in takes(optimizer)", "return key in ADDED_SETTINGS",
           (f"{E}/test_configs.py::test_an_added_optimizer_setting_is_carried_by_a_rerun_and_may_be_given_to_one",)),
    Mutant("a CPPN fits its start in silence", "engine/cppn.py",
           "        bar.on_step(step, loss.detach(), seen)", "        pass",
           (f"{E}/test_parameterizations.py::test_a_cppn_fits_a_starting_picture",)),
    Mutant("a sweep's values of a part's key wait for their jobs", "engine/arguments.py",
           "            parts += values[1:]", "            pass",
           (f"{C}/test_cli.py::test_bad_input_gets_one_line_and_writes_nothing[sweep-part-value-out-of-range]",),
           "slow or not slow"),
    Mutant("a part's ${...} value skips the kind check", "engine/checks.py",
           'if key in node and (key.startswith("_") or _raw(node, key) != _raw(default, key)):',
           'if key in node and (key.startswith("_") or not OmegaConf.is_interpolation(node, key)):',
           (f"{E}/test_configs.py",)),
    Mutant("a picture's range waits for its builder", "engine/checks.py",
           "            within(key, node[key])", "            pass", (f"{E}/test_configs.py",)),
    Mutant("a recipe's number given as null is taken", "engine/runner.py",
           " or defaults.get(key) is not None:  # null only", ":  # null only",
           (f"{C}/test_limits.py::test_an_out_of_range_value_is_one_line_before_the_work",)),
    Mutant("a number given as text is not told so", "engine/checks.py",
           'fix = f" (it was given as text: write {value} without quotes)" if text else ""', 'fix = ""',
           (f"{C}/test_limits.py::test_an_out_of_range_value_is_one_line_before_the_work",)),
    Mutant("an optimizer setting given without + is not told to add it", "engine/configs.py",
           'if group == "optimizer" and short in ADDED_SETTINGS and short in takes(plain[group]):', "if False:",
           (f"{E}/test_configs.py",)),
    Mutant("a rerun's unknown key is answered without the run's recipe", "engine/stored.py",
           'if dotted and key.split(".")[-1] not in SPECIAL and lookup(cfg, key) is ABSENT and key not in added:',
           "if False:", (f"{E}/test_configs.py::test_a_rerun_answers_a_key_as_a_run_does",)),
    Mutant("a rerun picking a group anew drops the run's settings in silence", "engine/stored.py",
           "    if dropped:\n", "    if False:\n",
           (f"{E}/test_configs.py::test_a_rerun_that_picks_a_group_anew_names_the_settings_it_leaves",)),
    Mutant("the API takes recipe= as a key and runs another recipe", "engine/api.py",
           '    if "recipe" in keys:  # api.channel', '    if False:  # api.channel', (f"{C}/test_api.py",)),
    Mutant("a gallery of a missing folder is told it is no folder", "engine/gallery.py",
           "{missing_or(root, 'is not a folder')}", "is not a folder",
           (f"{E}/test_gallery.py::test_a_gallery_of_a_folder_without_runs_is_refused",), "slow or not slow"),
]  # fmt: skip


def _copy() -> Path:
    """The working tree (tracked and new files, as they are now) in a fresh folder."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    target = Path(tempfile.mkdtemp(prefix="dreamloom-mutant-"))
    for name in listed:
        if (ROOT / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target


def run(mutant: Mutant) -> tuple[bool, float]:
    """Whether the tests catch ``mutant``, and how long they took."""
    tree = _copy()
    try:
        source = tree / mutant.path
        text = source.read_text()
        if mutant.old not in text:
            raise SystemExit(f"mutant '{mutant.name}': its code is no longer in {mutant.path}; update it")
        source.write_text(text.replace(mutant.old, mutant.new))
        env = {**os.environ, "PYTHONPATH": str(tree)}
        marks = ["-m", mutant.marks or FAST]
        args = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *marks, *mutant.tests]
        t0 = time.perf_counter()
        done = subprocess.run(args, cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
        return done.returncode == 1, time.perf_counter() - t0  # 1: a test failed (2-5: errors, no tests)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def main(argv: list[str]) -> int:
    chosen = [m for m in MUTANTS if not argv or any(a in m.name for a in argv)]
    caught = 0
    for mutant in chosen:
        killed, seconds = run(mutant)
        caught += killed
        print(f"{'caught  ' if killed else 'SURVIVED'} {seconds:6.1f} s  {mutant.name}", flush=True)
    print(f"{caught} of {len(chosen)} deliberate breaks caught ({100 * caught / max(1, len(chosen)):.0f}%)")
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
