"""Speaker verification evaluation: trials, scoring, metrics, plots.

Submodules: ``metrics`` (EER, minDCF, Cllr, bootstrap confidence intervals),
``trials`` (trial lists, fingerprints, score files), ``cosine`` (cosine
scoring of trial lists), ``normalization`` (s-norm, adaptive s-norm),
``embeddings`` (batched, cached extraction), ``evaluation`` (embed, score
and measure a trial list: the one evaluation), ``plots`` (DET curves, score
histograms), ``compare`` (results folders and comparison tables),
``significance`` (paired bootstrap of two systems), ``summaries`` (a metric
over several runs: mean ± sd, t-interval), ``cli`` (the command line,
``python -m speaker_metric_learning.scoring``).
"""
