"""Count device<->host synchronisations on any device (CPU included).

On a GPU every host read of a tensor value stalls the launch queue, and so does a copy of host
data to the device from ordinary (pageable) memory. ``SyncCounter`` sees, on CPU as on a GPU:

* reads through the dispatcher (a ``TorchDispatchMode``): ``.item()``, ``bool(t)``, ``int(t)``,
  ``float(t)`` (``aten._local_scalar_dense``; ``aten.is_nonzero`` / ``aten.item`` when seen
  undecomposed), and ops whose output size depends on the data (``nonzero``, boolean-mask
  indexing, ``masked_select``), which must read the size back;
* copies to the host that bypass the dispatcher on CPU, by wrapping the ``Tensor`` methods while
  the counter is active: ``.tolist()``, ``.cpu()``, ``.numpy()`` and ``.to("cpu")`` (the target
  written as the string ``"cpu"``), recorded as ``"tolist"``, ``"cpu"``, ``"numpy"``, ``"to_cpu"``;
  on a GPU ``aten._to_copy`` from a device tensor to the CPU is counted too (once per copy);
* host data lifted into a tensor (``torch.tensor(x, ...)``, ``torch.as_tensor(list)``:
  ``aten.lift_fresh``), which on an accelerator is a host-to-device copy, recorded as
  ``"lift_fresh"``.

What it cannot see: ``.to(device)`` with a ``torch.device`` (on CPU a move to the model's device
and a copy to the host are the same call, so neither is counted); copies made inside C++ code
that never reach the dispatcher from Python (a CPU tensor's ``.to`` is a no-op there);
``torch.where(c, t, 0.0)``'s ``aten.scalar_tensor`` is *not* a copy (on CUDA it is an
asynchronous fill) and is not counted; and no timing: a counted call on CPU costs nothing.
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
    aten.nonzero, aten.masked_select, aten.nonzero_static, aten.lift_fresh,
}
#: ``Tensor`` methods that copy to the host without reaching the dispatcher on CPU
HOST_COPIES = ("tolist", "cpu", "numpy", "to")


def _is_host_target(args, kwargs) -> bool:
    """``Tensor.to``'s arguments name the host as the string ``"cpu"``."""
    return kwargs.get("device") == "cpu" or any(a == "cpu" for a in args if isinstance(a, str))


class SyncCounter(TorchDispatchMode):
    """``with SyncCounter() as syncs: ...`` then ``syncs.count`` and ``syncs.ops`` (names, in order)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: List[str] = []
        self.where: List[str] = []  # the source line of each read, ``file.py:line`` (for failure messages)
        self.files: List[str] = []  # the full path of each of those files
        self._saved = {}
        self._in_method = 0  # inside a wrapped method: its own dispatcher ops are not counted again

    @property
    def count(self) -> int:
        return len(self.ops)

    def _record(self, name: str) -> None:
        self.ops.append(name)
        frames = [f for f in traceback.extract_stack() if f.filename.startswith(WATCHED)]
        self.where.append(f"{frames[-1].filename.split('/')[-1]}:{frames[-1].lineno}" if frames else "?")
        self.files.append(frames[-1].filename if frames else "?")

    def _wrap(self, name: str):
        original = self._saved[name]

        def method(tensor, *args, **kwargs):
            if name != "to" or _is_host_target(args, kwargs):
                self._record("to_cpu" if name == "to" else name)
                self._in_method += 1
                try:
                    return original(tensor, *args, **kwargs)
                finally:
                    self._in_method -= 1
            return original(tensor, *args, **kwargs)

        return method

    def __enter__(self):
        for name in HOST_COPIES:
            self._saved[name] = getattr(torch.Tensor, name)
            setattr(torch.Tensor, name, self._wrap(name))
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            for name, original in self._saved.items():
                setattr(torch.Tensor, name, original)
            self._saved.clear()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self._in_method:
            packet = func.overloadpacket
            if packet in SYNC_OPS and packet is not aten.nonzero_static:
                self._record(str(packet))
            elif packet is aten._to_copy and args and getattr(args[0], "device", None) is not None:
                target = kwargs.get("device")
                if target is not None and torch.device(target).type == "cpu" and args[0].device.type != "cpu":
                    self._record("to_cpu")
        return func(*args, **kwargs)
