"""Converting between ``mcrf train`` model folders and ``MaskedCRFForTokenClassification`` folders.

Both hold the same network: a Hugging Face encoder, dropout, a linear tag-score layer and a ``MaskedCRF``;
only the weight names differ (``encoder.model.*``/``head.*`` in mcrf, ``encoder.*``/``classifier.*``
here). A conversion copies the weights, the sub-word window and the post-processing rule exactly, so
``mcrf predict`` and the ``"mcrf-token-classification"`` pipeline give the same tags on every sentence, long
ones read in the same overlapping windows.

``convert(source, target)`` picks the direction from the source's ``config.json``; ``mcrf convert`` is
the command line. Only Hugging Face encoders with a CRF decoder convert (a BiLSTM or a softmax tagger has
no such HF counterpart).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Union

from torch import Tensor

from mcrf.errors import ConfigError, InputNotFound, ModelDirError, OutputError
from mcrf.hf.config import MODEL_TYPE, MaskedCRFConfig
from mcrf.hf.model import MaskedCRFForTokenClassification

__all__ = ["convert", "mcrf_to_hf", "hf_to_mcrf"]

PathLike = Union[str, Path]
#: mcrf Tagger weight-name prefix -> MaskedCRFForTokenClassification prefix
_RENAMES = (("encoder.model.", "encoder."), ("head.", "classifier."), ("crf.", "crf."))


def _renamed(state: Dict[str, Tensor], to_hf: bool) -> Dict[str, Tensor]:
    out = {}
    for name, tensor in state.items():
        for mcrf_prefix, hf_prefix in _RENAMES:
            old, new = (mcrf_prefix, hf_prefix) if to_hf else (hf_prefix, mcrf_prefix)
            if name.startswith(old):
                out[new + name[len(old):]] = tensor
                break
        else:
            raise ModelDirError(f"weight {name!r} belongs to no part of the model; the folder is not a "
                                "masked-CRF tagger with a Hugging Face encoder")
    return out


def _check_target(target: Path) -> None:
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise OutputError(f"{target} exists and is not an empty folder; pass a new folder for the converted model")


def mcrf_to_hf(source: PathLike, target: PathLike) -> Path:
    """Write an ``mcrf train`` model folder as a ``MaskedCRFForTokenClassification`` folder.

    The target gets config.json, model.safetensors, the tokenizer files and a model card.

    Raises:
        ModelDirError: ``source`` is not a loadable mcrf model folder.
        ConfigError: its encoder is not a Hugging Face one, or its decoder is ``softmax`` (no CRF).
        OutputError: ``target`` exists and is not empty.
    """
    from mcrf.io.files import atomic_directory
    from mcrf.models import Tagger

    target = Path(target)
    _check_target(target)
    tagger = Tagger.from_pretrained(source)
    config = tagger.config
    if tagger.encoder.kind != "huggingface":
        raise ConfigError(f"{source} uses the {tagger.encoder.kind} encoder; only taggers with a fine-tuned "
                          "Hugging Face encoder convert to MaskedCRFForTokenClassification")
    if tagger.crf is None:
        raise ConfigError(f"{source} has a softmax decoder (no CRF); train it with --decoder mcrf to convert it")
    window = config.encoder_options  # the Hugging Face encoder's options, completed when it was built
    hf_config = MaskedCRFConfig(backbone_config=tagger.encoder.model.config.to_dict(), scheme=config.scheme,
                                mode=config.decoder, classifier_dropout=config.dropout, encoder_name=config.encoder,
                                id2label=dict(enumerate(config.labels)),
                                label2id={label: i for i, label in enumerate(config.labels)},
                                window_size=window.get("max_length"), window_stride=window.get("stride"),
                                postprocess=config.postprocess)
    model = MaskedCRFForTokenClassification(hf_config)
    model.load_state_dict(_renamed(tagger.state_dict(), to_hf=True), strict=True)
    with atomic_directory(target) as staging:
        model.save_pretrained(staging)
        tagger.encoder.tokenizer.save_pretrained(str(staging))
    return target


def hf_to_mcrf(source: PathLike, target: PathLike) -> Path:
    """Write a ``MaskedCRFForTokenClassification`` folder (with its tokenizer) as an ``mcrf train`` model folder.

    Raises:
        ConfigError: no fast tokenizer in ``source``.
        OutputError: ``target`` exists and is not empty.
    """
    from mcrf.models import Tagger
    from mcrf.models.config import TaggerConfig
    from mcrf.models.encoders import encoder_class
    from mcrf.models.encoders.hf import HFEncoder, load_tokenizer

    target = Path(target)
    _check_target(target)
    model = MaskedCRFForTokenClassification.from_pretrained(str(source))
    tokenizer = load_tokenizer(str(source))
    hf_config = model.config
    name = hf_config.encoder_name
    if not name or encoder_class(name) is not HFEncoder:  # the name only labels the encoder in mcrf
        name = str(source)
    window = {"max_length": hf_config.window_size, "stride": hf_config.window_stride}
    config = TaggerConfig(encoder=name, labels=hf_config.labels, scheme=hf_config.scheme, decoder=hf_config.mode,
                          postprocess=hf_config.postprocess, dropout=float(hf_config.classifier_dropout),
                          encoder_options=window)
    # the encoder's own builder from a model and tokenizer in hand (it sets the window from the backbone)
    tagger = Tagger(config, HFEncoder._build(model.encoder, tokenizer, config))
    tagger.load_state_dict(_renamed(model.state_dict(), to_hf=False), strict=True)
    tagger.save_pretrained(target)
    return target


def convert(source: PathLike, target: PathLike) -> Path:
    """Convert ``source`` to the other format, the direction read from its ``config.json``.

    Raises:
        InputNotFound: no ``source`` folder.
        ModelDirError: ``source`` is neither an mcrf model folder nor a masked-CRF HF folder.
    """
    from mcrf.models.io import FORMAT

    path = Path(source)
    if not path.is_dir():
        raise InputNotFound(f"no model folder at {path}; pass an mcrf model folder or a "
                            "MaskedCRFForTokenClassification folder")
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelDirError(f"cannot read {path / 'config.json'} ({error}); pass a saved model folder") from None
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return mcrf_to_hf(path, target)
    if isinstance(data, dict) and data.get("model_type") == MODEL_TYPE:
        return hf_to_mcrf(path, target)
    raise ModelDirError(f"{path / 'config.json'} is neither an mcrf tagger (\"format\": \"{FORMAT}\") nor a "
                        f"MaskedCRFForTokenClassification (\"model_type\": \"{MODEL_TYPE}\"); nothing to convert")
