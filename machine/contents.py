"""Initial contents of RAM, ROM and ROM-device regions (``file:`` in a description), read
within the region's size: a file that is too big is refused before any of it is read."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

# Read in pieces, so that a file that grows while we read it costs at most one piece more than
# the region holds.
_CHUNK = 1 << 20


class ContentsError(ValueError):
    """A ``file:`` cannot give a region its contents; says which file and why."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{str(path)!r} {problem}")
        self.path = path
        self.problem = problem


def load_file_contents(spec_file: str, base_dir: Path, size: int) -> bytes:
    """The bytes of ``spec_file`` (relative paths start at ``base_dir``), at most ``size`` of
    them. Only regular files are read, and never more than ``size + 1`` bytes, so that a huge
    file, a device such as ``/dev/zero`` or a pipe cannot stall or exhaust the loader.
    Raises ``ContentsError``."""
    path = Path(spec_file)
    if not path.is_absolute():
        path = base_dir / path
    try:
        # O_NONBLOCK: opening a pipe must not wait for a writer (it is refused just below).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ContentsError(path, "is not a regular file")
            if info.st_size > size:
                raise ContentsError(
                    path, f"has {info.st_size} bytes, more than the region's {size}"
                )
            data = _read_at_most(f, size + 1)
    except OSError as e:
        raise ContentsError(path, f"cannot be read: {e.strerror or e}") from None
    if len(data) > size:  # it grew after we looked
        raise ContentsError(path, f"has more than the region's {size} bytes")
    return data


def _read_at_most(f: BinaryIO, limit: int) -> bytes:
    read = f.read
    pieces: list[bytes] = []
    total = 0
    while total < limit:
        piece = read(min(_CHUNK, limit - total))
        if not piece:
            break
        pieces.append(piece)
        total += len(piece)
    return b"".join(pieces)
