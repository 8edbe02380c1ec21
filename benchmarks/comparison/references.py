"""The reference points scored beside the comparison, outside it.

Owns ``REFERENCES``: mean+std log-mel (training-free,
``benchmarks/logmel_baseline.py``) and resemblyzer's pretrained GE2E
encoder (skipped when the package is absent), and ``evaluate_reference``,
which scores one of them on the clean trials and on every test-side
variant.
"""

import soundfile
import torch

from comparison.corpus import SAMPLE_RATE, audio_files
from comparison.evaluation import score_all
from speaker_metric_learning.scoring.trials import read_trials


def logmel_embedder():
    """Mean and std of 40 log-mel energies (the training-free baseline)."""
    from logmel_baseline import SYSTEMS as LOGMEL_SYSTEMS
    from speechbrain.lobes.features import Fbank

    _, summarise, _ = LOGMEL_SYSTEMS["mean+std log-mel (80), cosine"]
    fbank = Fbank(n_mels=40)

    def embed(waveform):
        with torch.no_grad():
            log_mel = fbank(torch.from_numpy(waveform)[None])[0].numpy()
        return summarise(log_mel)

    return embed


def resemblyzer_embedder():
    """resemblyzer's pretrained GE2E encoder (weights ship in its wheel)."""
    from resemblyzer import VoiceEncoder, preprocess_wav

    encoder = VoiceEncoder("cpu", verbose=False)

    def embed(waveform):
        processed = preprocess_wav(waveform, source_sr=SAMPLE_RATE)
        if len(processed) < SAMPLE_RATE // 2:  # VAD left (almost) nothing
            processed = waveform
        return encoder.embed_utterance(processed)

    return embed


REFERENCES = {
    "logmel": ("mean+std log-mel, training-free", logmel_embedder),
    "resemblyzer": ("resemblyzer GE2E, pretrained", resemblyzer_embedder),
}


def evaluate_reference(name, layout):
    """Clean and robustness results of one reference point."""
    folder = layout.reference(name)
    label, make_embedder = REFERENCES[name]
    trials = read_trials(layout.trials)
    embed = make_embedder()

    def embed_folder(variant):
        source = (
            layout.decoded("dev")
            if variant is None
            else (layout.variant(variant))
        )
        files = audio_files(source)
        return {
            utterance: embed(soundfile.read(path, dtype="float32")[0])
            for utterance, path in files.items()
        }

    score_all(folder, label, trials, embed_folder)


def resemblyzer_available():
    """Whether ``resemblyzer`` can be imported."""
    import importlib.util

    return importlib.util.find_spec("resemblyzer") is not None
