"""kill -9 at random points of a short training run, resumed every time:
each epoch is logged once and the final parameters equal those of a run
that was never interrupted; two runs with the same seed give the same
parameters and EER.

The kill test runs a driver in a subprocess (``python
tests/test_kill_resume.py CORPUS FOLDER``) that imports the recipe once,
then forks one child per attempt: a reference run, then runs of the same
recipe in another folder that the driver kills with SIGKILL at seeded
random times after training has started (inside batches, checkpoint saves
and deletions, logging), and a last run left to finish. It prints a JSON
summary.
"""

import json
import os
import pathlib
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import torch
from tiny import TINY_RUN, final_state
from tiny import resume_arguments as arguments

import train
from speaker_metric_learning.checkpoints import checkpoints_in_saving_order

ROOT = pathlib.Path(__file__).parents[1]
KILLS = 6
KILL_SEED = 4242


def kill_run_arguments(corpus_folder, output):
    """The run of test_resume with 3 epochs and a checkpoint every step."""
    return [
        *arguments(corpus_folder, output, num_workers=0),
        "--number_of_epochs=3",
        "--ckpt_interval_steps=1",
    ]


def fork_run(argv, progress_pipe):
    """Forks a child running train.main(argv); the child writes ``s`` to
    ``progress_pipe`` once training has started (after recovery) and ``b``
    after every training batch (before its checkpoint is saved)."""
    child = os.fork()
    if child:
        return child
    status = 1
    try:
        torch.set_num_threads(1)
        brain_class = train.SpeakerBrain
        on_fit_start = brain_class.on_fit_start
        on_fit_batch_end = brain_class.on_fit_batch_end

        def announcing_on_fit_start(brain):
            on_fit_start(brain)
            os.write(progress_pipe, b"s")

        def announcing_on_fit_batch_end(brain, *args):
            on_fit_batch_end(brain, *args)
            os.write(progress_pipe, b"b")

        brain_class.on_fit_start = announcing_on_fit_start
        brain_class.on_fit_batch_end = announcing_on_fit_batch_end
        train.main(argv)
        status = 0
    finally:
        os._exit(status)


def run_until(argv, batches=None, delay=0.0):
    """Runs the recipe in a child until it has trained ``batches`` more
    batches, then ``delay`` seconds more, and kills it with SIGKILL (runs
    it to the end when ``batches`` is None). Returns whether it was
    killed (False: it finished first)."""
    read, write = os.pipe()
    child = fork_run(argv, write)
    os.close(write)
    wanted = b"s" + b"b" * (batches or 0)
    seen = b""
    while batches is not None and len(seen) < len(wanted):
        piece = os.read(read, len(wanted) - len(seen))
        if not piece:  # the run has ended
            break
        seen += piece
    if batches is not None and len(seen) == len(wanted):
        time.sleep(delay)
        os.kill(child, signal.SIGKILL)
    os.close(read)
    _, status = os.waitpid(child, 0)
    if os.WIFSIGNALED(status):
        return True
    if os.WEXITSTATUS(status) != 0:
        raise RuntimeError(f"the run failed with status {status}")
    return False


def drive(corpus_folder, folder):
    """The driver: reference run, killed runs, last run; returns the
    summary."""
    data, folder = pathlib.Path(corpus_folder), pathlib.Path(folder)
    run_until(kill_run_arguments(data, folder / "whole"))
    rng = random.Random(KILL_SEED)
    argv = kill_run_arguments(data, folder / "cut")
    points = []
    for _ in range(KILLS):
        # after 0-2 more batches, at a random time of the next step (data,
        # forward, backward, checkpoint save and deletion, logging)
        point = (rng.randint(0, 2), round(rng.uniform(0.0, 0.3), 3))
        if run_until(argv, *point):
            points.append(point)
    run_until(argv)
    return {
        "kill_points": points,
        "cpu_seconds": sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]),
    }


def test_kill_9_at_random_points_then_resume(corpus, tmp_path):  # noqa: F811
    process = subprocess.run(
        [sys.executable, __file__, str(corpus), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'plugin'}:{ROOT}"},
    )
    assert process.returncode == 0, process.stderr[-3000:]
    summary = json.loads(process.stdout.strip().splitlines()[-1])
    assert len(summary["kill_points"]) >= 5, summary
    logs = [
        (tmp_path / run / "train_log.txt").read_text().splitlines()
        for run in ("whole", "cut")
    ]
    epochs = [line.split(",")[0] for line in logs[1]]
    assert epochs == ["epoch: 1", "epoch: 2", "epoch: 3"], logs[1]
    # the same statistics, although epochs were resumed mid-way
    assert logs[1] == logs[0]
    whole, _ = final_state(tmp_path / "whole")
    resumed, _ = final_state(tmp_path / "cut")
    for name in ("embedding_model", "loss"):
        for key, value in whole[name].items():
            assert torch.equal(value, resumed[name][key]), (name, key)
    for key, moments in whole["optimizer"]["state"].items():
        for moment in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(
                moments[moment], resumed["optimizer"]["state"][key][moment]
            )


def test_epoch_logged_but_not_saved_is_logged_once(corpus, tmp_path):  # noqa: F811
    run = [
        str(ROOT / "hparams" / "softmax.yaml"),
        f"--output_folder={tmp_path}",
        f"--data_folder={corpus / 'train'}",
        *TINY_RUN,
    ]
    train.main(run)
    log = (tmp_path / "train_log.txt").read_text()
    # killed after logging epoch 2, before its checkpoint was written
    shutil.rmtree(checkpoints_in_saving_order(tmp_path / "save")[-1].path)
    train.main(run)
    assert (tmp_path / "train_log.txt").read_text() == log


def test_same_seed_same_parameters_and_eer(corpus, tmp_path):  # noqa: F811
    def run(name):
        return train.main(
            [
                str(ROOT / "hparams" / "aam.yaml"),
                f"--output_folder={tmp_path / name}",
                f"--data_folder={corpus / 'train'}",
                f"--eval_folder={corpus / 'dev'}",
                f"--trials_file={corpus / 'dev' / 'trials.txt'}",
                *TINY_RUN,
            ]
        )

    first, second = run("first"), run("second")
    assert first["eer"] == second["eer"]
    assert first["min_dcf"] == second["min_dcf"]
    first_state, _ = final_state(tmp_path / "first")
    second_state, _ = final_state(tmp_path / "second")
    for key, value in first_state["embedding_model"].items():
        assert torch.equal(value, second_state["embedding_model"][key]), key
    scores = [
        (tmp_path / name / "scores.txt").read_text()
        for name in ("first", "second")
    ]
    assert scores[0] == scores[1]


if __name__ == "__main__":
    print(json.dumps(drive(*sys.argv[1:3])))
