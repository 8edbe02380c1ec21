"""The model card (MODEL_CARD.md) of an exported model folder.

Filled from a template with the run's hyperparameters, its checkpoint and,
when they describe that checkpoint, its ``results.json``.

Authors
 * speaker_metric_learning developers
"""

import datetime
import string

from speaker_metric_learning.inference_definition import (
    describe_node,
    recorded_sample_rate,
)
from speaker_metric_learning.layout import LABEL_ENCODER_FILE, ONNX_FILE
from speaker_metric_learning.scoring.compare import RESULTS_FILE, load_results


def _percent_interval(interval):
    """The text " (95 % CI a-b)" of an interval of fractions ("": none)."""
    if not interval:
        return ""
    low, high = (100 * bound for bound in interval)
    return f" (95 % CI {low:.2f}-{high:.2f})"


def _evaluation_lines(run, checkpoint, is_latest, hparams):
    """The evaluation section of the model card, from the run's results."""
    try:
        results = load_results(run)
    except FileNotFoundError:
        return ["Not evaluated: the run wrote no results.json."]
    except ValueError as error:
        return [f"The run's results are unreadable ({error})."]
    written = (run / RESULTS_FILE).stat().st_mtime
    if not is_latest or written < checkpoint.meta["unixtime"]:
        return [
            "The run's results.json does not describe this checkpoint (it "
            "is not the latest, or it was saved after the evaluation): "
            "evaluate this model before relying on it."
        ]
    window = hparams.get("eval_window_seconds")
    how = (
        "whole utterances"
        if window is None
        else f"averages of {window} s windows every "
        f"{hparams.get('eval_step_seconds')} s"
    )
    trials, eer = results["trials"], results["eer"]
    lines = [
        f"Measured by `train.py` on this checkpoint: cosine scores of "
        f"embeddings of {how}, on `{trials.get('source')}` "
        f"({trials['n_trials']} trials, {trials['n_targets']} targets, "
        f"{trials['n_utterances']} utterances).",
        "",
        "| metric | value |",
        "|---|---|",
        f"| EER | {100 * eer['value']:.2f} %"
        f"{_percent_interval(eer.get('ci'))} |",
    ]
    for entry in results.get("min_dcf", []):
        lines.append(
            f"| minDCF (p_target {entry['p_target']}, C_miss "
            f"{entry['c_miss']}, C_fa {entry['c_fa']}), normalised | "
            f"{entry['value']:.4f} |"
        )
    for name in ("cllr", "min_cllr"):
        if results.get(name) is not None:
            lines.append(f"| {name} (bits) | {results[name]:.4f} |")
    lines += [
        "",
        f"Score threshold at the EER on these trials: {eer['threshold']:.4f} "
        "(cosine). Trial-list fingerprint (compare only results with the "
        f"same one): sha256 `{trials['sha256']}`.",
    ]
    return lines


_TEMPLATE = string.Template("""\
# Speaker embedding model: $experiment

Exported by `speaker_metric_learning.export` from the training run \
`$run`, checkpoint `$checkpoint` (epoch $epoch, saved $created UTC).

## Model

- Network: `$network`, $n_parameters parameters.
- Input: mono waveforms at $sample_rate Hz, `[batch, time]`, with \
SpeechBrain relative lengths; padding does not change an utterance's \
embedding.
- Output: `[batch, 1, embedding_dim]` embeddings, unnormalised; compare \
them by cosine similarity.

## Training

- Loss: `$loss`.
- Data: $data; $n_train_speakers speakers (listed in \
`$label_encoder_file`), random $chunk_seconds s chunks.
- Batches: $speakers_per_batch speakers x $chunks_per_speaker chunks, \
$batches_per_epoch batches per epoch; epochs planned $number_of_epochs; \
learning rate $lr; seed $seed.

## Evaluation

$evaluation

## Use

```python
from speechbrain.inference.speaker import SpeakerRecognition
from speaker_metric_learning.hparams_safety import check_hyperparams_safe

check_hyperparams_safe("MODEL_FOLDER", show=True)  # read it first
model = SpeakerRecognition.from_hparams(source="MODEL_FOLDER")
score, same = model.verify_files("a.wav", "b.wav")
embeddings = model.encode_batch(wavs, relative_lengths)
```

`verify_batch`'s default threshold (0.25) is SpeechBrain's, not this \
model's: pass your own (`threshold=`), chosen on your trials. \
`encode_batch(normalize=True)` is not available (no embedding \
normalisation statistics are shipped).

${onnx}\
Fine-tuning on other speakers: `python train.py hparams/<loss>.yaml \
--pretrained MODEL_FOLDER` with the same `--model_scale` (a new loss head \
is built).
""")

_ONNX_PARAGRAPH = (
    f"ONNX: `{ONNX_FILE}` maps `wavs` [batch, time] and relative `lengths` "
    "[batch] to `embeddings` [batch, 1, dim]; "
    "`speaker_metric_learning.onnx_export.OnnxEmbedder` runs it with ONNX "
    "Runtime.\n\n"
)


def model_card(run, checkpoint, is_latest, hparams, model, onnx):
    """The text of MODEL_CARD.md.

    Arguments
    ---------
    run : pathlib.Path
        The ``train.py`` output folder.
    checkpoint : speechbrain.utils.checkpoints.Checkpoint
        The exported checkpoint.
    is_latest : bool
        Whether it is the run's latest intact checkpoint (only then can the
        run's ``results.json`` describe it).
    hparams : dict
        The run's hyperparameters, as read by ruamel.yaml.
    model : torch.nn.Module
        The exported network (for its parameter count).
    onnx : bool
        Whether the folder holds the ONNX graph.

    Returns
    -------
    str

    Example
    -------
    >>> import pathlib, types, torch
    >>> checkpoint = types.SimpleNamespace(
    ...     path=pathlib.Path("save/CKPT+1"), meta={"unixtime": 0, "epoch": 3}
    ... )
    >>> card = model_card(pathlib.Path("/nonexistent/run"), checkpoint, True,
    ...                   {"experiment": "aam", "embedding_model": "m"},
    ...                   torch.nn.Linear(2, 2), onnx=False)
    >>> print(card.splitlines()[0])
    # Speaker embedding model: aam
    >>> "epoch 3, saved 1970-01-01 00:00 UTC" in card.replace("\\n", " ")
    True
    >>> "Not evaluated" in card and "ONNX" not in card
    True
    """
    data_folder = hparams.get("data_folder")
    data = (
        f"`{data_folder}`"
        if data_folder
        else "the generated synthetic corpus (`recipes.synthetic_corpus`, "
        f"`{hparams.get('default_corpus_folder')}`)"
    )
    created = datetime.datetime.fromtimestamp(
        checkpoint.meta["unixtime"], tz=datetime.timezone.utc
    )
    training = {
        name: hparams.get(name)
        for name in (
            "n_train_speakers",
            "chunk_seconds",
            "speakers_per_batch",
            "chunks_per_speaker",
            "batches_per_epoch",
            "number_of_epochs",
            "lr",
            "seed",
        )
    }
    return _TEMPLATE.substitute(
        experiment=hparams.get("experiment", "unnamed"),
        run=run,
        checkpoint=checkpoint.path.name,
        epoch=checkpoint.meta.get("epoch", "unknown"),
        created=f"{created:%Y-%m-%d %H:%M}",
        network=describe_node(hparams["embedding_model"]),
        n_parameters=f"{sum(p.numel() for p in model.parameters()):,}",
        sample_rate=recorded_sample_rate(hparams),
        loss=describe_node(hparams.get("loss")),
        data=data,
        label_encoder_file=LABEL_ENCODER_FILE,
        evaluation="\n".join(
            _evaluation_lines(run, checkpoint, is_latest, hparams)
        ),
        onnx=_ONNX_PARAGRAPH if onnx else "",
        **training,
    )
