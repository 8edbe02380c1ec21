"""Tests of SincTDNN, its length-aware normalisation and pooling, and of the
Fbank wrapper of SpeechBrain's x-vector and ECAPA-TDNN encoders."""

import pytest
import torch
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.lobes.models.Xvector import Xvector
from speechbrain.nnet.pooling import StatisticsPooling
from speechbrain.processing.features import InputNormalization

from speaker_metric_learning.front_ends import (
    SincConvFrontEnd,
    SincFilterbankFrontEnd,
)
from speaker_metric_learning.layers import (
    MaskedInstanceNorm1d,
    MaskedStatisticsPooling,
    valid_frame_mask,
)
from speaker_metric_learning.models import (
    FbankEmbeddingModel,
    SincTDNN,
    scaled_channels,
)

SAMPLE_RATE = 16000


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SincTDNN().eval()


def padded_batch(lengths, generator):
    """Waveforms of the given lengths padded with noise, and rel. lengths."""
    longest = max(lengths)
    wavs = torch.randn(len(lengths), longest, generator=generator)
    utterances = [
        wav[:length].clone() for wav, length in zip(wavs, lengths, strict=True)
    ]
    relative = torch.tensor(lengths) / longest
    return utterances, wavs, relative


def paper_front_end_parameters():
    """SincNet, the two front-end convolutions and their affine norms."""
    sincnet = 2 * 80
    convs = 80 * 60 * 5 + 60 + 60 * 60 * 5 + 60
    return sincnet + convs + 2 * (80 + 60 + 60)


def tdnn_layers(in_channels):
    return [
        (in_channels, 512, 5),
        (512, 512, 3),
        (512, 512, 3),
        (512, 512, 1),
        (512, 1500, 1),
    ]


EMBEDDING_PARAMETERS = 3000 * 512 + 512


def test_paper_parameter_count_from_layer_sizes():
    model = SincTDNN(architecture="paper")
    # weight, bias and the weight-norm magnitude of each output channel
    tdnn = sum(
        c_in * c_out * k + 2 * c_out for c_in, c_out, k in tdnn_layers(60)
    )
    expected = paper_front_end_parameters() + tdnn + EMBEDDING_PARAMETERS
    assert sum(p.numel() for p in model.parameters()) == expected
    assert 4.2e6 < expected < 4.4e6  # "~4.3 M" in the paper's code
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    assert isinstance(model.front_end, SincConvFrontEnd)


def test_default_parameter_count_from_layer_sizes(model):
    # SincNet and the affine norm of its 24 band energies; the TDNN layers'
    # weight and bias and their BatchNorm1d scale and shift
    front_end = 2 * 24 + 2 * 24
    tdnn = sum(
        c_in * c_out * k + 3 * c_out for c_in, c_out, k in tdnn_layers(24)
    )
    expected = front_end + tdnn + EMBEDDING_PARAMETERS
    assert sum(p.numel() for p in model.parameters()) == expected
    assert isinstance(model.front_end, SincFilterbankFrontEnd)
    norms = [layer.norm for layer in model.tdnn]
    assert [norm.num_features for norm in norms] == [512] * 4 + [1500]
    assert all(isinstance(norm, torch.nn.BatchNorm1d) for norm in norms)


def test_three_seconds_give_296_frames_and_512_d_embeddings(model):
    assert model.n_frames(3 * SAMPLE_RATE) == 296
    assert SincTDNN(architecture="paper").n_frames(3 * SAMPLE_RATE) == 351
    wavs = torch.randn(2, 3 * SAMPLE_RATE)
    embeddings = model(wavs)
    assert embeddings.shape == (2, 1, 512)
    torch.testing.assert_close(model(wavs[:, None]), embeddings)


@pytest.mark.parametrize(
    "options, frames, min_samples",
    [
        # 48000 -> sinc (48000 - 251) // 10 + 1 = 4775 -> 25 ms windows
        # (40 sinc frames) every 10 ms (16): (4775 - 40) // 16 + 1 = 296;
        # 16000 -> 1575 -> 96. TDNN receptive field 15 frames: (15 - 1) *
        # 16 + 40 = 264 sinc frames, (264 - 1) * 10 + 251 = 2881 samples.
        ({}, [296, 96], 2881),
        # the SincNet block, stride 10: 4775 -> pool 1591 -> conv 1587 ->
        # pool 529 -> conv 525 -> pool 175; 16000 -> 1575, 525, 521, 173,
        # 169, 56. 15 frames: 15 * 3 = 45 (+4) = 49, * 3 = 147 (+4) = 151,
        # * 3 = 453 frames, (453 - 1) * 10 + 251 = 4771 samples.
        ({"front_end": "sincnet"}, [175, 56], 4771),
        # the paper's stride 5: 9550, 3183, 3179, 1059, 1055, 351; 16000 ->
        # 3150, 1050, 1046, 348, 344, 114; (453 - 1) * 5 + 251 = 2511.
        ({"architecture": "paper"}, [351, 114], 2511),
    ],
)
def test_frame_count_follows_each_layer(options, frames, min_samples):
    model = SincTDNN(scale=0.1, **options).eval()
    counts = model.n_frames(torch.tensor([48000, 16000]))
    assert counts.tolist() == frames
    assert model.min_samples == min_samples
    assert torch.isfinite(model(torch.randn(1, min_samples))).all()
    with pytest.raises(ValueError, match=f"at least {min_samples} samples"):
        model(torch.randn(1, min_samples - 1))


def test_scale_multiplies_the_tdnn_and_front_end_scale_the_front_end():
    model = SincTDNN(scale=0.5)
    assert model.sincnet.n_filters == 24
    tdnn = [layer.conv.out_channels for layer in model.tdnn]
    assert tdnn == [256] * 4 + [750]
    assert model.embedding.in_features == 1500
    assert model.embedding.out_features == 512
    assert SincTDNN(front_end_scale=0.5).sincnet.n_filters == 12
    eighty = SincTDNN(sinc_filters=80, front_end_scale=0.25)
    assert eighty.sincnet.n_filters == 20
    small = SincTDNN(scale=0.5, front_end="sincnet", front_end_scale=0.25)
    assert [conv.out_channels for conv in small.front_end.convs] == [15, 15]
    paper = SincTDNN(scale=0.5, architecture="paper")  # scales both
    assert paper.sincnet.n_filters == 40
    assert [conv.out_channels for conv in paper.front_end.convs] == [30, 30]
    with pytest.raises(ValueError, match="scale"):
        SincTDNN(scale=0)
    with pytest.raises(ValueError, match="scale"):
        SincTDNN(front_end_scale=-1)


def test_explicit_options_override_the_architecture():
    model = SincTDNN(
        scale=0.125,
        architecture="paper",
        front_end="filterbank",
        tdnn_norm="batch",
        compression="log",
        sinc_stride=10,
        sinc_frequency_unit=1000.0,
        sinc_filters=24,
        front_end_scale=1.0,
    )
    default = SincTDNN(scale=0.125)
    assert str(model) == str(default)
    assert model.options == default.options
    paper = SincTDNN(architecture="paper", front_end="filterbank")
    assert paper.sincnet.stride == 5
    assert paper.front_end.compression.kind == "abs"


@pytest.mark.parametrize(
    "option, value",
    [
        ("architecture", "best"),
        ("front_end", "mfcc"),
        ("tdnn_norm", "layer"),
        ("compression", "sqrt"),
        ("sinc_frequency_unit", 0.0),
    ],
)
def test_unknown_option_values_are_refused_with_the_choices(option, value):
    with pytest.raises(ValueError, match=option.split("_")[-1]):
        SincTDNN(scale=0.125, **{option: value})


def test_state_dict_names_the_sincnet_parameters(model):
    keys = model.state_dict().keys()
    expected = {"low_offset", "band_offset", "frequency_unit"}
    assert {f"front_end.sincnet.{name}" for name in expected} <= set(keys)


def test_valid_frame_mask_rounds_relative_lengths_like_speechbrain():
    # SpeechBrain keeps round(length * n_frames) frames.
    mask = valid_frame_mask(torch.tensor([1.0, 0.55, 0.45, 0.01]), 10)
    assert mask.sum(dim=1).tolist() == [10, 6, 4, 1]  # at least one


def test_masked_pooling_equals_per_utterance_statistics():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(5, 37, 8, generator=generator) * 3 + 1
    n_frames = [37, 20, 2, 31, 9]
    lengths = torch.tensor(n_frames) / 37
    pooled = MaskedStatisticsPooling()(x, lengths)
    expected = torch.stack(
        [
            torch.cat([x[i, :n].mean(dim=0), x[i, :n].std(dim=0)])
            for i, n in enumerate(n_frames)
        ]
    )
    assert pooled.shape == (5, 1, 16)
    torch.testing.assert_close(pooled[:, 0], expected)
    unmasked = torch.cat([x.mean(dim=1), x.std(dim=1)], dim=-1)
    torch.testing.assert_close(MaskedStatisticsPooling()(x)[:, 0], unmasked)


def test_masked_pooling_matches_speechbrain_up_to_its_noise():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(4, 50, 6, generator=generator)
    lengths = torch.tensor([1.0, 0.5, 0.72, 0.1])
    ours = MaskedStatisticsPooling()(x, lengths)
    theirs = StatisticsPooling()(x, lengths)  # adds up to 9e-5 to means
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_masked_pooling_is_finite_for_constant_and_single_frames():
    x = torch.ones(2, 4, 3, requires_grad=True)
    pooled = MaskedStatisticsPooling()(x, torch.tensor([1.0, 0.25]))
    pooled.sum().backward()
    assert torch.isfinite(pooled).all() and torch.isfinite(x.grad).all()
    assert pooled[:, 0, 3:].max() < 1e-4
    single_frame = MaskedStatisticsPooling()(x[:, :1])
    assert torch.equal(single_frame[:, 0, :3], x[:, 0].detach())
    assert single_frame[:, 0, 3:].max() < 1e-4


def test_masked_instance_norm_equals_instance_norm_on_valid_frames():
    generator = torch.Generator().manual_seed(3)
    norm = MaskedInstanceNorm1d(4, affine=True)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(4, generator=generator))
        norm.bias.copy_(torch.randn(4, generator=generator))
    x = torch.randn(3, 4, 30, generator=generator) * 5 + 2
    n_frames = [30, 11, 24]
    output = norm(x, torch.tensor(n_frames) / 30)
    reference = torch.nn.InstanceNorm1d(4, affine=True)
    reference.load_state_dict(norm.state_dict())
    for i, n in enumerate(n_frames):
        expected = reference(x[i : i + 1, :, :n])
        torch.testing.assert_close(output[i : i + 1, :, :n], expected)
    torch.testing.assert_close(norm(x), reference(x))


@pytest.fixture(scope="module")
def paper_model():
    torch.manual_seed(0)
    return SincTDNN(architecture="paper").eval()


@pytest.mark.parametrize("name", ["model", "paper_model"])
def test_padded_utterances_get_the_same_embeddings_as_alone(name, request):
    model = request.getfixturevalue(name)
    generator = torch.Generator().manual_seed(4)
    n_samples = [48000, 40003, 20011, 5000]
    utterances, padded, lengths = padded_batch(n_samples, generator)
    with torch.no_grad():
        batch = model(padded, lengths)[:, 0]
        alone = torch.cat([model(wav[None])[:, 0] for wav in utterances])
        unmasked = model(padded)[:, 0]
    # Padding must change an embedding 1e4 times less than changing the
    # utterance does (an untrained network maps all inputs close together).
    distances = torch.cdist(alone, alone)
    closest = distances[distances > 0].min()
    assert (batch - alone).abs().max() <= 1e-4 * closest
    # Control: ignoring the lengths changes padded embeddings a lot.
    assert (unmasked[-1] - alone[-1]).abs().max() > 0.1 * closest


@pytest.mark.parametrize("name", ["model", "paper_model"])
def test_eval_forward_is_deterministic(name, request):
    model = request.getfixturevalue(name)
    wavs = torch.randn(3, 20000)
    lengths = torch.tensor([1.0, 0.8, 0.5])
    with torch.no_grad():
        first, second = model(wavs, lengths), model(wavs, lengths)
    assert torch.equal(first, second)


def test_training_step_with_batch_size_one_reaches_every_parameter():
    model = SincTDNN(scale=0.25).train()
    embedding = model(torch.randn(1, 20000), torch.tensor([0.9]))
    embedding.square().sum().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
    assert (model.sincnet.low_offset.grad != 0).all()


def fbank_model(encoder, n_mels=24):
    """Fbank + sentence mean normalisation + ``encoder``, in eval mode."""
    return FbankEmbeddingModel(
        Fbank(n_mels=n_mels),
        InputNormalization(norm_type="sentence", std_norm=False),
        encoder,
    ).eval()


def small_xvector(**options):
    return Xvector(in_channels=24, tdnn_channels=[16] * 4 + [32], **options)


def test_scaled_channels_round_to_the_nearest_multiple():
    # 512 * 0.3 = 153.6 -> 154; 1536 * 0.3 / 8 = 57.6 -> 58 groups of 8.
    assert scaled_channels([512, 1536], 0.3) == [154, 461]
    assert scaled_channels([512, 1536], 0.3, multiple_of=8) == [152, 464]
    assert scaled_channels(128, 0.01, multiple_of=8) == 8  # at least one
    with pytest.raises(ValueError, match="positive"):
        scaled_channels(512, 0)


def test_xvector_pooling_is_swapped_for_the_noise_free_one():
    torch.manual_seed(0)
    bare = small_xvector().eval()
    features = torch.randn(2, 50, 24)
    # Control: SpeechBrain's pooling adds noise even in eval mode.
    assert not torch.equal(bare(features), bare(features))
    model = fbank_model(small_xvector())
    layers = list(model.modules())
    assert not any(isinstance(m, StatisticsPooling) for m in layers)
    assert sum(isinstance(m, MaskedStatisticsPooling) for m in layers) == 1
    wavs, lengths = torch.randn(3, 12000), torch.tensor([1.0, 0.7, 0.4])
    with torch.no_grad():
        assert torch.equal(model(wavs, lengths), model(wavs, lengths))


def test_wrapper_equals_its_parts_applied_by_hand():
    torch.manual_seed(1)
    model = fbank_model(small_xvector())
    wavs, lengths = torch.randn(2, 8000), torch.tensor([1.0, 0.6])
    features = Fbank(n_mels=24)(wavs)  # [2, 51, 24]: 8000 / 160 + 1 frames
    n_valid = [51, round(0.6 * 51)]
    normalised = torch.zeros_like(features)
    for i, n in enumerate(n_valid):
        normalised[i] = features[i] - features[i, :n].mean(dim=0)
    with torch.no_grad():
        expected = model.encoder(normalised, lengths)
        torch.testing.assert_close(model(wavs, lengths), expected)
        torch.testing.assert_close(model(wavs[:, None], lengths), expected)


def test_fbank_models_give_batch_one_dim_embeddings():
    torch.manual_seed(2)
    xvector = fbank_model(small_xvector(lin_neurons=40))
    ecapa = fbank_model(
        ECAPA_TDNN(
            80,
            lin_neurons=24,
            channels=scaled_channels([512] * 4 + [1536], 0.0625, 8),
            attention_channels=8,
            se_channels=8,
        ),
        n_mels=80,
    )
    wavs = torch.randn(3, 16000)
    with torch.no_grad():
        assert xvector(wavs).shape == (3, 1, 40)
        assert ecapa(wavs).shape == (3, 1, 24)
        assert torch.equal(ecapa(wavs), ecapa(wavs))
        assert ecapa(wavs[:1], torch.ones(1)).shape == (1, 1, 24)


def test_padding_is_ignored_by_normalisation_and_pooling():
    # With frame-wise TDNN layers (kernel 1) only the last feature frame of
    # a padded utterance sees the padding, so its embedding stays close to
    # that of the utterance alone; ignoring the lengths does not.
    torch.manual_seed(3)
    model = fbank_model(
        small_xvector(tdnn_kernel_sizes=[1] * 5, tdnn_dilations=[1] * 5)
    )
    utterance = torch.randn(16000, generator=torch.Generator().manual_seed(4))
    padding = 5 * torch.sin(0.3 * torch.arange(16000.0))
    wavs = torch.stack([torch.randn(32000), torch.cat([utterance, padding])])
    with torch.no_grad():
        alone = model(utterance[None])[0]
        padded = model(wavs, torch.tensor([1.0, 0.5]))[1]
        unmasked = model(wavs)[1]
    assert (padded - alone).abs().max() < 0.05 * (unmasked - alone).abs().max()
