"""The PCI function `mmiobus pci-proxy` presents, and its side of QEMU's mpqemu protocol,
checked without QEMU: configuration space as a PCI bus sees it, and messages as QEMU 7.2's
proxy writes them (header, data, file descriptors)."""

from __future__ import annotations

import os
import socket
import struct

import pytest
from mmiobus.qemu.mpqemu import BAR_ACCESS, HEADER, PCI_CONF, Cmd, Link
from mmiobus.qemu.pci_config import Bar, ConfigSpace, Identity, PciConfigError
from mmiobus.qemu.pci_proxy import ProxyServer


def _space() -> ConfigSpace:
    return ConfigSpace(Identity(0x1234, 0x11E9, 0x070002, 3, 0x1AF4, 0x1100),
                       [Bar(0, 0x10000000, 0x100), Bar(2, 0x2000, 16, io=True)])  # fmt: skip


def test_identity_reads_where_pci_puts_it():
    cfg = _space()
    assert cfg.read(0x00, 4) == 0x11E91234
    assert cfg.read(0x08, 4) == 0x07000203  # class, subclass, prog-if, revision
    assert cfg.read(0x0A, 2) == 0x0700  # what the proxy reads as its class id
    assert cfg.read(0x2C, 4) == 0x11001AF4
    assert cfg.read(0x0E, 1) == 0  # a type 0 header, one function
    assert cfg.read(0x3D, 1) == 0  # no interrupt pin: no INTx without KVM


def test_bars_size_themselves_by_writing_all_ones():
    cfg = _space()
    for offset, expected in ((0x10, 0xFFFFFF00), (0x18, 0xFFFFFFF1), (0x14, 0), (0x28, 0)):
        cfg.write(offset, 4, 0xFFFFFFFF)
        assert cfg.read(offset, 4) == expected, hex(offset)


def test_a_placed_bar_decodes_accesses_of_its_space_only():
    cfg = _space()
    cfg.write(0x10, 4, 0xC0000000)
    cfg.write(0x18, 4, 0xC000)
    assert cfg.read(0x10, 4) == 0xC0000000
    assert cfg.decode(0xC0000005, memory=True) == (cfg.bars[0], 5)
    assert cfg.decode(0xC0000100, memory=True) is None
    assert cfg.decode(0xC005, memory=False) == (cfg.bars[1], 5)
    assert cfg.decode(0xC005, memory=True) is None


def test_only_writable_bits_change():
    cfg = _space()
    cfg.write(0x00, 4, 0)  # vendor and device are read-only
    cfg.write(0x04, 2, 0xFFFF)
    assert cfg.read(0x00, 4) == 0x11E91234
    assert cfg.read(0x04, 2) == 0x0547
    cfg.reset()
    assert cfg.read(0x04, 2) == 0


@pytest.mark.parametrize(
    ("bars", "says"),
    [([Bar(0, 0, 16), Bar(0, 0, 32)], "each BAR is given once")],
)
def test_a_function_with_a_bar_twice_is_refused(bars, says):
    with pytest.raises(PciConfigError, match=says):
        ConfigSpace(Identity(), bars)


class FakeBus:
    def __init__(self) -> None:
        self.memory = {0x10000005: 0x60}
        self.writes: list[tuple[int, int, int]] = []

    def read(self, addr: int, size: int) -> int | None:
        return self.memory.get(addr, 0)

    def write(self, addr: int, size: int, value: int) -> bool:
        self.writes.append((addr, size, value))
        return True


def _send(sock: socket.socket, cmd: int, data: bytes = b"", fds: list[int] | None = None):
    header = HEADER.pack(cmd, len(data))
    if fds:
        sock.sendmsg(
            [header], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))]
        )
        sock.sendall(data)
    else:
        sock.sendall(header + data)


def _ret(sock: socket.socket) -> int:
    cmd, size = HEADER.unpack(sock.recv(HEADER.size, socket.MSG_WAITALL))
    assert (cmd, size) == (Cmd.RET, 8)
    return struct.unpack("<Q", sock.recv(8, socket.MSG_WAITALL))[0]


def test_the_proxys_messages_are_answered_as_qemu_waits_for_them():
    qemu, ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    cfg, bus = _space(), FakeBus()
    server = ProxyServer(Link(ours), cfg, bus)  # type: ignore[arg-type]
    r, w = os.pipe()
    # QEMU's memory listener: RAM fds (not answered), then the irqfds (not answered either).
    _send(qemu, Cmd.SYNC_SYSMEM, bytes(192), [r])
    _send(qemu, Cmd.SET_IRQFD, b"", [w, w])
    _send(qemu, Cmd.PCI_CFGREAD, PCI_CONF.pack(0x00, 0, 4))
    _send(qemu, Cmd.PCI_CFGWRITE, PCI_CONF.pack(0x10, 0xC0000000, 4))
    _send(qemu, Cmd.BAR_READ, BAR_ACCESS.pack(0xC0000005, 0, 1, True))
    _send(qemu, Cmd.BAR_WRITE, BAR_ACCESS.pack(0xC0000000, 0x41, 1, True))
    _send(qemu, Cmd.BAR_READ, BAR_ACCESS.pack(0xD0000000, 0, 4, True))  # no BAR there
    _send(qemu, Cmd.DEVICE_RESET)
    qemu.shutdown(socket.SHUT_WR)
    server.serve()
    assert [_ret(qemu) for _ in range(6)] == [0x11E91234, 0, 0x60, 0, 0xFFFFFFFF, 0]
    assert bus.writes == [(0x10000000, 1, 0x41)]
    assert server.faults == 1
    assert cfg.read(0x10, 4) == 0  # reset
    for fd in (r, w):  # the received copies were closed; ours are still open
        os.close(fd)


def test_a_description_file_gives_the_function_and_options_win(tmp_path):
    from mmiobus.cli.main import build_parser
    from mmiobus.cli.pci_proxy import function_config

    desc = tmp_path / "uart.yaml"
    desc.write_text(
        "vendor: 0x1b36\ndevice: 0x0002\nclass: 0x070002\n"
        "bars:\n  - {index: 0, bus: 0x10000000, size: 256}\n  - {index: 1, bus: 0x3f8, size: 8, io: true}\n"
    )
    args = build_parser().parse_args(
        ["pci-proxy", "--description", str(desc), "--device-id", "0x11e9", "--bar", "1=0x3f8:16:io"]
    )
    cfg = function_config(args)
    assert cfg.read(0x00, 4) == 0x11E91B36
    assert cfg.read(0x09, 3) == 0x070002
    assert [(b.index, b.bus_addr, b.size, b.io) for b in cfg.bars] == [
        (0, 0x10000000, 256, False),
        (1, 0x3F8, 16, True),
    ]
