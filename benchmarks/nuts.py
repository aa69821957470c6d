"""Time to a converged posterior: bayesgmm (each installed sampler) vs the textbook model.

A configuration is fitted with ``draws`` draws per chain; if the relabelled posterior has not
converged (max R-hat <= 1.01 and min bulk ESS >= 400 over all parameters), it is fitted again
from scratch with twice the draws, up to ``attempts`` fits. The time to a converged posterior
is the wall time of all those fits, compilation included; if none converged it is "failed".

bayesgmm: :func:`bayesgmm.fit` with each installed sampler, defaults otherwise (EM start,
relabelling, log-likelihood and diagnostics all inside the timing).

Textbook model (:func:`benchmarks.models.textbook_model`, same priors, same standardised data):

* ``pm.sample``: PyMC's NUTS, PyTensor's default backend, ``pm.sample`` defaults otherwise;
* ``nutpie``: ``nutpie.compile_pymc_model`` + ``nutpie.sample``, nutpie's defaults (numba).

By default (``--textbook-init em``) the textbook chains start where bayesgmm's do: the same
EM solution with the same small jitter, and no sampler jitter on top (``init="adapt_diag"``
for ``pm.sample``, ``jitter_rvs=set()`` for nutpie; a list of start points also keeps
``pm.sample`` on PyMC's own NUTS, where with no start it would hand over to nutpie). The EM
start and the relabelling are inside the textbook's timing too. ``--textbook-init default``
leaves the start to the sampler as well, and ``--textbook-backend jax`` compiles the textbook
model with JAX instead of PyTensor's default (numba), which the smoke test uses to save time.
"""

from __future__ import annotations

import importlib.util
from contextlib import nullcontext

import numpy as np

from .common import (
    K_DEFAULT,
    Section,
    Stopwatch,
    case_label,
    failure,
    is_number,
    make_data,
    means_error,
    ratio,
)
from .convergence import (
    ESS_MIN,
    RHAT_MAX,
    converged,
    parameters,
    relabel_draws,
    rhat_ess,
    sampler_stats,
)
from .sizes import Size
from .worker import run_task

OUR_SAMPLERS = ("blackjax", "nutpie", "numpyro", "pymc")
BASELINES = ("pm.sample", "nutpie")


def installed_samplers() -> list[str]:
    return [s for s in OUR_SAMPLERS
            if s == "pymc" or importlib.util.find_spec(s) is not None]


def default_sampler(n_obs: int | None = None) -> str:
    from bayesgmm.fitting.nuts import default_sampler

    return default_sampler(n_obs)


# ----------------------------------------------------------------------------- one fit
def _summarise(truth, weights, means, covariances, stats) -> dict:
    max_rhat, min_ess = rhat_ess(parameters(weights, means, covariances))
    err_mean, err_weight = means_error(truth, weights.mean(axis=(0, 1)), means.mean(axis=(0, 1)))
    return {"max_rhat": max_rhat, "min_ess": min_ess, "mean_error": err_mean,
            "weight_error": err_weight, **sampler_stats(stats)}


def fit_ours(spec: dict) -> dict:
    """Task: one :func:`bayesgmm.fit` by NUTS, timed; with ``profile``, step by step."""
    import bayesgmm

    from .profile import ordered, stage_timers

    k = spec.get("k", K_DEFAULT)
    truth = make_data(spec["n"], spec["d"], k, spec["seed"])
    timers = stage_timers() if spec.get("profile") else nullcontext({})
    with timers as stages:
        watch = Stopwatch()
        result = bayesgmm.fit(truth.X, k, method="nuts", sampler=spec["sampler"],
                              draws=spec["draws"], tune=spec["tune"], chains=spec["chains"],
                              random_state=spec["seed"])
        wall = watch.seconds
    post = result["posterior"]
    stats = result["sample_stats"].to_dataset() if "sample_stats" in result.children else None
    out = {"wall_s": wall, "sampler_used": post.attrs.get("bayesgmm_sampler", ""),
           **_summarise(truth, post["weights"].to_numpy(), post["means"].to_numpy(),
                        post["covariances"].to_numpy(), stats)}
    if spec.get("profile"):
        out["stages"] = ordered(stages)
        if spec.get("profile_split") and spec["sampler"] == "blackjax":
            out["one_chain"] = _blackjax_one_chain(truth.X, k, spec)
    return out


def _blackjax_one_chain(X, k, spec) -> dict:
    """Compile and run bayesgmm's blackjax chain alone: its warm-up, then its draws, apart.

    The driver compiles the two as separate functions (``_chain_functions``); here each is
    compiled and timed on its own. ``full_run_s`` is warm-up plus draws, as the report
    expects."""
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    from bayesgmm.fitting.blackjax_driver import _chain_functions, _initial_positions
    from bayesgmm.fitting.start import em_start
    from bayesgmm.model import build_model
    from bayesgmm.standardize import Standardizer

    Z = Standardizer.fit(X).transform(X)
    start = em_start(Z, k, random_state=spec["seed"])
    model = build_model(Z, k)
    logp = get_jaxified_logp(model)
    position = [p[0] for p in _initial_positions(model, [start.point()])]
    warmup_key, sample_key = jax.random.split(jax.random.key(spec["seed"]))
    keys = jax.random.split(sample_key, spec["draws"])
    warmup, sample = _chain_functions(logp, tune=spec["tune"], target_accept=0.9)
    out = {}
    watch = Stopwatch()
    warmup_c = jax.jit(warmup).lower(warmup_key, position).compile()
    out["warmup_compile_s"] = watch.seconds
    watch = Stopwatch()
    state, params = jax.block_until_ready(warmup_c(warmup_key, position))
    out["warmup_run_s"] = watch.seconds
    watch = Stopwatch()
    sample_c = jax.jit(sample).lower(state, params, keys).compile()
    out["full_compile_s"] = out["warmup_compile_s"] + watch.seconds
    watch = Stopwatch()
    _, _, stats = jax.block_until_ready(sample_c(state, params, keys))
    out["full_run_s"] = out["warmup_run_s"] + watch.seconds
    out["draws"] = spec["draws"]
    out["grad_evals"] = float(np.sum(stats["n_steps"]))
    return out


def fit_textbook(spec: dict) -> dict:
    """Task: the textbook model sampled by ``pm.sample`` or nutpie, relabelled, timed."""
    import pymc as pm

    from bayesgmm.fitting.nuts import draws_from_posterior
    from bayesgmm.fitting.start import em_start, jittered
    from bayesgmm.standardize import Standardizer

    from .models import textbook_model

    k, d = spec.get("k", K_DEFAULT), spec["d"]
    truth = make_data(spec["n"], d, k, spec["seed"])
    em_init = spec.get("init", "em") == "em"
    watch = Stopwatch()
    std = Standardizer.fit(truth.X)
    Z = std.transform(truth.X)
    start = em_start(Z, k, random_state=spec["seed"])
    rng = np.random.default_rng(spec["seed"])
    initvals = [jittered(start, rng) for _ in range(spec["chains"])]
    model = textbook_model(Z, k)
    jax_backend = spec.get("backend", "default") == "jax"
    if spec["baseline"] == "pm.sample":
        kwargs = {"initvals": initvals, "init": "adapt_diag"} if em_init else {}
        if jax_backend:
            kwargs["compile_kwargs"] = {"mode": "JAX"}
        idata = pm.sample(spec["draws"], tune=spec["tune"], chains=spec["chains"],
                          random_seed=spec["seed"], progressbar=False, model=model, **kwargs)
    elif spec["baseline"] == "nutpie":
        import nutpie

        kwargs = {"initial_points": initvals[0], "jitter_rvs": set()} if em_init else {}
        if jax_backend:
            kwargs["backend"] = "jax"
        compiled = nutpie.compile_pymc_model(model, **kwargs)
        idata = nutpie.sample(compiled, draws=spec["draws"], tune=spec["tune"],
                              chains=spec["chains"], seed=spec["seed"], progress_bar=False)
    else:
        raise ValueError(f"unknown baseline {spec['baseline']!r}")
    raw = draws_from_posterior(idata["posterior"].to_dataset(), k, d)
    w, mu, chols = relabel_draws(raw["weights"], raw["means"], raw["chols"], start.means,
                                 start.covariances)
    wall = watch.seconds
    means = std.means_to_user(mu)
    chols_user = std.chols_to_user(chols)
    covs = chols_user @ np.swapaxes(chols_user, -1, -2)
    stats = idata["sample_stats"].to_dataset() if "sample_stats" in idata.children else None
    return {"wall_s": wall, "sampler_used": idata["posterior"].attrs.get("inference_library", ""),
            **_summarise(truth, w, means, covs, stats)}


# ----------------------------------------------------------------------------- attempts
def time_to_converged(spec: dict, size: Size, *, isolate: bool) -> dict:
    """Fit, doubling the draws until converged (at most ``size.attempts`` fits)."""
    total, res = 0.0, {}
    warnings_: list[str] = []
    for attempt in range(size.attempts):
        spec = {**spec, "draws": size.draws * 2**attempt, "attempt": attempt + 1}
        res = run_task(spec, isolate=isolate, timeout=size.timeout_s)
        warnings_ += res.get("warnings", [])
        if "error" in res:
            res["status"] = res["error"]
            break
        total += res["wall_s"]
        if converged(res["max_rhat"], res["min_ess"]):
            res["status"] = "converged"
            break
        res["status"] = failure(f"not converged after {attempt + 1} fit(s): R-hat "
                                f"{res['max_rhat']:.3f} (max {RHAT_MAX}), ESS "
                                f"{res['min_ess']:.0f} (min {ESS_MIN:.0f})")
    res.update(total_s=total if total > 0 else None, attempts=spec["attempt"],
               draws=spec["draws"], warnings=warnings_)
    if is_number(res.get("min_ess")) and is_number(res.get("wall_s")):
        res["ess_per_s"] = res["min_ess"] / res["wall_s"]
    return res


def configurations(opts) -> list[tuple[str, str]]:
    """(model, sampler) pairs to run: bayesgmm's samplers, then the textbook baselines."""
    ours = [s for s in installed_samplers() if opts.samplers is None or s in opts.samplers]
    base = [b for b in BASELINES if opts.baselines is None or b in opts.baselines]
    if "nutpie" in base and importlib.util.find_spec("nutpie") is None:
        base.remove("nutpie")
    return [("bayesgmm", s) for s in ours] + [("pm.Mixture", b) for b in base]


# ----------------------------------------------------------------------------- section
RUN_COLUMNS = ["case", "model", "sampler", "fits", "draws/chain", "time to converged s",
               "wall s (all fits)", "max R-hat", "min bulk ESS", "ESS/s", "grad evals/draw",
               "tree depth", "divergences", "mean error", "status"]
RATIO_COLUMNS = ["case", "bayesgmm sampler", "textbook", "time ratio (textbook/ours)",
                 "ESS/s ratio (ours/textbook)", "both converged"]


def _row(case, model, sampler, res) -> dict:
    ok = res.get("status") == "converged"
    return {
        "case": case, "model": model, "sampler": sampler, "fits": res.get("attempts"),
        "draws/chain": res.get("draws"),
        "time to converged s": res["total_s"] if ok else "failed",
        "wall s (all fits)": res.get("total_s"), "max R-hat": res.get("max_rhat"),
        "min bulk ESS": res.get("min_ess"), "ESS/s": res.get("ess_per_s"),
        "grad evals/draw": res.get("grad_per_draw"), "tree depth": res.get("tree_depth"),
        "divergences": res.get("divergences"), "mean error": res.get("mean_error"),
        "status": res.get("status"),
    }


def _description(size: Size, opts) -> str:
    warm = ("Before each case untimed short fits fill the on-disk numba caches (bayesgmm's "
            "on another data set of the same size)"
            if opts.warm_caches and opts.textbook_backend == "default"
            else "On-disk compile caches are as this machine has them")
    where = "Each fit ran in its own process" if opts.isolate else "All fits ran in one process"
    return (
        f"K=3; {size.chains} chains x {size.tune} tune, {size.draws} draws per chain (doubled "
        f"up to {size.attempts} fit(s) until max R-hat <= {RHAT_MAX} and min bulk ESS >= "
        f"{ESS_MIN:.0f} over weights, means, sigmas and correlations after relabelling); wall "
        f"time includes compilation, the EM start and relabelling. Textbook model: start "
        f"{opts.textbook_init}, backend {opts.textbook_backend} (see benchmarks/nuts.py). "
        f"{warm}; the cold section measures a first fit. {where}. 'mean error': largest "
        f"Mahalanobis distance between the posterior mean and the true means.")


def run(size: Size, opts) -> Section:
    section = Section("nuts", "NUTS: time to a converged posterior", _description(size, opts))
    runs = section.table("Fits", RUN_COLUMNS)
    ratios = section.table("Same-run ratios", RATIO_COLUMNS)
    configs = configurations(opts)
    default = default_sampler(size.target_case[1])
    ours = [s for m, s in configs if m == "bayesgmm"]
    profiled = default if default in ours else (ours[0] if ours else None)
    results: dict = {}
    for d, n in size.nuts_cases:
        case = case_label(d, n)
        _warm_caches(section, d, n, configs, size, opts)
        for model, sampler in configs:
            spec = {"d": d, "n": n, "seed": opts.seed, "tune": size.tune, "chains": size.chains,
                    "label": f"{case} {model}/{sampler}"}
            if model == "bayesgmm":
                profile = (d, n) == size.target_case and sampler == profiled
                spec.update(task="nuts_ours", sampler=sampler, profile=profile,
                            profile_split=profile and size.profile_split)
            else:
                spec.update(task="nuts_textbook", baseline=sampler, init=opts.textbook_init,
                            backend=opts.textbook_backend)
            res = time_to_converged(spec, size, isolate=opts.isolate)
            results[(d, n, model, sampler)] = res
            runs.rows.append(_row(case, model, sampler, res))
            section.notes += res.get("warnings", [])[:3]
            opts.log(f"  nuts {case} {model}/{sampler}: {res.get('status')} "
                     f"({res.get('total_s') or 0:.1f} s)")
        _add_ratios(ratios, case, d, n, configs, results)
    section.data = {"results": results, "default_sampler": default, "profiled": profiled}
    target = results.get(size.target_case + ("bayesgmm", profiled))
    if target and "stages" in target:
        _add_profile(section, target)
    return section


def _warm_caches(section, d, n, configs, size, opts) -> None:
    """Fill the on-disk numba caches with short, untimed fits of each configuration.

    Both models' numba code is cached on disk, which a cold cache makes cost 8 s (bayesgmm)
    to a minute or more (textbook); JAX keeps nothing between processes. The timed fits thus
    meet a warm cache, as a user's second fit does (the cold section measures the first).
    bayesgmm's warm-up fit runs on another data set of the same size (the next seed): its
    cache is keyed by the model's structure, not by the data.
    """
    if not opts.warm_caches or opts.textbook_backend != "default":
        return
    from bayesgmm.fitting.compile import plan_compilation

    for model, sampler in configs:
        common = {"d": d, "n": n, "draws": 20, "tune": 20, "chains": size.chains,
                  "label": f"cache warm-up {case_label(d, n)} {model}/{sampler}"}
        if model == "pm.Mixture":
            spec = {**common, "task": "nuts_textbook", "seed": opts.seed, "baseline": sampler,
                    "init": opts.textbook_init, "backend": "default"}
        elif sampler in ("nutpie", "pymc") and plan_compilation(
                "auto", method="nuts", sampler=sampler, n_obs=n).nuts_backend == "numba":
            spec = {**common, "task": "nuts_ours", "seed": opts.seed + 1, "sampler": sampler}
        else:
            continue
        res = run_task(spec, isolate=opts.isolate, timeout=size.timeout_s)
        took = f"{res['wall_s']:.1f} s" if "wall_s" in res else res.get("error")
        data = "other data, " if model == "bayesgmm" else ""
        section.notes.append(f"untimed cache warm-up fit, {model} {sampler} at "
                             f"{case_label(d, n)} ({data}20 + 20 draws): {took}")


def _add_ratios(table, case, d, n, configs, results) -> None:
    for model, sampler in configs:
        if model != "bayesgmm":
            continue
        ours = results[(d, n, model, sampler)]
        for base_model, base in configs:
            if base_model == "bayesgmm":
                continue
            theirs = results[(d, n, base_model, base)]
            both = ours.get("status") == "converged" and theirs.get("status") == "converged"
            table.add(**{
                "case": case, "bayesgmm sampler": sampler, "textbook": base,
                "time ratio (textbook/ours)": ratio(theirs.get("total_s"), ours.get("total_s")),
                "ESS/s ratio (ours/textbook)": ratio(ours.get("ess_per_s"),
                                                     theirs.get("ess_per_s")),
                "both converged": "yes" if both else "no",
            })


def _add_profile(section: Section, res: dict) -> None:
    """Where the time of the default sampler's fit at the target case went."""
    wall = res["wall_s"]
    prof = section.table(f"Profile of one bayesgmm fit ({res.get('sampler_used')}, target "
                         f"case, last fit: {res['draws']} draws/chain)",
                         ["step", "seconds", "share of fit"])
    for label, seconds in res["stages"]:
        prof.add(**{"step": label, "seconds": seconds, "share of fit": seconds / wall})
    prof.add(**{"step": "whole fit", "seconds": wall, "share of fit": 1.0})
    one = res.get("one_chain")
    if not one:
        return
    facts = section.table("The sampler's work (one chain run alone, same model and start)",
                          ["quantity", "value"])
    sampling_s = one["full_run_s"] - one["warmup_run_s"]
    per_grad = float("nan")
    if sampling_s > 0 and one["grad_evals"] > 0:
        per_grad = sampling_s / one["grad_evals"]
    else:
        section.notes.append("The one-chain runs were too short to tell warm-up from sampling.")
    rows = [
        ("XLA compile of one chain, s", one["full_compile_s"]),
        ("warm-up (tune steps + 1 draw), s", one["warmup_run_s"]),
        ("sampling (the draws), s", sampling_s),
        ("gradient evaluations per draw", one["grad_evals"] / one["draws"]),
        ("gradient evaluations in sampling", one["grad_evals"]),
        ("seconds per gradient evaluation in the sampler, us", per_grad * 1e6),
        ("warm-up gradient evaluations (estimated: warm-up s / s per gradient)",
         one["warmup_run_s"] / per_grad if per_grad > 0 else float("nan")),
    ]
    for name, value in rows:
        facts.add(quantity=name, value=value)
    section.data["one_chain"] = {**one, "sampling_s": sampling_s, "per_grad_s": per_grad}
