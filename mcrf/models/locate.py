"""Where the model is: ``--model PATH`` or ``$MCRF_MODEL``, a model folder or a training output folder.

``mcrf train sample --output runs/sample`` writes the model to ``runs/sample/model``; users type
``runs/sample``. Both work:

1. ``PATH/config.json`` exists: ``PATH`` is the model folder.
2. ``PATH/model/`` holds a model: the final model of a finished run (preferred over ``last/``,
   the resume checkpoint, and ``best/``, the best checkpoint so far). ``--verbose`` says so.
3. ``PATH/best/`` holds a model but there is no ``model/``: the run did not finish; ``best/`` is
   used with a warning that names the way to finish it.
4. Anything else is a :class:`~mcrf.errors.ModelDirError` saying what the folder holds and what
   to pass instead. ``last/`` alone is not a model (it is Accelerate's training state).

When ``--model`` is absent, ``$MCRF_MODEL`` stands for it (``mcrf predict file.txt`` as the design
writes it); with neither, the error names both ways.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mcrf.errors import InputNotFound, ModelDirError

logger = logging.getLogger(__name__)

ENV_VAR = "MCRF_MODEL"
#: Sub-folders of a training output folder that hold a loadable model, most preferred first
#: (``*.old``: the complete copy a kill between the two renames of an atomic swap leaves).
RUN_MODELS = ("model", "model.old", "best", "best.old")

__all__ = ["ENV_VAR", "RUN_MODELS", "ModelLocation", "locate_model", "resolve_model"]


@dataclass(frozen=True)
class ModelLocation:
    """A resolved model folder.

    Attributes:
        path: the folder to pass to ``Tagger.from_pretrained``.
        origin: where the user named it: ``"--model"`` or ``"$MCRF_MODEL"``.
        note: how ``path`` was chosen inside a training output folder (``None`` for a model folder).
        finished: ``False`` when ``path`` is ``best/`` of a run that has no final ``model/`` yet.
    """

    path: Path
    origin: str
    note: str | None = None
    finished: bool = True


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").is_file()


def locate_model(model: str | os.PathLike | None, environ: Mapping[str, str] | None = None) -> ModelLocation:
    """Resolve ``--model`` (or ``$MCRF_MODEL`` when it is ``None``) to a model folder; reads nothing else.

    Args:
        model: the ``--model`` value, or ``None`` when the flag was not given.
        environ: the environment (default ``os.environ``), for ``$MCRF_MODEL``.

    Returns:
        The model folder, where it came from and how it was chosen.

    Raises:
        ModelDirError: no model named anywhere, or a folder that holds no model.
        InputNotFound: the named path does not exist.
    """
    environ = os.environ if environ is None else environ
    if model is not None and str(model) != "":
        raw, origin = str(model), "--model"
    elif environ.get(ENV_VAR):
        raw, origin = environ[ENV_VAR], f"${ENV_VAR}"
    else:
        raise ModelDirError(
            f"expected a model, got none: pass it (mcrf predict --model DIR, mcrf evaluate DIR DATASET) or set "
            f"{ENV_VAR}=DIR, where DIR is a model folder or a training output folder (e.g. runs/sample after "
            f"`mcrf train sample --output runs/sample`)")
    path = Path(raw).expanduser()
    if not path.exists():
        raise InputNotFound(f"expected a model folder at {path} ({origin}), found nothing; pass --model with a model "
                            f"folder or a training output folder (mcrf train --output)")
    if not path.is_dir():
        raise ModelDirError(f"expected a model folder at {path} ({origin}), got a file; pass the folder that holds "
                            f"config.json, or the training output folder above it")
    if _is_model(path):
        return ModelLocation(path, origin)
    found = [name for name in RUN_MODELS if _is_model(path / name)]
    if found:
        return _in_run(path, origin, found[0])
    return _no_model(path, origin)


def _in_run(path: Path, origin: str, name: str) -> ModelLocation:
    """The model ``name`` inside the training output folder ``path``, with the note saying why."""
    others = [other for other in ("last", "best", "model") if other != name.split(".")[0] and (path / other).is_dir()]
    also = f" (not {', '.join(o + '/' for o in others)})" if others else ""
    if name.startswith("model"):
        note = f"{path} is a training output folder: using {path / name}, the final model of the run{also}"
        return ModelLocation(path / name, origin, note)
    note = (f"{path} has no final model/ (the run did not finish): using {path / name}, its best checkpoint so far; "
            f"finish the run with `mcrf train ... --output {path} --resume`")
    return ModelLocation(path / name, origin, note, finished=False)


def _no_model(path: Path, origin: str) -> ModelLocation:
    if (path / "last").is_dir():
        raise ModelDirError(
            f"expected a model in {path} ({origin}), got only last/, the resume checkpoint of an unfinished run "
            f"(training state, not a model); finish the run with `mcrf train ... --output {path} --resume`")
    raise ModelDirError(
        f"expected a model folder (with config.json) or a training output folder (with model/config.json) at "
        f"{path} ({origin}), got neither; pass the folder `mcrf train --output` wrote, or its model/ sub-folder")


def resolve_model(model: str | os.PathLike | None, verbose: bool = False) -> Path:
    """:func:`locate_model`, logging how the folder was chosen (INFO with ``verbose``, else DEBUG).

    An unfinished run's ``best/`` is always a warning: the user should know the model is not final.
    """
    location = locate_model(model)
    if not location.finished:
        logger.warning("%s", location.note)
    elif location.note:
        logger.log(logging.INFO if verbose else logging.DEBUG, "%s", location.note)
    return location.path
