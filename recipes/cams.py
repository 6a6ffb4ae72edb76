"""The class activation map family: where a layer's channels say the class is, each method one small function over
the layer's activations (and, for most, the class score's gradient there).

:func:`cam` runs the one shared path: read the layer (and its gradient), let the method weigh it into a
``(h, w)`` map, rectify, enlarge to the picture and scale to [0, 1]. The gradient-free methods that need many passes
(Score-CAM, Ablation-CAM) send ``batch`` masked pictures or edited activations through the model at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.callbacks import Progress
from engine.errors import UserError
from engine.models import LOGITS, ModelView

__all__ = ["CAM_METHODS", "LayerReading", "cam"]

EPS = 1e-7


@dataclass
class LayerReading:
    """What a method may use: the layer's map ``acts`` ``(C, h, w)``, the class logit's gradient there ``grads``
    (None for Eigen-CAM), and how to ask the model again (``view``, ``picture``, ``target``, ``layer``, ``batch``;
    a method that does, batch by batch, tells ``progress``)."""

    view: ModelView
    picture: torch.Tensor
    target: int
    layer: str
    acts: torch.Tensor
    grads: torch.Tensor | None
    batch: int
    progress: Progress | None = None

    def passes(self, total: int) -> Iterator[int]:
        """The first channel of each batch of ``total``, each pass told to ``progress``."""
        starts = range(0, total, self.batch)
        if self.progress is not None:
            self.progress.on_start(len(starts), lambda: self.picture)
        for i, start in enumerate(starts):
            yield start
            if self.progress is not None:
                self.progress.on_step(i, None, lambda: self.picture)

    @property
    def g(self) -> torch.Tensor:
        assert self.grads is not None
        return self.grads


def _weighted(weights: torch.Tensor, acts: torch.Tensor) -> torch.Tensor:
    return (weights.view(-1, 1, 1) * acts).sum(0)


def _gradcam(r: LayerReading) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017): channels weighted by the mean gradient."""
    return _weighted(r.g.mean((1, 2)), r.acts)


def _hirescam(r: LayerReading) -> torch.Tensor:
    """HiResCAM (Draelos & Carin, 2020): gradient times activation at each place, summed over channels, so the map
    shows what the score actually used there."""
    return (r.g * r.acts).sum(0)


def _xgradcam(r: LayerReading) -> torch.Tensor:
    """XGrad-CAM (Fu et al., 2020): channel weights are the gradient averaged with the activations as weights."""
    return _weighted((r.g * r.acts).sum((1, 2)) / (r.acts.sum((1, 2)) + EPS), r.acts)


def _gradcampp(r: LayerReading) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhyay et al., 2018), with the exponential-score closed form: each place's positive
    gradient weighted by ``g² / (2g² + Σ A · g³)``."""
    g2, g3 = r.g.pow(2), r.g.pow(3)
    denom = 2 * g2 + r.acts.sum((1, 2), keepdim=True) * g3
    alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1.0), 0.0)  # g's scale cancels out
    return _weighted((alpha * r.g.relu()).sum((1, 2)), r.acts)


def _layercam(r: LayerReading) -> torch.Tensor:
    """LayerCAM (Jiang et al., 2021): activations weighted by the positive gradient at each place."""
    return (r.g.relu() * r.acts).sum(0)


def _eigencam(r: LayerReading) -> torch.Tensor:
    """Eigen-CAM (Muhammad & Yeasin, 2020): the places' centred feature vectors projected on their first principal
    axis; it ignores the class. The axis's sign is chosen so the map agrees with the layer's total activation.
    (Uncentred, the projection carries the mean's offset, which can push every place below zero, and the map away.)"""
    rows = r.acts.flatten(1).T  # (places, C)
    centred = rows - rows.mean(0, keepdim=True)
    axis = torch.linalg.svd(centred, full_matrices=False).Vh[0]
    proj = centred @ axis
    if torch.dot(proj, rows.sum(1) - rows.sum(1).mean()) < 0:
        proj = -proj
    return proj.view(r.acts.shape[1:])


@torch.no_grad()
def _scorecam(r: LayerReading) -> torch.Tensor:
    """Score-CAM (Wang et al., 2020): each channel, enlarged and scaled to [0, 1], masks the picture; its weight is
    how much the masked picture raises the class probability over a black one."""
    x = r.picture
    up = F.interpolate(r.acts[None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0]
    low, high = up.amin((1, 2), keepdim=True), up.amax((1, 2), keepdim=True)
    masks = (up - low) / (high - low).clamp_min(EPS)
    base = r.view(torch.zeros_like(x), [LOGITS])[LOGITS].softmax(-1)[0, r.target]
    weights = torch.zeros(len(masks), device=x.device)
    for start in r.passes(len(masks)):
        part = masks[start : start + r.batch, None]
        weights[start : start + len(part)] = r.view(x * part, [LOGITS])[LOGITS].softmax(-1)[:, r.target] - base
    weights[(high - low).flatten() <= EPS] = 0  # a flat channel masks nothing out
    return _weighted(weights, r.acts)


@torch.no_grad()
def _ablationcam(r: LayerReading) -> torch.Tensor:
    """Ablation-CAM (Desai & Ramaswamy, 2020): a channel's weight is the fraction of the class logit lost when that
    channel alone is set to zero. The layers before it run once; copies start at the layer."""
    x, channels = r.picture, r.acts.shape[0]
    full = r.view(x, [LOGITS])[LOGITS][0, r.target]
    drops = torch.zeros(channels, device=x.device)
    for start in r.passes(channels):
        ids = torch.arange(start, min(start + r.batch, channels), device=x.device)

        def ablate(a: torch.Tensor, ids: torch.Tensor = ids) -> torch.Tensor:
            copies = a.expand(len(ids), *a.shape[1:]).clone()
            copies[torch.arange(len(ids)), ids] = 0
            return copies

        logits = r.view(x, [LOGITS], edits={r.layer: ablate})[LOGITS][:, r.target]
        drops[start : start + len(ids)] = (full - logits) / (full.abs() + EPS)
    return _weighted(drops, r.acts)


CAM_METHODS: dict[str, Callable[[LayerReading], torch.Tensor]] = {
    "gradcam": _gradcam,
    "gradcam++": _gradcampp,
    "xgradcam": _xgradcam,
    "layercam": _layercam,
    "hirescam": _hirescam,
    "eigencam": _eigencam,
    "scorecam": _scorecam,
    "ablationcam": _ablationcam,
}
"""Each method, by the name ``method=`` takes: ``reading -> (h, w)`` map before rectifying."""


def cam(
    view: ModelView,
    picture: torch.Tensor,
    target: int,
    layer: str,
    method: str = "gradcam",
    batch: int = 32,
    progress: Progress | None = None,
) -> torch.Tensor:
    """The ``method`` map of class ``target`` at ``layer`` for a picture in [0, 1] of shape ``(1, 3, H, W)``:
    rectified, enlarged to the picture (bilinear) and divided by its maximum. Shape: ``(H, W)``, in [0, 1]."""
    if method not in CAM_METHODS:
        raise UserError(f"method={method} is not a CAM method; use one of {', '.join(CAM_METHODS)}")
    x = picture.to(view.device).detach()
    if method == "eigencam":  # the one method that ignores the class
        with torch.no_grad():
            acts, grads = view(x, [layer])[layer][0], None
    else:
        x.requires_grad_(True)  # the weights are frozen: the graph starts here
        out = view(x, [layer, LOGITS])
        (grad,) = torch.autograd.grad(out[LOGITS][:, target].sum(), out[layer])
        acts, grads = out[layer][0].detach(), grad[0]
        if not grads.any():  # Score-CAM and Ablation-CAM too would weigh rounding noise there
            raise UserError(
                f"layer {layer} does not reach the score of class {target} (its gradient there is zero, as at a "
                "vision transformer's last block, whose patch tokens the head never reads); choose an earlier layer "
                "(the model's default is model.cam_layer)"
            )
    raw = CAM_METHODS[method](LayerReading(view, x.detach(), target, layer, acts, grads, batch, progress))
    up = F.interpolate(raw.relu()[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    return (up / up.max().clamp_min(1e-12)).detach()
