"""Test session set-up shared by every test module."""

import pathlib
import sys
import warnings

import pytest
from tiny import ROOT, TINY_RUN, tiny_corpus

import train
from recipes.speechbrain_scripts import (
    SPEAKER_REC,
    NoSpeechBrainRepository,
    extract_speechbrain_files,
)
from recipes.synthetic_corpus import generate_corpus
from speaker_metric_learning.export import export_model


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Drops SpeechBrain's lazy placeholder modules that cannot be imported
    (optional integrations such as k2) from ``sys.modules``.

    Hypothesis reads ``__file__`` of every loaded module when property tests
    are collected; on such a placeholder that attempts the import and raises
    ImportError, which stops the whole session.
    """
    for name, module in list(sys.modules.items()):
        if type(module).__name__ not in (
            "LazyModule",
            "DeprecatedModuleRedirect",
        ):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                getattr(module, "__file__", None)
        except ImportError:
            del sys.modules[name]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The tiny generated corpus (4 training, 3 dev speakers), one per
    test module."""
    return tiny_corpus(tmp_path_factory.mktemp("data") / "corpus")


@pytest.fixture(scope="module")
def aam_run(corpus, tmp_path_factory):
    """A tiny AAM run of train.py on ``corpus``, evaluated on its dev
    trials with whole-utterance embeddings."""
    output = tmp_path_factory.mktemp("run")
    train.main(
        [
            str(ROOT / "hparams" / "aam.yaml"),
            f"--output_folder={output}",
            f"--data_folder={corpus / 'train'}",
            f"--eval_folder={corpus / 'dev'}",
            f"--trials_file={corpus / 'dev' / 'trials.txt'}",
            *TINY_RUN,
            "--eval_step_seconds=null",  # whole-utterance evaluation
        ]
    )
    return output


@pytest.fixture(scope="module")
def model_folder(aam_run, tmp_path_factory):
    """The model folder exported from ``aam_run``."""
    return export_model(aam_run, tmp_path_factory.mktemp("export") / "model")


#: SpeechBrain's VoxCeleb recipe files the tests run, by their path in the
#: speechbrain repository (not in the pip package).
SPEECHBRAIN_SCRIPTS = (
    f"{SPEAKER_REC}/train_speaker_embeddings.py",
    f"{SPEAKER_REC}/speaker_verification_cosine.py",
    f"{SPEAKER_REC}/speaker_verification_plda.py",
    "recipes/VoxCeleb/voxceleb_prepare.py",
)


@pytest.fixture(scope="session")
def speechbrain_scripts(tmp_path_factory):
    """A folder holding SpeechBrain's VoxCeleb recipe scripts, taken from
    a copy of its repository (``$SPEECHBRAIN_REPO``, else the mirror), at
    the newest release tag not newer than the installed speechbrain; the
    test is skipped, with the reason, without one."""
    folder = tmp_path_factory.mktemp("speechbrain_scripts")
    try:
        extract_speechbrain_files(SPEECHBRAIN_SCRIPTS, folder)
    except NoSpeechBrainRepository as reason:
        pytest.skip(str(reason))
    return folder


def voxceleb_speaker_names(n_train_speakers, n_dev_speakers):
    """VoxCeleb-like names: training speakers alternately in VoxCeleb1's
    (``id10001``...) and VoxCeleb2's (``id00012``...) ranges, test
    speakers in VoxCeleb1-O's (``id10270``...)."""
    train = [
        f"id{10001 + i // 2}" if i % 2 == 0 else f"id{12 + i // 2:05d}"
        for i in range(n_train_speakers)
    ]
    return train + [f"id{10270 + i}" for i in range(n_dev_speakers)]


@pytest.fixture(scope="session")
def voxceleb_folder():
    """The function :func:`make_voxceleb_folder`, for module fixtures."""
    return make_voxceleb_folder


def make_voxceleb_folder(base, **corpus_options):
    """A synthetic corpus laid out as VoxCeleb
    (``wav/<id>/<session>/<utt>.wav``, training and test speakers in one
    folder, an empty ``meta/``) and its trial list in VoxCeleb's format;
    returns (data folder, trial list)."""
    base = pathlib.Path(base)
    corpus = generate_corpus(base / "corpus", progress=False, **corpus_options)
    speakers = sorted((corpus / "train" / "wav").iterdir()) + sorted(
        (corpus / "dev" / "wav").iterdir()
    )
    names = dict(
        zip(
            (folder.name for folder in speakers),
            voxceleb_speaker_names(
                len(list((corpus / "train" / "wav").iterdir())),
                len(list((corpus / "dev" / "wav").iterdir())),
            ),
            strict=True,
        )
    )
    for folder in speakers:
        for wav in folder.glob("*.wav"):
            target = (
                base / "data" / "wav" / names[folder.name] / "s0" / wav.name
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(wav)
    (base / "data" / "meta").mkdir()
    lines = []
    for line in (corpus / "dev" / "trials.txt").read_text().splitlines():
        label, *paths = line.split()
        enrol, test = (
            f"{names[speaker]}/s0/{name}"
            for speaker, name in (path.split("/") for path in paths)
        )
        lines.append(f"{label} {enrol} {test}\n")
    trials = base / "veri_test.txt"
    trials.write_text("".join(lines))
    return base / "data", trials
