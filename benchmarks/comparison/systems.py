"""What is compared: the systems, their yaml files and the budget.

Owns ``SYSTEMS`` (each system's P x K batch layout, description, yaml file
and added ``train.py`` options), the groups of systems the report treats
apart (the baselines, the AAM systems that are also scored AS-normed,
the reference system every other is tested against) and ``Budget``, the
training settings every system gets, turned into ``train.py`` options.
"""

import dataclasses
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]

REFERENCE_SYSTEM = "aam"


@dataclasses.dataclass(frozen=True)
class System:
    """One compared system: P x K layout, description, its yaml file
    (``hparams/<yaml_name>.yaml``; None: the system's own name) and the
    ``train.py`` options it adds to that file."""

    chunks_per_speaker: int
    description: str
    yaml_name: str = None
    options: tuple = ()

    def hparams_file(self, name):
        """The yaml file of the system called ``name``."""
        return ROOT / "hparams" / f"{self.yaml_name or name}.yaml"


SYSTEMS = {
    "softmax": System(1, "SincTDNN + softmax"),
    "center": System(1, "SincTDNN + center"),
    "coco": System(1, "SincTDNN + CoCo"),
    "aam": System(1, "SincTDNN + AAM"),
    "contrastive": System(4, "SincTDNN + contrastive"),
    "triplet": System(4, "SincTDNN + triplet"),
    "paper": System(
        1,
        "SincTDNN, Coria et al.'s network + AAM",
        "aam",
        (("architecture", "paper"),),
    ),
    "xvector": System(1, "Fbank + x-vector (SpeechBrain) + AAM"),
    "ecapa": System(1, "Fbank + ECAPA-TDNN (SpeechBrain) + AAM"),
}
BASELINES = ("paper", "xvector", "ecapa")  # not among the six losses
AAM_SYSTEMS = ("aam", "paper", "xvector", "ecapa")  # also scored AS-normed


@dataclasses.dataclass(frozen=True)
class Budget:
    """What every system gets: the same for all."""

    model_scale: float = 0.125
    chunk_seconds: float = 2.0
    chunks_per_batch: int = 32
    batches_per_epoch: int = 20
    number_of_epochs: int = 10
    lr: float = 0.001

    @property
    def steps(self):
        """Optimizer steps of one run."""
        return self.batches_per_epoch * self.number_of_epochs

    def overrides(self, system):
        """``train.py`` options of this budget for ``system``."""
        per_speaker = SYSTEMS[system].chunks_per_speaker
        if self.chunks_per_batch % per_speaker:
            raise ValueError(
                f"--chunks_per_batch {self.chunks_per_batch} is not a "
                f"multiple of the {per_speaker} chunks per speaker of {system}"
            )
        return {
            **dict(SYSTEMS[system].options),
            "model_scale": self.model_scale,
            "chunk_seconds": self.chunk_seconds,
            "speakers_per_batch": self.chunks_per_batch // per_speaker,
            "chunks_per_speaker": per_speaker,
            "batches_per_epoch": self.batches_per_epoch,
            "number_of_epochs": self.number_of_epochs,
            "lr": self.lr,
        }
