"""Progress reports of long steps, where a person is watching.

``progressbar="auto"`` (the default of every fit) reports progress when standard error is a
terminal or the code runs in a Jupyter kernel, and stays quiet under CI (the ``CI``
environment variable) and where the output goes to a file or a pipe; ``True`` always
reports, ``False`` never.

The reports are plain text on standard error: a line per step (``bayesgmm: EM start ...
0.4 s``), and for loops a bar redrawn in place with a carriage return, which
terminals and Jupyter both render without ipywidgets, unlike tqdm's notebook bar and
rich's live display (both warn, or print the widget's name, when ipywidgets is missing).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager

__all__ = ["resolve", "Bar", "step", "say", "library_bars_work", "quiet_notebook_imports"]

#: Seconds between redraws of a bar (its last state is always drawn).
REDRAW_SECONDS = 0.5

_lock = threading.Lock()


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except AttributeError:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _watched() -> bool:
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        return False
    if _in_jupyter():
        return True
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def resolve(progressbar) -> bool:
    """Whether to report progress: ``True``/``False`` as given, ``"auto"`` where watched.

    Examples
    --------
    >>> resolve(False), resolve(True)
    (False, True)
    """
    if progressbar == "auto" or progressbar is None:
        return _watched()
    return bool(progressbar)


def library_bars_work() -> bool:
    """Whether the samplers' own bars work here: not in Jupyter without ipywidgets.

    There PyMC's (rich) and numpyro's (tqdm) bars print warnings in place of a bar;
    bayesgmm's own lines are shown instead.
    """
    import importlib.util

    return not _in_jupyter() or importlib.util.find_spec("ipywidgets") is not None


def quiet_notebook_imports() -> None:
    """In Jupyter without ipywidgets, import ``tqdm.auto`` once with its warning silenced.

    numpyro and blackjax import ``tqdm.auto`` when they are imported, and in such a kernel
    it warns "TqdmWarning: IProgress not found. Please update jupyter and ipywidgets" in
    the first fit's output, about bars bayesgmm does not use there
    (:func:`library_bars_work`). Imported once, the module is not imported (nor does it
    warn) again.
    """
    if library_bars_work() or "tqdm.auto" in sys.modules:
        return
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tqdm.auto  # noqa: F401
    except ImportError:  # no tqdm: nothing will warn
        pass


def say(message: str, enabled: bool = True) -> None:
    """One line on standard error, prefixed ``bayesgmm: ``."""
    if enabled:
        with _lock:
            sys.stderr.write(f"bayesgmm: {message}\n")
            sys.stderr.flush()


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(round(s)), 60)
    return f"{m}:{s:02d}" if m < 60 else f"{m // 60}:{m % 60:02d}:{s:02d}"


@contextmanager
def step(what: str, enabled: bool):
    """Report ``what`` and, when it ends, how long it took (``what ... 1.2 s``)."""
    began = time.perf_counter()
    yield
    say(f"{what} ... {_seconds(time.perf_counter() - began)}", enabled)


class Bar:
    """A text progress bar: ``desc: 40% |####      | 400/1000 [0:04 < 0:06]``.

    Thread-safe (the chains of the blackjax driver update theirs from their threads); the
    ETA is the elapsed time times the remaining fraction. ``heartbeat``: seconds between
    redraws of an unchanged bar (its elapsed time), for steps that report only when they
    end. ``close()`` draws the final state and ends the line.
    """

    def __init__(self, total: int, desc: str, enabled: bool, width: int = 24,
                 heartbeat: float | None = None):
        self.total, self.desc, self.enabled, self.width = max(int(total), 1), desc, enabled, width
        self.done = 0
        self.began = time.perf_counter()
        self._drawn = 0.0
        self._closed = False
        self._last = ""
        self.note = ""
        if enabled:
            self._draw(force=True)
        if enabled and heartbeat:
            # Redrawn every ``heartbeat`` seconds while open, so that the elapsed time runs
            # on through a step that reports nothing until it ends (a compiled warm-up).
            threading.Thread(target=self._beat, args=(float(heartbeat),), daemon=True,
                             name="bayesgmm-progress").start()

    def _beat(self, every: float) -> None:
        while not self._closed:
            time.sleep(every)
            self._draw(force=True)

    def update(self, n: int = 1, note: str | None = None) -> None:
        """Count ``n`` more steps done (and replace the note after the bar)."""
        with _lock:
            self.done = min(self.total, self.done + int(n))
            if note is not None:
                self.note = note
        self._draw()

    def restart(self) -> None:
        """Time the steps from now (after a compilation, which would spoil the ETA)."""
        self.began = time.perf_counter()

    def _line(self) -> str:
        frac = self.done / self.total
        elapsed = time.perf_counter() - self.began
        eta = elapsed * (1 - frac) / frac if frac > 0 else None
        bar = "#" * int(round(frac * self.width))
        timing = _seconds(elapsed) + ("" if eta is None else f" < {_seconds(eta)}")
        note = f" {self.note}" if self.note else ""
        return (f"bayesgmm: {self.desc}: {frac:4.0%} |{bar:<{self.width}}| "
                f"{self.done}/{self.total} [{timing}]{note}")

    def _draw(self, force: bool = False) -> None:
        if not self.enabled or self._closed:
            return
        now = time.perf_counter()
        if not force and now - self._drawn < REDRAW_SECONDS and self.done < self.total:
            return
        with _lock:
            if self._closed:  # closed meanwhile (by another thread): its line has ended
                return
            self._drawn = now
            self._last = self._line()
            sys.stderr.write("\r" + self._last)
            sys.stderr.flush()

    def close(self, note: str | None = None, done: int | None = None) -> None:
        """Draw the final state (with ``note``) and end the line.

        ``done``: the steps the loop ran in all, which become its total (a loop that
        stopped early, as converged VI does, ends at 100%).
        """
        with _lock:
            if self._closed:
                return
            if note is not None:
                self.note = note
            if done is not None:
                self.done = self.total = max(int(done), 1)
            self._closed = True
            if self.enabled:
                line = self._line()
                # The final state once: not again where the last redraw showed it.
                sys.stderr.write("\n" if line == self._last else f"\r{line}\n")
                sys.stderr.flush()

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
