"""Model card (README.md) of a saved ``MaskedCRFForTokenClassification`` folder."""

from __future__ import annotations

from typing import Any

__all__ = ["model_card"]

_MODES = {
    "mcrf": "Masked CRF: illegal transitions masked in training and decoding (Wei et al., NAACL 2021)",
    "mcrf-decoding": "CRF trained without constraints, decoded with the masked Viterbi",
    "crf": "plain linear-chain CRF (its Viterbi path may break the tag scheme)",
}


def model_card(config: Any) -> str:
    """Markdown card with Hugging Face front matter: what the model is and how to load and run it.

    Args:
        config: the model's ``MaskedCRFConfig``.
    """
    labels = config.labels
    types = sorted({label.split("-", 1)[1] for label in labels if "-" in label})
    backbone = config.encoder_name or config.backbone_config.get("_name_or_path") or config.backbone_config["model_type"]
    return "\n".join([
        "---",
        "library_name: transformers",
        "pipeline_tag: token-classification",
        "tags:",
        "- token-classification",
        "- masked-crf",
        "- mcrf",
        "---",
        "",
        "# Masked-CRF token classifier (mcrf)",
        "",
        f"- Backbone: `{backbone}` ({config.backbone_config['model_type']}), fine-tuned",
        "- Head: dropout, a linear tag-score layer and a CRF over the first sub-word of each word",
        f"- Decoder: {_MODES[config.mode]}",
        f"- Tag scheme: {config.scheme} ({len(labels)} tags; entity types: {', '.join(types) or 'none'})",
        "",
        "## Usage",
        "",
        "The model class lives in the `mcrf` package (`pip install mcrf`); importing `mcrf.hf` registers it with",
        "`AutoModelForTokenClassification` and adds the `mcrf-token-classification` pipeline. No remote code runs.",
        "",
        "```python",
        "import mcrf.hf  # registers the model class and the pipeline",
        "from transformers import pipeline",
        "",
        'tagger = pipeline("mcrf-token-classification", model="path/to/this/folder")',
        'print(tagger("John Smith lives in Paris."))  # entity_group, score (CRF marginal), word, start, end',
        "```",
        "",
        "`model(**batch).logits` holds the masked Viterbi path as one-hot scores (argmax gives legal tag",
        "sequences); `output_marginals=True` adds the CRF marginals.",
        "",
        "## Labels",
        "",
        ", ".join(f"`{label}`" for label in labels),
        "",
    ])
