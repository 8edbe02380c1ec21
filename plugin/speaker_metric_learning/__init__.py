"""End-to-end speaker verification with metric learning losses.

A SpeechBrain plugin reproducing Coria et al. (2020), "A Comparison of Metric
Learning Loss Functions for End-To-End Speaker Verification": a SincNet
front-end on raw waveforms, an x-vector TDNN, and six training losses.
"""

__version__ = "0.1.0"
