"""What a CPU front-end maps, from what the bus says: the CPU's description (``pb.Cpu``) and the
flat view of its address space (``pb.Topology``).

Every flat range becomes one of:

* RAM or ROM the CPU runs from directly (the bus shares the region's bytes), when its address,
  size and offset are whole 4 KiB pages (the engine maps pages);
* a board device the CPU serves itself (timers, interrupt controller, power-off);
* a bus window: every access goes to the bus (a round trip), rounded out to whole pages.

Addresses nothing shows at stay unmapped: the guest touching them is an error that names the
pc and the address.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mmiobus.v1 import bus_pb2 as pb
from mmiobus.wire import size_from_pb

PAGE = 0x1000


class LayoutError(ValueError):
    """The machine cannot be mapped by the CPU engine; says which region and why."""


@dataclass(frozen=True)
class RamRange:
    """Guest addresses [base, base + size) are ``region``'s bytes from ``offset`` on."""

    base: int
    size: int
    region: str
    offset: int
    readonly: bool


@dataclass
class Layout:
    """The CPU's memory map and boot parameters."""

    cpu: pb.Cpu
    ram: list[RamRange] = field(default_factory=list)
    board: dict[str, tuple[int, int]] = field(default_factory=dict)  # role -> (base, size)
    windows: list[tuple[int, int]] = field(default_factory=list)  # (base, size), whole pages
    slow_ram: list[str] = field(default_factory=list)  # RAM regions reached through the bus

    @property
    def regions_to_share(self) -> list[str]:
        """The RAM and ROM regions the CPU maps, each once."""
        return sorted({r.region for r in self.ram})

    def board_region(self, role: str) -> str:
        return self.cpu.board_devices[role]


def address_space(cpu: pb.Cpu, topology: pb.Topology) -> pb.AddressSpace:
    """The address space ``cpu`` runs in (named by id, or else by name)."""
    space = next((s for s in topology.address_spaces if s.id == cpu.address_space), None)
    if space is None:
        space = next((s for s in topology.address_spaces if s.name == cpu.address_space), None)
    if space is None:
        raise LayoutError(f"the bus has no address space {cpu.address_space!r}")
    return space


def layout(
    cpu: pb.Cpu, topology: pb.Topology, board: dict[str, tuple[int, int]] | None = None
) -> Layout:
    """The memory map of ``cpu`` in the topology's flat view of its address space. ``board``:
    where the board devices are (a running CPU's, which keep their places when the topology
    changes), instead of where the flat view shows them."""
    space = address_space(cpu, topology)
    kinds = {r.id: r for r in topology.regions}
    roles = {region: role for role, region in cpu.board_devices.items()}
    out = Layout(cpu)
    windows: list[tuple[int, int]] = []
    for fr in space.flat_view:
        size = size_from_pb(fr.size)
        region = kinds.get(fr.region)
        role = roles.get(fr.region)
        if role is not None:
            base = fr.start - fr.offset
            known = out.board.get(role)
            out.board[role] = (
                min(base, known[0]) if known else base,
                region.size if region else size,
            )
            continue
        if region is not None and region.kind in (pb.RAM, pb.ROM):
            if fr.start % PAGE or size % PAGE or fr.offset % PAGE:
                out.slow_ram.append(fr.region)
                windows.append((fr.start, size))
                continue
            readonly = region.kind == pb.ROM or fr.readonly or region.readonly
            out.ram.append(RamRange(fr.start, size, fr.region, fr.offset, readonly))
            continue
        windows.append((fr.start, size))
    if board is not None:
        out.board = dict(board)
    missing = sorted(set(cpu.board_devices) - set(out.board))
    if missing:
        raise LayoutError(
            f"board device {cpu.board_devices[missing[0]]!r} ({missing[0]}) does not show in "
            f"address space {cpu.address_space!r}"
        )
    taken = [(r.base, r.size) for r in out.ram] + [_pages(*b) for b in out.board.values()]
    out.windows = _merge([_pages(*w) for w in windows], taken)
    return out


def _pages(base: int, size: int) -> tuple[int, int]:
    """[base, base + size) rounded out to whole pages."""
    start = base & ~(PAGE - 1)
    end = min((base + size + PAGE - 1) & ~(PAGE - 1), 1 << 64)
    return start, end - start


def _merge(windows: list[tuple[int, int]], taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Windows merged where they touch, minus what RAM and board devices take (a window page
    that a board device also needs is an error: the engine maps pages)."""
    merged: list[list[int]] = []
    for base, size in sorted(windows):
        if merged and base <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], base + size)
        else:
            merged.append([base, base + size])
    out = []
    for start, end in merged:
        for tb, ts in taken:
            if tb < end and start < tb + ts:
                raise LayoutError(
                    f"the bus window {start:#x}-{end - 1:#x} shares a 4 KiB page with RAM or a "
                    f"board device at {tb:#x}: move one of them to a page of its own"
                )
        out.append((start, end - start))
    return out


def declared_regions(cpu: pb.Cpu, topology: pb.Topology) -> dict[str, str]:
    """Region id -> the device process that the machine says serves it, for the devices the
    CPU waits for: the CPU starts once each of them serves its regions (attached is not enough:
    a device claims its regions after it says hello)."""
    waits = set(cpu.devices)
    return {r.id: r.declared_device for r in topology.regions if r.declared_device in waits}
