"""QEMU 7.2's multi-process protocol ("mpqemu", ``include/hw/remote/mpqemu-link.h``), the remote
side: what ``x-pci-proxy-dev`` sends over its socket, and the replies it waits for.

A message is a 16-byte header (``int cmd``, padding, ``size_t size``; host byte order, here
x86-64) followed by ``size`` bytes of data; file descriptors travel with the header
(SCM_RIGHTS). The proxy waits for a ``RET`` (one ``uint64``) after config reads and writes,
BAR reads and writes and resets; memory-map updates (``SYNC_SYSMEM``) and the interrupt
eventfds (``SET_IRQFD``) are not answered. The protocol is QEMU-private and meant to be
superseded by vfio-user; these layouts are those of QEMU 7.2 on a 64-bit little-endian host.
"""

from __future__ import annotations

import array
import enum
import os
import socket
import struct
from dataclasses import dataclass

HEADER = struct.Struct("<i4xQ")  # int cmd; size_t size (offsetof(MPQemuMsg, data) == 16)
PCI_CONF = struct.Struct("<IIi")  # PciConfDataMsg: uint32 addr, uint32 val, int len
BAR_ACCESS = struct.Struct(
    "<QQI?3x"
)  # BarAccessMsg: hwaddr addr, uint64 val, unsigned size, bool memory
SYNC_SYSMEM_SIZE = 3 * 8 * 8  # SyncSysmemMsg: 8 guest addresses, 8 sizes, 8 offsets
MAX_DATA = SYNC_SYSMEM_SIZE  # the largest member of the data union
MAX_FDS = 8  # REMOTE_MAX_FDS


class Cmd(enum.IntEnum):
    """MPQemuCmd, in QEMU 7.2's order."""

    SYNC_SYSMEM = 0
    RET = 1
    PCI_CFGWRITE = 2
    PCI_CFGREAD = 3
    BAR_WRITE = 4
    BAR_READ = 5
    SET_IRQFD = 6
    DEVICE_RESET = 7


class ProtocolError(Exception):
    """QEMU sent something this side cannot read (a corrupt or unknown message)."""


@dataclass(frozen=True)
class Message:
    """One message from the proxy: its command, data and file descriptors (owned by the
    receiver: close them)."""

    cmd: int
    data: bytes
    fds: tuple[int, ...] = ()

    def config(self) -> tuple[int, int, int]:
        """(address, value, length) of a config read or write."""
        return PCI_CONF.unpack(self.data)

    def bar(self) -> tuple[int, int, int, bool]:
        """(address, value, size, memory?) of a BAR read or write."""
        return BAR_ACCESS.unpack(self.data)


class Link:
    """The remote end of a proxy's socket (blocking)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def _recv_exactly(self, n: int, fds: list[int] | None) -> bytes:
        buf = b""
        while len(buf) < n:
            if fds is None:
                chunk = self.sock.recv(n - len(buf))
            else:
                chunk, ancillary, _flags, _addr = self.sock.recvmsg(
                    n - len(buf), socket.CMSG_SPACE(MAX_FDS * 4)
                )
                for level, kind, payload in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        got = array.array("i")
                        got.frombytes(payload[: len(payload) - len(payload) % 4])
                        fds.extend(got)
            if not chunk:
                if buf:
                    raise ProtocolError("QEMU closed the socket in the middle of a message")
                raise EOFError
            buf += chunk
        return buf

    def receive(self) -> Message:
        """The next message (``EOFError`` once QEMU has closed its end)."""
        fds: list[int] = []
        cmd, size = HEADER.unpack(self._recv_exactly(HEADER.size, fds))
        if size > MAX_DATA:
            for fd in fds:
                os.close(fd)
            raise ProtocolError(f"a message of {size} bytes (at most {MAX_DATA} fit one)")
        data = self._recv_exactly(size, None) if size else b""
        return Message(cmd, data, tuple(fds))

    def reply(self, value: int) -> None:
        """Send ``RET value`` (a uint64)."""
        self.sock.sendall(HEADER.pack(Cmd.RET, 8) + struct.pack("<Q", value & (2**64 - 1)))
