"""Training: ``TrainConfig`` (all defaults) and ``train(config) -> TrainResult`` (via 🤗 Accelerate).

Accelerate, transformers, seqeval and matplotlib are imported only when ``train`` runs.
"""

from mcrf.training.config import TrainConfig
from mcrf.training.loop import TrainerState, TrainResult, train

__all__ = ["TrainConfig", "TrainResult", "TrainerState", "train"]
