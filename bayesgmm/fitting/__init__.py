"""Fitting: the pipeline behind :func:`bayesgmm.fit` (:mod:`.pipeline`).

X -> :mod:`~bayesgmm.validation` -> standardise (:class:`~bayesgmm.model.Standardizer`) ->
:mod:`.start` (EM) -> :func:`~bayesgmm.model.build_model` -> one fitter (:mod:`.nuts`,
:mod:`.vi`, :mod:`.map`) -> :mod:`.result` (relabel, back to the user's scale, the DataTree)
-> :func:`~bayesgmm.diagnostics.check`.

This package imports nothing itself, so that the layers below the pipeline (diagnostics
reads fits through :mod:`.result`) can import its modules without importing the pipeline.
"""
