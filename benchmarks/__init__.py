"""Benchmarks of bayesgmm against the textbook PyMC mixture and scikit-learn.

Run ``.venv/bin/python -m benchmarks --help`` from the repository root; see README.md here.
"""
