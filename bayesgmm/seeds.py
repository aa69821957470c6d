"""Random seeds: every random step of bayesgmm takes its generator or seed from here."""

from __future__ import annotations

import numpy as np

__all__ = ["check_random_state", "draw_seed", "draw_seeds"]


def check_random_state(random_state, name: str = "random_state") -> np.random.Generator:
    """A numpy Generator from ``random_state`` (None, a non-negative int or a Generator).

    A Generator is returned as it is (not copied), so that the caller's stream advances.
    """
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {random_state}.")
        return np.random.default_rng(random_state)
    if random_state is None:
        return np.random.default_rng()
    raise TypeError(
        f"{name} must be None, an int or a numpy Generator, got "
        f"{type(random_state).__name__}."
    )


def draw_seed(rng: np.random.Generator) -> int:
    """One integer seed in [0, 2**31 - 1) drawn from ``rng``."""
    return int(rng.integers(0, 2**31 - 1))


def draw_seeds(rng: np.random.Generator, n: int) -> list[int]:
    """``n`` distinct seeds drawn from ``rng``."""
    return [int(s) for s in rng.choice(2**31 - 1, size=n, replace=False)]
