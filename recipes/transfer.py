"""Recipes that match other pictures' features: style transfer and texture synthesis (feature inversion, which
shares their targets, is in :mod:`recipes.inversion`).

Each builds its objective per octave size (the targets are computed once per size, without a graph), hands it to
:func:`engine.runner.optimize_octaves`, and writes the run folder with :func:`engine.results.finish`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from engine.checks import as_typed, check_number, check_switch
from engine.colors import (
    COLOR_MODES,
    keep_chroma,
    luminance,
    match_colors,
    match_luminance,
    region_masks,
    transfer_colors,
)
from engine.errors import UserError
from engine.images import load_image, resize_long, resize_to, target_size
from engine.models import ModelView
from engine.octaves import octave_sizes
from engine.results import Rendered, RunResult, finish
from engine.runner import load_view, optimize_octaves, penalized, recipe, refuse_alpha
from engine.scales import pyramid
from objectives.base import Objective
from objectives.transfer import (
    SMOOTHING,
    blend_weights,
    content,
    feature_targets,
    histogram,
    sliced,
    style,
    style_features,
    style_grams,
)
from regularizers.flat import settle

STATISTICS = ("gram", "sliced")
"""What the style loss matches: Gram matrices (Gatys et al., 2016) or whole distributions (Heitz et al., 2021)."""

__all__ = [
    *("UNTILED", "WEIGHTS", "as_list", "check_content_layer", "paint"),
    *("style_layer_keys", "style_transfer", "style_view"),
]


def styles_seen(cfg: DictConfig, styles: list[torch.Tensor], side: int) -> list[torch.Tensor]:
    """The style pictures as a painting of long side ``side`` reads them: their long side ``style_scale`` of it."""
    return [resize_long(s, max(1, round(check_number(cfg, "style_scale", high=STYLE_SCALE) * side))) for s in styles]


def as_list(value: Any) -> list[Any]:
    """A key that takes one value or a list, as a list (null: empty)."""
    if value is None:
        return []
    if isinstance(value, ListConfig | list | tuple):
        return list(value)
    return [value]


def style_layer_keys(cfg: DictConfig, view: ModelView) -> tuple[str | None, list[str], list[float] | None]:
    """The content layer, the style layers and their weights the keys name, checked against the model."""
    layers = [str(layer) for layer in as_list(cfg.style_layers)]
    own = OmegaConf.select(cfg, "model.style.style_layers")
    if not layers and (cfg.style_layers is not None or own):
        raise UserError(
            f"style_layers={cfg.style_layers} names no layer; name at least one"
            + (", or leave the key out for the model's own" if own else " (list them with: dreamloom recipe=layers)")
        )
    if not layers:
        raise UserError(
            f"model {view.name} has no default style layers; pass style_layers=[...] and content_layer=... "
            "(list the layers with: dreamloom recipe=layers)"
        )
    weights = as_list(cfg.layer_weights) or None
    if weights is not None and len(weights) != len(layers):
        raise UserError(f"{len(weights)} layer_weights for {len(layers)} style_layers; give one weight per layer")
    content_layer = str(cfg.content_layer) if cfg.content_layer else None
    view.check_maps([*layers, *([content_layer] if content_layer else [])], "style and content compare feature maps")
    if cfg.smoothing not in SMOOTHING:
        raise UserError(f"smoothing={cfg.smoothing} is not known; use one of {', '.join(SMOOTHING)}")
    return content_layer, layers, [float(w) for w in weights] if weights else None


def _start(cfg: DictConfig, content_picture: torch.Tensor | None) -> torch.Tensor | None:
    if cfg.init == "content":
        if content_picture is None:
            raise UserError(
                "init=content needs a content picture; pass content=PICTURE (a path or a sample such as "
                "content=grace_hopper) or use init=noise"
            )
        return content_picture
    if cfg.init in ("noise", "zeros"):
        return None
    return load_image(cfg.init, "init")


def _style_pictures(
    cfg: DictConfig, photo: torch.Tensor | None, hw: tuple[int, int], device: torch.device
) -> tuple[list[str], list[torch.Tensor], list[torch.Tensor] | None]:
    """The style sources, their pictures (colours matched to ``photo`` when ``colors`` asks) and the masks."""
    if cfg.colors not in COLOR_MODES:
        raise UserError(f"colors={cfg.colors} is not known; use colors=style, luminance or histogram")
    sources = [str(s) for s in as_list(cfg.style)]
    if not sources:
        raise UserError(
            "no style picture; pass style=PICTURE (a path or a sample such as style=ihc), or a list: "
            "style=[ihc,hubble_deep_field]"
        )
    styles = [load_image(s, "style") for s in sources]
    if photo is not None:
        if cfg.colors == "luminance":
            styles = [match_luminance(s, photo) for s in styles]
        elif cfg.colors == "histogram":
            styles = [match_colors(s, photo) for s in styles]
    elif cfg.colors != "style":
        raise UserError(
            f"colors={cfg.colors} keeps a content picture's colours; pass content=PICTURE (a path or a sample "
            "such as content=grace_hopper)"
        )
    masks = None
    if cfg.get("mask_colors") is not None and not cfg.mask:
        raise UserError(f"mask_colors={as_typed(cfg.mask_colors)} names a mask's colours; pass mask=PICTURE or drop it")
    if cfg.mask:
        colors = [str(c) for c in as_list(cfg.mask_colors)] or None
        # regions are found at the mask's own size, then resized: a mask of any size fits, with soft borders
        regions = region_masks(load_image(cfg.mask, "mask"), len(styles), colors)
        masks = [resize_to(m, hw).to(device) for m in regions]
    return sources, styles, masks


def _transfer_objective(
    cfg: DictConfig,
    view: ModelView,
    styles: list[torch.Tensor],
    masks: list[torch.Tensor] | None,
    seen: torch.Tensor | None,
    blend: list[float],
    content_factor: float = 1.0,
    generator: torch.Generator | None = None,
) -> Callable[[tuple[int, int]], Objective]:
    """The style (and content) objective for each octave size, its targets made once per size; ``strength``'s
    ``content_factor`` scales the content weight; ``generator`` is the run's random source, from which
    ``statistics=sliced`` picks each step's set of directions."""
    content_weight = check_number(cfg, "content_weight", strict=False) * content_factor
    style_weight = check_number(cfg, "style_weight")
    histogram_weight = check_number(cfg, "histogram_weight", strict=False)
    content_layer, layers, layer_weights = style_layer_keys(cfg, view)
    if seen is not None:
        check_content_layer(cfg, view.name, content_weight)
    smoothing, dev = str(cfg.smoothing), view.device
    sliced_by = (generator, int(cfg.seed)) if _statistics(cfg) == "sliced" else None
    levels = _levels(cfg) if view.layout.input_size is None else 1  # one size in: no smaller copies

    def objective_at(size: tuple[int, int]) -> Objective:
        scaled = [s.to(dev) for s in styles_seen(cfg, styles, max(size))]
        smallest = min(min(size), *(min(s.shape[-2:]) for s in scaled))  # the picture's or a style's short side
        named, weights = pyramid(layers, layer_weights, levels, smallest)
        objective = style_weight * _style_term(view, scaled, named, weights, smoothing, masks, blend, sliced_by)
        if histogram_weight > 0:
            objective = objective + histogram(scaled, histogram_weight, blend)
        if seen is not None and content_layer and content_weight > 0:
            target = feature_targets(view, resize_to(seen, size).to(dev), [content_layer])[content_layer]
            objective = objective + content(content_layer, target, content_weight)
        return penalized(cfg, objective)

    return cache(objective_at)  # the targets are made once per size


def check_content_layer(cfg: DictConfig, model: str, weight: float) -> None:
    """One line when a photo to paint has no content layer to hold it by (it would only be the start)."""
    if weight > 0 and not cfg.content_layer:
        own = OmegaConf.select(cfg, "model.style.content_layer")
        listed = f"content_layer=LAYER (see recipe=layers model={model})"
        fix = f"content_layer={own} (the model's own)" if own else listed
        shown = "null" if cfg.content_layer is None else as_typed(cfg.content_layer)
        why = f"content_layer={shown} leaves" if own else f"model {model} has"
        raise UserError(f"{why} no layer to hold the photo by; pass {fix} or content_weight=0")


def _style_term(
    view: ModelView,
    scaled: list[torch.Tensor],
    layers: list[str],
    weights: dict[str, float] | None,
    smoothing: str,
    masks: list[torch.Tensor] | None,
    blend: list[float],
    sliced_by: tuple[torch.Generator | None, int] | None,
) -> Objective:
    """The style loss of the style pictures ``scaled``: their Gram matrices, or with ``sliced_by`` (the run's
    generator and seed) their whole feature distributions."""
    if sliced_by is not None:
        return sliced(style_features(view, scaled, layers), weights, smoothing, blend, masks, *sliced_by)
    if masks is None:
        return style(style_grams(view, scaled, layers, blend, smoothing), weights, smoothing)
    each = [style_grams(view, [s], layers, smoothing=smoothing) for s in scaled]
    return style({layer: [g[layer] for g in each] for layer in layers}, weights, smoothing, masks, blend)


def paint(
    cfg: DictConfig,
    view: ModelView,
    photo: torch.Tensor | None,
    init: torch.Tensor | None = None,
    folder: Path | None = None,
    extra: Objective | None = None,
) -> tuple[Rendered, str, dict[str, Any]]:
    """Style transfer of ``photo`` (texture synthesis without one), in memory, following Gatys et al. (2016).

    Args:
        cfg: the style keys (``style``, ``colors``, ``mask``, ``style_weight`` …) and the shared ones.
        view: the model (with wrapped edges for a seamless result).
        photo: the content picture ``(1, 3, H, W)``, or None.
        init: the starting picture; None starts as ``cfg.init`` says.
        folder: where checkpoints go (None: none).
        extra: an objective added at every octave (``style_video``'s temporal loss), or None.

    Returns:
        The rendered picture and its record, the objective's name and the keys ``metrics.json`` adds.
    """
    hw = target_size(cfg.size, None if photo is None else (photo.shape[-2], photo.shape[-1]))
    photo = None if photo is None else resize_to(photo, hw)
    sources, styles, masks = _style_pictures(cfg, photo, hw, view.device)
    blend = blend_weights([float(w) for w in as_list(cfg.style_weights)] or None, len(sources))
    seen = luminance(photo) if photo is not None and cfg.colors == "luminance" else photo
    content_factor, colour_share = _strength(cfg)
    generator = torch.Generator().manual_seed(cfg.seed)  # the run's, which checkpoints save
    objective_at = _transfer_objective(cfg, view, styles, masks, seen, blend, content_factor, generator)
    if extra is not None:
        transfer, objective_at = objective_at, lambda hw: transfer(hw) + extra
    sizes = octave_sizes(hw, cfg.octaves, float(cfg.octave_scale))
    first = init if init is not None else _start(cfg, seen)
    restart = None
    if init is None and cfg.init == "content" and seen is not None:  # the photo, given the style's colours
        first = _recoloured(seen, styles, masks, blend, colour_share)
        if cfg.get("octave_colors", False):  # and each later octave's: 30 rounds, whole styles (docs/recipes.md)
            restart = partial(
                _recoloured, styles=styles, masks=masks, blend=blend, fraction=colour_share, side=None, rounds=30
            )
    start = None if first is None else first.to(view.device)
    flat = settle(cfg, styles_seen(cfg, styles, max(hw)), blend, photo, colour_share)  # flatten=auto
    out = optimize_octaves(cfg, view, sizes, objective_at, None, start, generator, folder, restart=restart,
                           keys={"flatten": flat})  # fmt: skip
    if photo is not None and cfg.colors == "luminance":
        out.picture = keep_chroma(out.picture, photo.to(view.device).expand_as(out.picture))
    keys = {"styles": sources, "style_weights": blend, "colors": cfg.colors, "flatten": flat}
    if photo is not None:  # what strength= set (texture has no photo to weigh)
        keys["strength"] = float(cfg.strength)
    return out, objective_at(sizes[-1]).name, keys


def _statistics(cfg: DictConfig) -> str:
    statistics = cfg.get("statistics", "gram")
    if statistics not in STATISTICS:
        shown = "null" if statistics is None else statistics
        raise UserError(f"statistics={shown} is not known; use statistics=sliced (whole distributions) or gram")
    return str(statistics)


def _levels(cfg: DictConfig) -> int:
    levels = cfg.get("pyramid")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
        shown = "null" if levels is None else levels
        raise UserError(f"pyramid={shown} is not valid; use a whole number of levels from 1 (the picture's own scale)")
    return levels


def _strength(cfg: DictConfig) -> tuple[float, float]:
    """What ``strength`` (0 faithful … 1 bold) sets: the factor on the content loss's weight and how far the starting
    photo takes the style's colours (0: its own, 1: the style's)."""
    s = cfg.get("strength")
    if isinstance(s, bool) or not isinstance(s, int | float) or not 0 <= s <= 1:
        raise UserError(f"strength={s} is not valid; use a number from 0 (faithful) to 1 (bold)")
    return 10 ** (-2 * max(0.0, s - 0.5)), min(1.0, 2 * s)


def _recoloured(
    photo: torch.Tensor,
    styles: list[torch.Tensor],
    masks: list[torch.Tensor] | None,
    blend: list[float],
    fraction: float,
    side: int | None = 256,
    rounds: int = 12,
) -> torch.Tensor:
    """The photo (each picture of a batch) moved ``fraction`` of the way to itself in the style's colours (each
    region its own style's): ``rounds`` of :func:`engine.colors.transfer_colors`, the styles shrunk to ``side``
    (None: whole)."""
    if fraction <= 0:
        return photo
    small = styles if side is None else [resize_long(s, side) for s in styles]
    hw = (photo.shape[-2], photo.shape[-1])  # a later octave's start is smaller than the masks
    regions = None if masks is None else [resize_to(m, hw).cpu() for m in masks]
    each = []
    for x in photo.cpu().split(1):  # where the styles are; each picture of a batch by itself
        if regions is None:
            each.append(transfer_colors(x, small, blend, rounds))
        else:
            parts = [r * transfer_colors(x, [s], rounds=rounds) for r, s in zip(regions, small, strict=True)]
            each.append(torch.stack(parts).sum(0))
    return torch.lerp(photo, torch.cat(each).to(photo), fraction)


def _content_read(cfg: DictConfig) -> None:
    """Refuse a content picture that nothing but the picture's shape would read (texture's ``content_weight=0``)."""
    weight = check_number(cfg, "content_weight", strict=False)
    if cfg.content and not weight and cfg.init != "content" and cfg.colors == "style" and cfg.get("flatten") != "auto":
        raise UserError(
            f"content={cfg.content} would only set the picture's shape while content_weight=0 and init={cfg.init}; "
            "paint it with recipe=style (or give content_weight=), start from it with init=content, or drop it "
            "(size=[h,w] gives the shape)"
        )


def style_view(cfg: DictConfig, recipe: str) -> ModelView:
    """The model for style transfer; with ``seamless=true`` its convolutions pad circularly."""
    for key in ("seamless", "octave_colors"):  # style, texture and style_video: answered before the model loads
        if key in cfg:
            check_switch(cfg, key)
    view = load_view(cfg)
    if cfg.get("seamless"):
        view.wrap_edges()
    return view


STYLE_SCALE = 4.0
"""The largest ``style_scale``: a style read at four times the output's side is already sixteen times its pixels."""
WEIGHTS = {"style_weights": (float, 0, False), "layer_weights": (float, 0, False)}
"""The blend of the styles and the weights of the style layers: lists of numbers from 0."""
UNTILED = {"tile_size": "it compares whole feature maps, so it cannot run tile by tile; for less memory, drop "
           "tile_size= and use a smaller size="}  # fmt: skip
"""What the recipes that match whole feature maps say to ``tile_size=``, which they do not read."""


@recipe(
    paths=("content", "style", "mask"),
    numbers={"style_scale": (float, 0, True)},
    lists=WEIGHTS,
    ignores={"input": "the photo to paint is content=", **UNTILED},
)
def style_transfer(cfg: DictConfig, folder: Path, recipe: str) -> RunResult:
    """Style transfer (with ``content``) or texture synthesis (without): :func:`paint`, then the run folder. The keys
    and their meanings are in ``recipes/recipe/style.yaml`` and ``texture.yaml`` (``dreamloom recipe=style --help``)."""
    _strength(cfg), _statistics(cfg), _levels(cfg)  # a wrong value is answered before the model loads
    _content_read(cfg)
    if cfg.content:
        refuse_alpha(cfg, f"recipe={recipe} paints a photo, which has no transparent parts; drop param=alpha")
    view = style_view(cfg, recipe)
    photo = load_image(cfg.content, "content") if cfg.content else None
    out, objective, extra = paint(cfg, view, photo, folder=folder)
    return finish(cfg, folder, recipe, view, out, objective, **extra)
