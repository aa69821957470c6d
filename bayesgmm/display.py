"""HTML representations for notebooks: of a fitted BayesianGMM and of its Diagnostics.

Jupyter shows these in place of the plain text; every value is escaped. Both are short
tables that say what was fitted, how, for how long, whether the diagnostics found problems
(and which, with their advice) and the weights.
"""

from __future__ import annotations

from html import escape

import numpy as np

__all__ = ["diagnostics_html", "fit_html"]

_STYLE = ("<style>.bayesgmm-repr table{border-collapse:collapse;margin:0.2em 0}"
          ".bayesgmm-repr th,.bayesgmm-repr td{text-align:left;padding:0.1em 0.6em;"
          "vertical-align:top}.bayesgmm-repr .ok{color:#1a7f37}.bayesgmm-repr .bad"
          "{color:#b35900}.bayesgmm-repr td.num{text-align:right;"
          "font-variant-numeric:tabular-nums}</style>")


def _table(rows) -> str:
    body = "".join(f"<tr><th>{escape(str(k))}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _verdict(diag) -> str:
    if diag.ok:
        return '<span class="ok">no problems found</span>'
    items = "".join(f"<li><b>{escape(p.kind)}</b> ({escape(p.category.__name__)}): "
                    f"{escape(p.message)}</li>" for p in diag.problems)
    return (f'<span class="bad">{len(diag.problems)} problem(s)</span>'
            f"<ul style=\"margin:0.2em 0\">{items}</ul>")


def diagnostics_html(diag) -> str:
    """An HTML table of a :class:`~bayesgmm.Diagnostics`: what applies to its method only.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import diagnose, fit
    >>> X = np.random.default_rng(0).normal(size=(40, 1)) + np.repeat([[0.0], [6.0]], 20, axis=0)
    >>> html = diagnose(fit(X, 2, method="map", random_state=0))._repr_html_()
    >>> "R-hat" in html, "optimiser converged" in html
    (False, True)
    """
    run = f"{diag.method}" + (f" ({diag.sampler})" if diag.sampler else "")
    rows = [("method", escape(run)),
            ("draws", f"{diag.n_chains} chain(s) &times; {diag.n_draws} draw(s)")]
    rows += [(name, escape(value)) for name, value in diag._rows()]
    rows.append(("verdict", _verdict(diag)))
    return (f'<div class="bayesgmm-repr">{_STYLE}<b>bayesgmm diagnostics</b>'
            f"{_table(rows)}</div>")


def _weights_table(estimator) -> str:
    draws = estimator._draws.weights  # (S, K)
    header = "<tr><th>component</th><th>weight</th>"
    spread = draws.shape[0] > 1
    if spread:
        header += "<th>94% interval</th>"
    if hasattr(estimator, "classes_"):
        header += "<th>label</th>"
    header += "</tr>"
    lo, hi = np.quantile(draws, [0.03, 0.97], axis=0) if spread else (None, None)
    body = ""
    for j, w in enumerate(estimator.weights_):
        body += f'<tr><td>{j}</td><td class="num">{w:.3f}</td>'
        if spread:
            body += f'<td class="num">{lo[j]:.3f} &ndash; {hi[j]:.3f}</td>'
        if hasattr(estimator, "classes_"):
            label = estimator.classes_[j] if j < len(estimator.classes_) else "(free)"
            body += f"<td>{escape(str(label))}</td>"
        body += "</tr>"
    return f"<table>{header}{body}</table>"


def fit_html(estimator) -> str:
    """An HTML summary of a fitted :class:`~bayesgmm.BayesianGMM`.

    The method and sampler, the data's size, the fit's wall-clock time, the diagnostics'
    verdict (with each problem's advice) and the posterior mean weights with their 94%
    intervals.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import BayesianGMM
    >>> X = np.random.default_rng(0).normal(size=(40, 1)) + np.repeat([[0.0], [6.0]], 20, axis=0)
    >>> html = BayesianGMM(2, method="map", random_state=0).fit(X)._repr_html_()
    >>> "40 rows" in html and "no problems found" in html
    True
    """
    from .fitting.result import FIT_SECONDS_ATTR, fit_info

    tree = estimator.idata_
    post = tree["posterior"]
    info = fit_info(tree)
    diag = estimator._cached_diagnostics()
    k = post.sizes["component"]
    names = [str(f) for f in estimator.feature_names_in_]
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
    rows = [("model", escape(f"{k} component(s), {info.covariance_type} covariances"
                             + (", Student-t" if getattr(estimator, "dof_", None) is not None
                                else "")
                             + (", noise component" if hasattr(estimator, "noise_weight_")
                                else "")))]
    run = info.method + (f" ({info.sampler})" if info.sampler else "")
    if info.method == "map":
        rows.append(("method", escape(run)))
    else:
        rows.append(("method", escape(run) + f", {post.sizes['chain']} chain(s) &times; "
                     f"{post.sizes['draw']} draw(s)"))
    if "observed_data" in tree.children:
        n = tree["observed_data"]["x"].shape[0]
        rows.append(("data", f"{n} rows &times; {len(names)} features: {escape(shown)}"))
    seconds = post.attrs.get(FIT_SECONDS_ATTR)
    if seconds is not None:
        rows.append(("fit time", f"{float(seconds):.3g} s"))
    rows.append(("verdict", _verdict(diag)))
    if hasattr(estimator, "noise_weight_"):
        rows.append(("noise weight", f"{estimator.noise_weight_:.3f}"))
    rows.append(("weights", _weights_table(estimator)))
    return (f'<div class="bayesgmm-repr">{_STYLE}<b>{escape(type(estimator).__name__)}</b>'
            f"{_table(rows)}</div>")
