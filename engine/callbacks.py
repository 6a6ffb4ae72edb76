"""Loop callbacks: progress bar, loss and timing record, snapshots for the progress GIF."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

import torch
from PIL import Image

from engine.export import contact_sheet
from engine.images import checkerboard, composite, to_pil
from engine.params import ImageFn

__all__ = ["Callback", "Diverged", "Goal", "Guard", "Progress", "Recorder", "Snapshots"]


class Callback:
    """Hooks the loop calls; each does nothing unless overridden."""

    def on_start(self, steps: int, image_fn: ImageFn) -> None:
        """Called once before the first step with the number of steps to come."""

    def on_step(self, step: int, loss: torch.Tensor, image_fn: ImageFn) -> None:
        """Called after every optimizer step with the step's (detached) loss."""

    def on_end(self, done: int, image_fn: ImageFn) -> None:
        """Called by a loop that stops early (a goal reached) after ``done`` steps, before the steps it announced."""


class Progress(Callback):
    """A progress bar on stderr: 50 redraws per loop on a terminal, four lines otherwise (reads the loss only then)."""

    def __init__(self, label: str = "", stream: TextIO | None = None, width: int = 30) -> None:
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.steps, self.t0, self.shown = 1, 0.0, 0

    def on_start(self, steps: int, image_fn: ImageFn) -> None:
        self.steps, self.t0, self.shown = steps, time.perf_counter(), 0

    def on_step(self, step: int, loss: torch.Tensor | None, image_fn: ImageFn) -> None:
        done = step + 1
        tty = self.stream.isatty()
        if done != self.steps and done % max(1, self.steps // (50 if tty else 4)):
            return
        self._draw(done, loss, tty, done == self.steps)

    def on_end(self, done: int, image_fn: ImageFn) -> None:
        if done != self.shown or self.stream.isatty():  # the bar so far, and a new line after it
            self._draw(done, None, self.stream.isatty(), True)

    def _draw(self, done: int, loss: torch.Tensor | None, tty: bool, last: bool) -> None:
        self.shown = done
        filled = round(self.width * done / self.steps)
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rate = done / elapsed
        bar = "#" * filled + "." * (self.width - filled)
        end = "\n" if last or not tty else ""
        start = "\r" if tty else ""
        shown = "" if loss is None else f" loss {float(loss):.4g}"
        speed = f"{rate:.1f} it/s" if rate >= 1 else f"{1 / rate:.1f} s/it"
        when = f"in {_clock(elapsed)}" if last else f"{_clock((self.steps - done) / rate)} left"
        self.stream.write(f"{start}{self.label}[{bar}] {done}/{self.steps}{shown} {speed}, {when}{end}")
        self.stream.flush()


def _clock(seconds: float) -> str:
    """Seconds as ``m:ss`` (``h:mm:ss`` from an hour)."""
    m, s = divmod(round(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


class Recorder(Callback):
    """Keeps the first and last loss, the step count, the run time and the current picture builder."""

    def __init__(self) -> None:
        self.loss_first: float | None = None
        self.last_loss: torch.Tensor | None = None
        self.steps = 0
        self.seconds = 0.0
        self.image_fn: ImageFn | None = None
        self._t0 = 0.0

    def on_start(self, steps: int, image_fn: ImageFn) -> None:
        self.image_fn, self._t0 = image_fn, time.perf_counter()

    def on_step(self, step: int, loss: torch.Tensor, image_fn: ImageFn) -> None:
        if self.loss_first is None:
            self.loss_first = float(loss)
        self.last_loss = loss
        self.steps += 1
        now = time.perf_counter()
        self.seconds += now - self._t0
        self._t0 = now

    @property
    def loss_last(self) -> float | None:
        """The most recent loss as a number (read once, at the end)."""
        return None if self.last_loss is None else float(self.last_loss)

    def merge(self, other: Recorder) -> None:
        """Add another run's steps and time to this one (for recipes made of several optimizations)."""
        if self.loss_first is None:
            self.loss_first = other.loss_first
        self.last_loss = other.last_loss if other.last_loss is not None else self.last_loss
        self.steps += other.steps
        self.seconds += other.seconds
        self.image_fn = other.image_fn or self.image_fn

    def current_picture(self) -> torch.Tensor | None:
        """The picture as it stands now, or None before the loop started."""
        if self.image_fn is None:
            return None
        with torch.no_grad():
            return self.image_fn().detach()


class Snapshots(Callback):
    """Keeps a small copy of the picture every ``every`` steps, for ``progress.gif`` (a batch's pictures in a grid).

    A long run does not pile up frames: once there are more than ``max_frames``, every other one is dropped and
    frames are taken half as often from then on, so the GIF still spans the whole run at an even pace.

    Args:
        every: steps between frames (0 disables).
        max_side: frames are shrunk to at most this many pixels on their long side.
        max_frames: the most frames kept.
    """

    def __init__(self, every: int = 10, max_side: int = 384, max_frames: int = 100) -> None:
        self.every, self.max_side, self.max_frames = every, max_side, max(2, max_frames)
        self.stride = 1  # doubles each time the frames are thinned
        self.frames: list[Image.Image] = []
        self.steps, self.taken = 0, 0  # the loop's length, and the step count at the newest frame

    def on_start(self, steps: int, image_fn: ImageFn) -> None:
        self.steps = steps

    def on_step(self, step: int, loss: torch.Tensor, image_fn: ImageFn) -> None:
        last = step + 1 == self.steps  # the finished picture ends the GIF
        if self.every and (step % (self.every * self.stride) == 0 or last):
            self._take(image_fn, step + 1, last)

    def on_end(self, done: int, image_fn: ImageFn) -> None:
        if self.every and self.taken != done:  # the picture the loop stopped at ends the GIF
            self._take(image_fn, done, True)

    def _take(self, image_fn: ImageFn, done: int, last: bool) -> None:
        with torch.no_grad():
            pictures = image_fn()
            seen = composite(pictures, checkerboard(*pictures.shape[-2:]))
            frame = to_pil(seen[0]) if len(seen) == 1 else contact_sheet(seen, pad=2)
        frame.thumbnail((self.max_side, self.max_side))
        self.add(frame, last)
        self.taken = done

    def add(self, frame: Image.Image, last: bool = False) -> None:
        """Keep one more frame, thinning the frames (and halving how often they come) past ``max_frames``; a
        ``last`` frame (a loop's final picture) stays through the thinning."""
        self.frames.append(frame)
        if len(self.frames) > self.max_frames:
            kept = self.frames[::2]
            if last and kept[-1] is not frame:
                kept.append(frame)
            self.frames, self.stride = kept, self.stride * 2


class Diverged(Exception):
    """The loss or the picture stopped being finite at ``step``; ``picture`` is the last good one (or None)."""

    def __init__(self, step: int, what: str, picture: torch.Tensor | None, good_step: int, where: str = "") -> None:
        super().__init__(f"the {what} became NaN or infinite by step {step}" + (f" of {where}" if where else ""))
        self.step, self.what, self.picture, self.good_step = step, what, picture, good_step


class Guard(Callback):
    """Stops the loop with :class:`Diverged` once the loss or the picture is no longer finite, handing back the
    last picture that was. It looks every ``every`` steps and at the last one (one read from the device each time),
    so a fast loop is not held up by a check per step."""

    def __init__(self, every: int = 8, label: str = "") -> None:
        self.every, self.steps, self.label = max(1, every), 1, label
        self.good: torch.Tensor | None = None
        self.good_step = 0

    def on_start(self, steps: int, image_fn: ImageFn) -> None:
        self.steps = steps
        with torch.no_grad():
            start = image_fn().detach()
        if bool(torch.isfinite(start).all()):
            self.good, self.good_step = start, 0

    def on_step(self, step: int, loss: torch.Tensor, image_fn: ImageFn) -> None:
        done = step + 1
        if done % self.every and done != self.steps:
            return
        with torch.no_grad():
            picture = image_fn().detach()
        for what, value in (("loss", loss), ("picture", picture)):
            if not bool(torch.isfinite(value).all()):
                raise Diverged(done, what, self.good, self.good_step, self.label)
        self.good, self.good_step = picture, done


class Goal(Callback):
    """Ends the loop once the picture is good enough: every ``every`` steps ``reached(picture)`` is asked (without
    gradients), and when it answers True the loop stops after that step and calls every callback's ``on_end``.

    Args:
        reached: the test, on the picture as it stands.
        every: steps between tests (each costs what the test costs, so not every step).
    """

    def __init__(self, reached: Callable[[torch.Tensor], bool], every: int = 8) -> None:
        self.reached, self.every = reached, max(1, every)
        self.done_at: int | None = None

    def on_start(self, steps: int, image_fn: ImageFn) -> None:
        self.done_at = None

    def on_step(self, step: int, loss: torch.Tensor, image_fn: ImageFn) -> None:
        if (step + 1) % self.every == 0:
            with torch.no_grad():
                if self.reached(image_fn()):
                    self.done_at = step + 1
