"""The class-logit objective and the lookup from class names to indices."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from engine.errors import UserError, close_matches, digits
from objectives.base import Activations, Objective, batch_slice

__all__ = ["class_log_prob", "class_logit", "imagenet_categories", "resolve_class"]


def imagenet_categories() -> list[str]:
    """The 1000 ImageNet class names, index-aligned with every torchvision classifier's logits."""
    import torchvision

    return list(torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"])


def _norm(name: str) -> str:
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def resolve_class(target: int | str, categories: Sequence[str]) -> int:
    """Turn a class index or name (``130``, ``"flamingo"``, ``"egyptian_cat"``) into an index.

    Raises:
        UserError: the index is out of range or no class has that name; the message lists close names.
    """
    if target is None or isinstance(target, bool) or not str(target).strip():
        shown = "null" if target is None else str(target).lower()
        raise UserError(
            f"target={shown} names no class; give a name or an index 0-{len(categories) - 1}, like target=flamingo"
        )
    text = str(target).strip()
    if digits(text.lstrip("-")):
        index = int(text)
        if not 0 <= index < len(categories):
            raise UserError(f"class index {index} is out of range; use 0 to {len(categories) - 1} or a class name")
        return index
    names = [_norm(c) for c in categories]
    key = _norm(text)
    if key in names:
        return names.index(key)
    hint = close_matches(key, names)
    raise UserError(f"unknown class '{text}'" + (f"; {hint}" if hint else "") + " (give a name or an index 0-999)")


def class_logit(
    target: int | str, categories: Sequence[str] | None = None, batch: int | None = None, log_prob: float = 0.0
) -> Objective:
    """Maximize one class's logit (pre-softmax score; Simonyan et al., 2014), plus ``log_prob`` times its
    log-probability (:func:`class_log_prob`) when that is given.

    Args:
        target: class index or name.
        categories: class names of the model; ImageNet's when None.
        batch: the picture of the batch to act on; all when None.
        log_prob: the weight of the class's log-probability beside its logit (0: the logit alone); 10 makes a
            class the model confuses with its neighbours come out as itself, 30 keeps pictures that a diversity
            term pushes apart the class.
    """
    cats = list(categories) if categories is not None else imagenet_categories()
    index = resolve_class(target, cats)

    def fn(acts: Activations) -> torch.Tensor:
        return -batch_slice(acts["logits"], batch)[:, index].sum()

    logit = Objective(fn, ["logits"], f"class({cats[index]})")
    return logit + float(log_prob) * class_log_prob(index, cats, batch) if log_prob else logit


def class_log_prob(target: int | str, categories: Sequence[str] | None = None, batch: int | None = None) -> Objective:
    """Maximize one class's log-probability (the log-softmax of the logits).

    Unlike the logit alone, it also pushes down the classes the picture could be mistaken for (tiger cat and Egyptian
    cat beside tabby), so with ``class_logit(t) + w * class_log_prob(t)`` a picture that other terms pull elsewhere
    stays the class. Arguments as for :func:`class_logit`.
    """
    cats = list(categories) if categories is not None else imagenet_categories()
    index = resolve_class(target, cats)

    def fn(acts: Activations) -> torch.Tensor:
        return -batch_slice(acts["logits"], batch).log_softmax(dim=1)[:, index].sum()

    return Objective(fn, ["logits"], f"log_prob({cats[index]})")
