"""Count device->host synchronisations on any device (CPU included) with a ``TorchDispatchMode``.

On a GPU every host read of a tensor value stalls the launch queue. Each such read reaches
the dispatcher as one of ``SYNC_OPS``: ``.item()``, ``bool(t)``, ``int(t)`` (all through
``aten._local_scalar_dense``; ``aten.is_nonzero`` / ``aten.item`` when seen undecomposed), or an
op whose output size depends on the data (``nonzero``, boolean-mask indexing, ``masked_select``),
which must read the size back. ``Tensor.tolist()`` copies without the dispatcher and is not seen.
"""

from __future__ import annotations

import importlib.util
import os
import traceback
from typing import List

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import mcrf

aten = torch.ops.aten
#: the source folders whose lines a read is attributed to: mcrf's package, torch.nn and transformers
#: (directory prefixes, not substrings: in a clone named ``mcrf`` every path contains ``/mcrf/``)
WATCHED = tuple(
    os.path.join(os.path.dirname(os.path.abspath(path)), "")
    for path in (mcrf.__file__, torch.nn.__file__, importlib.util.find_spec("transformers").origin)
)
SYNC_OPS = {
    aten._local_scalar_dense, aten.is_nonzero, aten.item,
    aten.nonzero, aten.masked_select, aten.nonzero_static,
}


class SyncCounter(TorchDispatchMode):
    """``with SyncCounter() as syncs: ...`` then ``syncs.count`` and ``syncs.ops`` (names, in order)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: List[str] = []
        self.where: List[str] = []  # the mcrf source line of each read (for failure messages)

    @property
    def count(self) -> int:
        return len(self.ops)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in SYNC_OPS and func.overloadpacket is not aten.nonzero_static:
            self.ops.append(str(func.overloadpacket))
            frames = [f for f in traceback.extract_stack() if f.filename.startswith(WATCHED)]
            self.where.append(f"{frames[-1].filename.split('/')[-1]}:{frames[-1].lineno}" if frames else "?")
        return func(*args, **(kwargs or {}))
