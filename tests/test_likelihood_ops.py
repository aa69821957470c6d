"""The likelihood Ops (bayesgmm.likelihood.ops) against PyTensor's own graph and autodiff."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from helpers import random_chol_params as random_params

from bayesgmm.likelihood import kernels, ops
from bayesgmm.likelihood.ops import mixture_log_likelihood, mixture_log_likelihood_graph


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA", "JAX"])
def test_op_value_and_gradient_match_the_graph(rng, mode):
    """Value and gradient (through the inverse factors) against PyTensor's own autodiff of
    the graph-level likelihood, in every backend bayesgmm compiles with."""
    n, d, k = 150, 3, 4
    X = rng.normal(size=(n, d))
    w0, mu0, chol0 = random_params(rng, k, d)
    g0 = rng.normal(size=n)  # an arbitrary upstream gradient, not only ones
    w, m, c = pt.vector("w"), pt.matrix("m"), pt.tensor3("c")
    results = []
    for fn in (mixture_log_likelihood, mixture_log_likelihood_graph):
        ll = fn(pt.constant(X), w, m, c, n_components=k, n_features=d)
        grads = pytensor.grad(pt.dot(ll, pt.constant(g0)), [w, m, c])
        f = pytensor.function([w, m, c], [ll, *grads], mode=mode)
        results.append(f(w0, mu0, chol0))
    for ours, ref in zip(*results, strict=True):
        np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def test_numba_cache_key_follows_the_kernel_source(monkeypatch):
    # PyTensor caches compiled graphs on disk with the kernels inside: a changed kernel must
    # change the Ops' cache key, or a graph compiled by an older version would be served.
    import hashlib
    from pathlib import Path

    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key


    ops._register_backends()
    source = b"".join(module.__name__.encode() + b"\0" + Path(module.__file__).read_bytes()
                      for module in (kernels, ops))
    assert ops.kernel_version() == int(hashlib.sha256(source).hexdigest()[:15], 16)
    keys = {numba_funcify_and_cache_key(op)[1]
            for op in (ops.MixtureLogLik(), ops.MixtureLogLikGrad())}
    assert len(keys) == 2 and None not in keys
    # The key is derived from the version: another source gives other keys.
    monkeypatch.setattr(ops, "kernel_version", lambda: 1)
    other = {numba_funcify_and_cache_key(op)[1]
             for op in (ops.MixtureLogLik(), ops.MixtureLogLikGrad())}
    assert len(other) == 2 and not other & keys
