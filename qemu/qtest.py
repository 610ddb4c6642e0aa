"""QEMU's qtest protocol, as far as a bus device needs it: reads and writes of the machine's
address space (through the first CPU's view, as the CPU would make them) and interrupt
interception (``irq_intercept_in``: the controller's inputs are reported as ``IRQ raise N`` /
``IRQ lower N`` instead of reaching it).

Each access waits for its answer (writes to regions with posted writes do not). qtest answers
every access with OK (an address nothing maps reads as 0): windows are checked against the
machine's memory map before they are served (``machine_view``).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from mmiobus.peers.lines import LineChannel

_READ = {1: "readb", 2: "readw", 4: "readl", 8: "readq"}
_WRITE = {1: "writeb", 2: "writew", 4: "writel", 8: "writeq"}


class QtestError(Exception):
    """QEMU refused a qtest command; carries its answer."""


class Qtest:
    """Accesses and interrupt events over a qtest connection; ``on_irq(n, level)`` is called
    for each intercepted input that changes. Accesses wait for QEMU's answer (see
    ``mmiobus.peers.lines``); ``ChannelClosed`` once QEMU has gone."""

    def __init__(self, sock: socket.socket) -> None:
        self.on_irq: Callable[[int, bool], None] = lambda n, level: None
        self.channel = LineChannel(sock, _is_event, self._event)

    def _event(self, line: str) -> None:
        words = line.split()
        if len(words) == 3 and words[1] in ("raise", "lower") and words[2].isdigit():
            self.on_irq(int(words[2]), words[1] == "raise")

    def read(self, addr: int, size: int) -> int:
        """Read ``size`` (1, 2, 4 or 8) bytes at ``addr``: the value, as the CPU would see it."""
        answer = self.channel.call(f"{_READ[size]} {addr:#x}")
        words = answer.split()
        if len(words) != 2 or words[0] != "OK":
            raise QtestError(answer)
        return int(words[1], 16)

    def write(self, addr: int, size: int, value: int, posted: bool = False) -> None:
        """Write ``value`` (``size`` bytes) at ``addr``; with ``posted``, without waiting."""
        command = f"{_WRITE[size]} {addr:#x} {value:#x}"
        if posted:
            self.channel.post(command)
            return
        answer = self.channel.call(command)
        if not answer.startswith("OK"):
            raise QtestError(answer)

    def intercept_irqs(self, qom_path: str) -> None:
        """Intercept the inputs of the device at ``qom_path`` (one device per QEMU)."""
        answer = self.channel.call(f"irq_intercept_in {qom_path}")
        if not answer.startswith("OK"):
            raise QtestError(answer)


def _is_event(line: str) -> bool:
    return line.startswith("IRQ ")
