"""The research side: datasets, models, experiments, CLI and plots.

It imports only the public API of :mod:`gumbel_softmax`; the library never imports it.
"""
