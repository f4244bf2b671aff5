"""Model folders are data, never code: the JSON reader of model files and the refusal of custom code.

A Hugging Face folder can ask ``transformers`` to import Python files it carries: an
``"auto_map"`` entry in ``config.json`` or ``tokenizer_config.json`` names a class in a ``.py``
file of the folder. Called without ``trust_remote_code``, ``from_pretrained`` even *asks* on
stdout and reads the answer from stdin, which for ``mcrf predict -`` is the user's data. mcrf
therefore

- passes ``trust_remote_code=False`` to every ``from_pretrained`` (``mcrf.models.encoders.hf``),
- refuses, before ``transformers`` sees it, any folder whose JSON files carry a ``CODE_KEYS``
  entry (``refuse_custom_code``), naming the file,
- reads weights with safetensors only (``mcrf.models.io``), never a pickle.

``read_model_json`` is the one reader of a model folder's JSON files: bad bytes, bad JSON and
absurd nesting (a ``RecursionError`` in ``json``) are all a ``ModelDirError`` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, List, Tuple, Union

from mcrf.errors import ModelDirError

__all__ = ["CODE_KEYS", "read_model_json", "refuse_custom_code"]

#: keys by which a Hugging Face JSON file asks ``transformers`` to import code shipped with the folder
CODE_KEYS = ("auto_map", "custom_pipelines")
#: folders below a model folder searched for JSON files (a tagger has one: ``tokenizer/``)
_MAX_DEPTH = 3
#: JSON files that hold vocabularies, never settings ``transformers`` reads code keys from (large: not parsed)
_VOCABULARIES = frozenset({"tokenizer.json", "vocab.json"})


def read_model_json(path: Union[str, Path]) -> Any:
    """The parsed JSON of a file in a model folder.

    Raises:
        ModelDirError: the file is unreadable as UTF-8, not JSON, or nested too deeply to parse,
            naming the file.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelDirError(f"{path} is not valid JSON ({error}); save the model again") from None
    except RecursionError:
        raise ModelDirError(f"{path} is nested too deeply to be a model file (JSON objects or lists inside each "
                            "other thousands of levels deep); save the model again") from None


def _code_keys(data: Any) -> Iterator[Tuple[str, Any]]:
    """``(key, value)`` of every ``CODE_KEYS`` entry anywhere in ``data`` (iteratively: no recursion limit)."""
    stack: List[Any] = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in CODE_KEYS:
                    yield key, value
                if isinstance(value, (dict, list)):
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(item for item in node if isinstance(item, (dict, list)))


def _json_files(folder: Path) -> List[Path]:
    files = []
    for depth in range(_MAX_DEPTH + 1):
        files.extend(p for p in sorted(folder.glob("/".join(["*"] * depth + ["*.json"])))
                     if p.is_file() and p.name not in _VOCABULARIES)
    return files


def refuse_custom_code(folder: Union[str, Path]) -> None:
    """Refuse a model folder (or a Hugging Face encoder folder) that asks to run code it carries.

    Every ``*.json`` file (vocabularies aside) in ``folder`` and up to three folders below is read; a ``CODE_KEYS``
    entry at any depth is refused. A path that is not a directory (a hub id) is left to
    ``trust_remote_code=False``.

    Raises:
        ModelDirError: a JSON file asks for custom code (or cannot be read), naming the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in _json_files(folder):
        for key, value in _code_keys(read_model_json(path)):
            raise ModelDirError(
                f"{path} asks to run Python code shipped with the model ({key!r}: {json.dumps(value)[:120]}); "
                "mcrf never runs code from a model folder. Remove the entry (and the .py files) if the model "
                "works without it, or use a model that needs no custom code")
