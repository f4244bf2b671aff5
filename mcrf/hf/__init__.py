"""Masked CRF where Hugging Face users already work: ``Trainer``, ``AutoModel``, ``save_pretrained``, pipelines.

``import mcrf.hf`` registers (idempotently, as the transformers docs show for custom models):

- ``MaskedCRFConfig`` with ``AutoConfig`` (``model_type`` ``"mcrf-token-classification"``);
- ``MaskedCRFForTokenClassification`` with ``AutoModelForTokenClassification``;
- the ``"mcrf-token-classification"`` pipeline task.

``import mcrf`` alone never imports transformers. Converting to and from ``mcrf train`` model folders:
``mcrf.hf.convert`` (``mcrf convert`` on the command line).
"""

from __future__ import annotations

from mcrf.hf.collator import DataCollatorForMaskedCRF, word_mask, word_starts
from mcrf.hf.config import MODEL_TYPE, MaskedCRFConfig
from mcrf.hf.model import MaskedCRFForTokenClassification, MaskedCRFOutput
from mcrf.hf.pipeline import TASK, MaskedCRFTokenClassificationPipeline

__all__ = ["MaskedCRFConfig", "MaskedCRFForTokenClassification", "MaskedCRFOutput",
           "MaskedCRFTokenClassificationPipeline", "DataCollatorForMaskedCRF", "word_mask", "word_starts", "register",
           "MODEL_TYPE", "TASK"]


def register() -> None:
    """Register the config, the model and the pipeline task with transformers (safe to call again)."""
    from transformers import AutoConfig, AutoModelForTokenClassification
    from transformers.pipelines import PIPELINE_REGISTRY

    AutoConfig.register(MODEL_TYPE, MaskedCRFConfig, exist_ok=True)
    AutoModelForTokenClassification.register(MaskedCRFConfig, MaskedCRFForTokenClassification, exist_ok=True)
    if TASK not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=MaskedCRFTokenClassificationPipeline,
                                            pt_model=AutoModelForTokenClassification, type="text")


register()
