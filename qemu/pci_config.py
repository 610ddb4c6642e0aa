"""A conventional PCI function's configuration space, as the remote side of QEMU's proxy
serves it: identity (vendor, device, class, subsystem, revision), 32-bit memory and I/O BARs
that size themselves the standard way (write all ones, read the mask back), and the command
register; everything else reads 0 and ignores writes (no capabilities, no expansion ROM, no
interrupt pin: the proxy cannot deliver INTx without KVM).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CONFIG_SIZE = 256
BAR0 = 0x10
COMMAND_WRITABLE = 0x0547  # I/O, memory, bus master, parity, SERR, INTx disable
COMMAND_IO, COMMAND_MEMORY = 0x1, 0x2


class PciConfigError(ValueError):
    """A PCI function that cannot be described as asked; says which field and why."""


@dataclass(frozen=True)
class Bar:
    """BAR ``index`` (0..5): ``size`` bytes (a power of two: 16 bytes to 2 GiB of memory, or
    16 to 256 I/O ports; QEMU 7.2's proxy sizes every BAR with a 16-byte granule) that forward
    to bus address ``bus_addr``."""

    index: int
    bus_addr: int
    size: int
    io: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.index <= 5:
            raise PciConfigError(f"BAR {self.index}: a BAR is numbered 0 to 5")
        low, high = (16, 256) if self.io else (16, 1 << 31)
        if self.size & (self.size - 1) or not low <= self.size <= high:
            kind = "an I/O" if self.io else "a memory"
            raise PciConfigError(
                f"BAR {self.index}: {kind} BAR is a power of two from {low} to {high:#x} bytes, "
                f"not {self.size:#x}"
            )

    @property
    def type_bits(self) -> int:
        return 0x1 if self.io else 0x0  # I/O space; or 32-bit, non-prefetchable memory

    @property
    def mask(self) -> int:
        return ~(self.size - 1) & (0xFFFFFFFC if self.io else 0xFFFFFFF0)


@dataclass(frozen=True)
class Identity:
    """Who the function says it is. ``class_code`` is 24 bits: class, subclass, prog-if."""

    vendor: int = 0x1234
    device: int = 0x5001
    class_code: int = 0xFF0000  # "device does not fit any defined class"
    revision: int = 0
    subsystem_vendor: int = 0
    subsystem: int = 0

    def __post_init__(self) -> None:
        for name, bits in (("vendor", 16), ("device", 16), ("class_code", 24), ("revision", 8),
                           ("subsystem_vendor", 16), ("subsystem", 16)):  # fmt: skip
            value = getattr(self, name)
            if not 0 <= value < 1 << bits:
                raise PciConfigError(f"{name} {value:#x} does not fit in {bits} bits")
        if self.vendor == 0xFFFF:
            raise PciConfigError("vendor 0xffff means 'no function here'; choose another")


@dataclass
class ConfigSpace:
    """The function's 256 bytes of configuration space (see the module docstring)."""

    identity: Identity
    bars: list[Bar] = field(default_factory=list)

    def __post_init__(self) -> None:
        indexes = [b.index for b in self.bars]
        if len(set(indexes)) != len(indexes):
            raise PciConfigError(f"BARs {sorted(indexes)}: each BAR is given once")
        self._bar = {b.index: b for b in self.bars}
        self.reset()

    def reset(self) -> None:
        """Back to power-on: identity, command 0, BARs at 0."""
        ident = self.identity
        self.bytes = bytearray(CONFIG_SIZE)
        self._put(0x00, 2, ident.vendor)
        self._put(0x02, 2, ident.device)
        self._put(0x08, 1, ident.revision)
        self._put(0x09, 3, ident.class_code)
        self._put(0x2C, 2, ident.subsystem_vendor)
        self._put(0x2E, 2, ident.subsystem)
        for bar in self.bars:
            self._put(BAR0 + 4 * bar.index, 4, bar.type_bits)

    def _put(self, addr: int, length: int, value: int) -> None:
        self.bytes[addr : addr + length] = value.to_bytes(length, "little")

    def _get(self, addr: int, length: int) -> int:
        return int.from_bytes(self.bytes[addr : addr + length], "little")

    def read(self, addr: int, length: int) -> int:
        """``length`` (1, 2 or 4) bytes at ``addr``; outside the 256 bytes reads 0."""
        if not 0 <= addr < addr + length <= CONFIG_SIZE:
            return 0
        return self._get(addr, length)

    def write(self, addr: int, length: int, value: int) -> None:
        """A config write; only the command register, cache line size, latency timer,
        interrupt line and the BARs' address bits change."""
        for i in range(length):
            self._write_byte(addr + i, (value >> (8 * i)) & 0xFF)

    def _write_byte(self, addr: int, byte: int) -> None:
        if addr in (0x04, 0x05):
            keep = (COMMAND_WRITABLE >> (8 * (addr - 4))) & 0xFF
            self.bytes[addr] = byte & keep
        elif addr in (0x0C, 0x0D, 0x3C):
            self.bytes[addr] = byte
        elif BAR0 <= addr < BAR0 + 24:
            bar = self._bar.get((addr - BAR0) // 4)
            if bar is not None:
                shift = 8 * ((addr - BAR0) % 4)
                keep = (bar.mask >> shift) & 0xFF
                self.bytes[addr] = (byte & keep) | ((bar.type_bits >> shift) & 0xFF)

    def base(self, bar: Bar) -> int:
        """Where the guest placed ``bar``."""
        return self._get(BAR0 + 4 * bar.index, 4) & bar.mask

    def decode(self, addr: int, memory: bool) -> tuple[Bar, int] | None:
        """The BAR holding ``addr`` (a memory address if ``memory``, else an I/O port) and
        the offset into it; None if no BAR does."""
        for bar in self.bars:
            if bar.io != memory:
                base = self.base(bar)
                if base and base <= addr < base + bar.size:
                    return bar, addr - base
        return None
