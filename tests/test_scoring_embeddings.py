"""Tests of speaker_metric_learning.scoring.embeddings."""

import numpy as np
import pytest
import soundfile
import speechbrain as sb
import torch

from speaker_metric_learning.data import evaluation_dataset
from speaker_metric_learning.scoring.embeddings import (
    extract_embeddings,
    sliding_windows,
)


class TinyConvPooling(torch.nn.Module):
    """Conv1d + ReLU + mean over the frames that see no padding."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv1d(1, 3, kernel_size=5, stride=2)
        self.calls = 0

    def forward(self, wavs, lengths=None):
        self.calls += 1
        frames = torch.relu(self.conv(wavs[:, None]))
        if lengths is None:
            lengths = torch.ones(len(wavs))
        samples = torch.round(lengths * wavs.shape[1])
        valid = torch.div(samples - 5, 2, rounding_mode="floor") + 1
        mask = torch.arange(frames.shape[-1]) < valid[:, None]
        pooled = (frames * mask[:, None]).sum(-1) / valid[:, None]
        return pooled[:, None]


def _utterances(lengths):
    generator = torch.Generator().manual_seed(1)
    return [
        (f"u{i}", torch.randn(n, generator=generator))
        for i, n in enumerate(lengths)
    ]


def _one_by_one(model, waveforms):
    with torch.no_grad():
        return torch.cat([model(w[None])[:, 0] for w in waveforms])


def test_batched_extraction_equals_one_by_one():
    model = TinyConvPooling()
    pairs = _utterances([40, 17, 33, 40, 9, 25, 12])
    ids, batched = extract_embeddings(
        model, pairs, batch_size=3, progress=False
    )
    assert ids == [i for i, _ in pairs]
    expected = _one_by_one(model, [w for _, w in pairs])
    assert torch.allclose(batched, expected, atol=1e-6)


def test_sliding_windows_cover_the_end():
    assert sliding_windows(torch.arange(8.0), 4, 2).shape == (3, 4)
    last = sliding_windows(torch.arange(9.0), 4, 2)[-1]
    assert last.tolist() == [5.0, 6.0, 7.0, 8.0]
    assert sliding_windows(torch.arange(3.0), 4, 2).shape == (1, 3)


def test_windowed_extraction_averages_window_embeddings():
    model = TinyConvPooling()
    # 10 samples per "second": window 2 s = 20 samples, step 0.5 s = 5.
    pairs = _utterances([47, 12, 20, 31])
    ids, averaged = extract_embeddings(
        model,
        pairs,
        batch_size=4,
        window=2.0,
        step=0.5,
        sample_rate=10,
        progress=False,
    )
    expected = []
    for _, waveform in pairs:
        starts = list(range(0, len(waveform) - 20 + 1, 5))
        if len(waveform) <= 20:
            windows = [waveform]
        else:
            if starts[-1] + 20 < len(waveform):
                starts.append(len(waveform) - 20)
            windows = [waveform[s : s + 20] for s in starts]
        expected.append(_one_by_one(model, windows).mean(0))
    assert torch.allclose(averaged, torch.stack(expected), atol=1e-6)


def test_cache_skips_the_model_until_weights_or_ids_change(tmp_path):
    model = TinyConvPooling()
    pairs = _utterances([30, 20])
    first = extract_embeddings(model, pairs, cache_dir=tmp_path, progress=False)
    calls = model.calls
    again = extract_embeddings(model, pairs, cache_dir=tmp_path, progress=False)
    assert model.calls == calls
    assert again[0] == first[0] and torch.equal(again[1], first[1])
    extract_embeddings(model, pairs[:1], cache_dir=tmp_path, progress=False)
    assert model.calls == calls + 1
    with torch.no_grad():
        model.conv.bias += 1.0
    changed = extract_embeddings(
        model, pairs, cache_dir=tmp_path, progress=False
    )
    assert model.calls == calls + 2
    assert not torch.equal(changed[1], first[1])


def test_speechbrain_dataset_items_are_accepted():
    pairs = _utterances([30, 20, 25])
    dataset = sb.dataio.dataset.DynamicItemDataset(
        {utterance: {"wave": w} for utterance, w in pairs},
        output_keys=["id", "sig"],
        dynamic_items=[
            {"func": lambda wave: wave, "takes": "wave", "provides": "sig"}
        ],
    )
    model = TinyConvPooling()
    ids, embeddings = extract_embeddings(model, dataset, progress=False)
    _, expected = extract_embeddings(model, pairs, progress=False)
    assert ids == ["u0", "u1", "u2"]
    assert torch.allclose(embeddings, expected)


def test_step_without_window_is_refused():
    with pytest.raises(ValueError, match="step is given without window"):
        extract_embeddings(TinyConvPooling(), _utterances([30]), step=0.1)


def test_cache_embeds_again_when_an_audio_file_changes(tmp_path):
    rng = np.random.default_rng(0)
    rows = ["ID,duration,wav,spk_id"]
    for name in ("a", "b"):
        path = tmp_path / f"{name}.wav"
        soundfile.write(path, rng.uniform(-0.5, 0.5, 400), 16000)
        rows.append(f"s/{name},0.025,{path},s")
    csv_path = tmp_path / "eval.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    model = TinyConvPooling()

    def embed():
        return extract_embeddings(
            model,
            evaluation_dataset(str(csv_path)),
            cache_dir=tmp_path / "cache",
            progress=False,
        )

    first = embed()
    calls = model.calls
    assert torch.equal(embed()[1], first[1]) and model.calls == calls
    # same ids, same size, new samples: embedded again
    soundfile.write(tmp_path / "b.wav", rng.uniform(-0.5, 0.5, 400), 16000)
    changed = embed()
    assert model.calls > calls
    assert torch.equal(changed[1][0], first[1][0])
    assert not torch.equal(changed[1][1], first[1][1])
