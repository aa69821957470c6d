"""Ctrl-C (SIGINT) during a fit raises ``KeyboardInterrupt``, whatever the fitter does with it.

PyMC's sampler and its variational fit catch ``KeyboardInterrupt`` and return what they have
(a truncated trace, the approximation so far), or fail later on the truncated trace with
another error; nutpie's blocking ``sample`` returns the aborted trace; compiled JAX code runs
to its end before the main thread sees the signal. bayesgmm never returns such a result:

- :func:`reraise_interrupts` wraps a fitter. While it runs (in the main thread, with Python's
  default SIGINT handler installed) a SIGINT is recorded before it raises
  ``KeyboardInterrupt`` as usual; if the fitter then returns anyway, or raises another
  error, ``KeyboardInterrupt`` is raised instead.
- :func:`wait_interruptibly` runs a call that cannot be interrupted (compiled JAX code) in a
  daemon thread and waits for it in short timed joins, which a SIGINT interrupts. The call
  is then abandoned: it runs to its end in the background (nothing can stop it) and its
  result is dropped. :func:`abandon` records such threads, and the interpreter waits for
  them when it exits: one that exits while XLA still runs in a thread crashed (SIGSEGV
  after numpyro, SIGABRT after blackjax).
"""

from __future__ import annotations

import atexit
import functools
import signal
import threading

__all__ = ["abandon", "interrupted", "pending", "raise_if_interrupted", "reraise_interrupts",
           "wait_for", "wait_interruptibly"]

_abandoned: list[threading.Event] = []
# The SIGINTs seen by each running reraise_interrupts wrapper (innermost last).
_seen: list[list[int]] = []


def _join_abandoned() -> None:
    for done in _abandoned:
        done.wait()


def abandon(done_events) -> None:
    """Leave threads running; the interpreter waits at exit until each sets its event.

    The exit hook is registered on first use, after JAX was imported, so it runs before
    JAX's own (exit hooks run last registered first).
    """
    if not _abandoned:
        atexit.register(_join_abandoned)
    _abandoned.extend(done_events)


def pending() -> bool:
    """Whether an abandoned thread still runs (the interpreter's exit would wait for it)."""
    return any(not done.is_set() for done in _abandoned)


def wait_for(done: threading.Event, poll: float = 0.1) -> None:
    """Wait until ``done`` is set, in timed waits that a SIGINT interrupts.

    Not ``Thread.join``: a KeyboardInterrupt inside ``join`` can mark the thread as stopped
    while it still runs (CPython's ``_wait_for_tstate_lock`` then releases the running
    thread's lock), and the interpreter no longer waits for it.
    """
    while not done.wait(poll):
        pass


def _interrupted(message: str) -> KeyboardInterrupt:
    return KeyboardInterrupt(f"bayesgmm: fit interrupted ({message}); no result is returned")


def interrupted() -> bool:
    """Whether the running fitter's library swallowed a SIGINT (PyMC's VI returns then)."""
    return bool(_seen and _seen[-1])


def raise_if_interrupted() -> None:
    """Raise ``KeyboardInterrupt`` now if the running fitter's library swallowed a SIGINT.

    For fitters with several phases (full-rank ADVI after the mean field): PyMC's fit
    returns its approximation so far on Ctrl-C, and the next phase would otherwise run,
    compile included, before :func:`reraise_interrupts` raises at the end.
    """
    if _seen and _seen[-1]:
        raise _interrupted("between the fit's phases")


def reraise_interrupts(func):
    """Decorate a fitter so a SIGINT during it always ends in ``KeyboardInterrupt``.

    Does nothing outside the main thread (Python delivers signals there only) or when
    another SIGINT handler than Python's default is installed (it is left in charge).
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            return func(*args, **kwargs)
        seen = []

        def handler(signum, frame):
            seen.append(signum)
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, handler)
        _seen.append(seen)
        try:
            out = func(*args, **kwargs)
        except KeyboardInterrupt:
            raise
        except BaseException:
            if seen:  # caught by the fitter, which then failed on what it had (PyMC:
                # "Not enough samples to build a trace."): that error is not the user's
                raise _interrupted("the fitter failed on its truncated result") from None
            raise
        finally:
            _seen.pop()
            signal.signal(signal.SIGINT, previous)
        if seen:  # the fitter caught the interrupt and returned a truncated result
            raise _interrupted("the sampler stopped early")
        return out

    return wrapper


def wait_interruptibly(func, *args, poll: float = 0.1):
    """``func(*args)`` in a daemon thread; the main thread waits where SIGINT reaches it.

    Returns its result or raises its exception. On ``KeyboardInterrupt`` the thread is
    abandoned (:func:`abandon`) and runs to its end.
    """
    box: dict = {}
    done = threading.Event()

    def target():
        try:
            box["value"] = func(*args)
        except BaseException as exc:  # handed to the waiting thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name="bayesgmm-worker", daemon=True).start()
    try:
        wait_for(done, poll)
    except KeyboardInterrupt:
        abandon([done])
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]
