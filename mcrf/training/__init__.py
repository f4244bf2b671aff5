"""Training: ``TrainConfig`` (all defaults) and ``train(config) -> TrainResult`` (via 🤗 Accelerate).

Accelerate, transformers, seqeval and matplotlib are imported only when ``train`` runs.
"""

from mcrf.training.config import TrainConfig
from mcrf.training.build import TrainerState
from mcrf.training.finish import TrainResult
from mcrf.training.loop import train

__all__ = ["TrainConfig", "TrainResult", "TrainerState", "train"]
