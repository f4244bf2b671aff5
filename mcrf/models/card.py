"""Model card (README.md) text for a saved tagger, with the evaluation results it is given."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional, Tuple

from mcrf.models.config import TaggerConfig
from mcrf.models.encoders import encoder_class

__all__ = ["model_card", "flatten_metrics"]

_DECODER_TEXT = {
    "mcrf": "Masked CRF (illegal transitions masked in training and decoding; Wei et al., NAACL 2021)",
    "mcrf-decoding": "CRF trained without constraints, decoded with the masked Viterbi (MCRF-decoding)",
    "crf": "plain linear-chain CRF (illegal outputs post-processed: {post})",
    "softmax": "per-word softmax (illegal outputs post-processed: {post})",
}


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> List[Tuple[str, Any]]:
    """Nested metric dicts as ``("dev/f1", 0.9)`` rows, in insertion order."""
    rows: List[Tuple[str, Any]] = []
    for key, value in metrics.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            rows.extend(flatten_metrics(value, name))
        else:
            rows.append((name, value))
    return rows


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def model_card(config: TaggerConfig, metrics: Optional[Dict[str, Any]] = None) -> str:
    """Markdown model card (with Hugging Face front matter) describing the tagger and its results.

    Args:
        config: the tagger's config.
        metrics: evaluation results (nested dicts allowed); ``None`` says none were given.

    Returns:
        The README.md text.
    """
    encoder = encoder_class(config.encoder).describe(config.encoder)
    decoder = _DECODER_TEXT[config.decoder].format(post=config.postprocess)
    types = sorted({label.split("-", 1)[1] for label in config.labels if "-" in label})
    lines = [
        "---",
        "library_name: mcrf",
        "pipeline_tag: token-classification",
        "tags:",
        "- token-classification",
        "- masked-crf",
        "---",
        "",
        "# mcrf sequence tagger",
        "",
        f"- Encoder: {encoder}",
        f"- Decoder: {decoder}",
        f"- Tag scheme: {config.scheme} ({len(config.labels)} tags; entity types: {', '.join(types) or 'none'})",
        f"- Created with mcrf {config.mcrf_version}",
        "",
        "## Evaluation results",
        "",
    ]
    rows = flatten_metrics(metrics) if metrics else []
    if rows:
        lines += ["| metric | value |", "|---|---|"] + [f"| {name} | {_format(value)} |" for name, value in rows]
    else:
        lines.append("No evaluation results were recorded when this model was saved.")
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "from mcrf.data.types import Sentence",
        "from mcrf.models import Tagger",
        "",
        'tagger = Tagger.from_pretrained("path/to/this/directory")',
        'prediction = tagger.predict([Sentence(tokens=("John", "lives", "in", "Paris"))])[0]',
        "print(prediction.tags, prediction.spans)  # spans: (label, start, end, confidence)",
        "```",
        "",
        "Token confidences are CRF marginals of the predicted tags (softmax probabilities for a softmax",
        "decoder); a span's confidence is the minimum token confidence over the span.",
        "",
        "## Labels",
        "",
        ", ".join(f"`{label}`" for label in config.labels),
        "",
    ]
    return "\n".join(lines)
