"""Map an MMIO range with plain ctypes callbacks (one Python frame per access).

Unicorn's own ``Uc.mmio_map`` wraps each callback in two more Python layers;
calling ``uc_mmio_map`` from the binding's loaded library directly roughly
halves the cost of a local device access. Falls back to ``Uc.mmio_map`` if
the binding's internals are not where this version (2.1.x) keeps them.

The callbacks must not raise: ctypes would print and drop the exception.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from unicorn import Uc, UcError
from unicorn import unicorn_const as UC

ReadFn = Callable[[int, int], int]
WriteFn = Callable[[int, int, int], None]

try:
    from unicorn.unicorn_py3.unicorn import MMIO_READ_CFUNC, MMIO_WRITE_CFUNC, uclib
except ImportError:  # pragma: no cover - other binding layouts
    uclib = None  # type: ignore[assignment]


def map_mmio(uc: Uc, base: int, size: int, read: ReadFn, write: WriteFn, keep: list[Any]) -> None:
    """Serve [base, base + size) with *read(offset, size)* / *write(offset, size, value)*;
    *keep* receives objects that must outlive the mapping."""
    handle = getattr(uc, "_uch", None)
    if uclib is None or handle is None:
        uc.mmio_map(
            base,
            size,
            lambda _uc, off, sz, _ud: read(off, sz),
            None,
            lambda _uc, off, sz, val, _ud: write(off, sz, val),
            None,
        )
        return
    rd = MMIO_READ_CFUNC(lambda _h, off, sz, _ud: read(off, sz))
    wr = MMIO_WRITE_CFUNC(lambda _h, off, sz, val, _ud: write(off, sz, val))
    keep.extend((rd, wr))
    status = uclib.uc_mmio_map(handle, base, size, rd, None, wr, None)
    if status != UC.UC_ERR_OK:
        raise UcError(status)
