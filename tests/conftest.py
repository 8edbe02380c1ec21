"""Test session set-up shared by every test module."""

import sys
import warnings

import pytest
from tiny import ROOT, TINY_RUN, tiny_corpus

import train
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
