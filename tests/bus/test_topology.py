"""ApplyTopology, GetTopology and Mtree against a real `mmiobus serve` process over real gRPC.

Every operation is checked through what it changes: accesses, the structured topology (regions,
containers, subregion order, flat views) and QEMU's `info mtree` text. Tests share one server
and stay out of each other's way with unique region ids and addresses of their own.
"""

from __future__ import annotations

import itertools
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from support.servers import MMIOBUS, ServerFactory, ServerProcess

MASK64 = (1 << 64) - 1
OK = 0
DECODE_ERROR = 2

# Base machine: two address spaces, RAM, ROM, an alias onto an unmapped region, a disabled region
# and an I/O-space mmio region.
MACHINE = """\
endianness: little
address_spaces:
  - {name: memory, root: system}
  - {id: io, name: I/O, root: ioport}
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, size: 64K}
      - {name: window, kind: alias, target: highmem, offset: 0x1000, size: 0x1000, addr: 0x40000000}
      - {name: boot, kind: rom, addr: 0xfff00000, size: 64K}
      - {name: spare, kind: ram, addr: 0x50000000, size: 0x1000, enabled: false}
  - {name: highmem, kind: ram, size: 0x10000}
  - name: ioport
    kind: container
    size: 0x10000
    subregions:
      - {name: pio, kind: mmio, size: 0x100, unassigned: io}
"""

# The base machine after REBUILD_OPS, written as a description.
REBUILT = """\
endianness: little
address_spaces:
  - {name: memory, root: system}
  - {id: io, name: I/O, root: ioport}
  - {id: dma, name: dma-view, root: dev}
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, size: 64K}
      - {name: window, kind: alias, target: highmem, offset: 0x2000, size: 0x1000, addr: 0x40000000}
      - {name: boot, kind: rom, addr: 0xfff00000, size: 64K}
      - {name: spare, kind: ram, addr: 0x50000000, size: 0x1000}
      - name: dev
        kind: container
        addr: 0x60000000
        size: 0x10000
        subregions:
          - {name: dev.ram, kind: ram, size: 0x1000, nonvolatile: true}
          - {name: dev.regs, kind: mmio, addr: 0x1000, size: 0x100, enabled: false}
      - {name: dev.alias, kind: alias, target: highmem, size: 0x800, addr: 0x70000000, priority: 2}
      - {id: hi.rom, name: hi-rom, kind: rom, addr: 0x80000000, size: 0x1000, readonly: true}
  - {name: highmem, kind: ram, size: 0x10000}
  - name: ioport
    kind: container
    size: 0x10000
    subregions:
      - {name: pio, kind: mmio, size: 0x100, unassigned: io}
"""


# -- operations ------------------------------------------------------------------------------


def create(rid: str, kind: int, size: int, **fields) -> pb.TopologyOp:
    return pb.TopologyOp(create_region=pb.CreateRegion(id=rid, kind=kind, size=size, **fields))


def add(parent: str, child: str, addr: int, priority: int = 0) -> pb.TopologyOp:
    return pb.TopologyOp(
        add_subregion=pb.AddSubregion(parent=parent, child=child, addr=addr, priority=priority)
    )


def delete(rid: str) -> pb.TopologyOp:
    return pb.TopologyOp(delete_region=pb.DeleteRegion(id=rid))


def remove(child: str) -> pb.TopologyOp:
    return pb.TopologyOp(remove_subregion=pb.RemoveSubregion(child=child))


def set_address(rid: str, addr: int) -> pb.TopologyOp:
    return pb.TopologyOp(set_address=pb.SetAddress(id=rid, addr=addr))


def set_priority(rid: str, priority: int) -> pb.TopologyOp:
    return pb.TopologyOp(set_priority=pb.SetPriority(id=rid, priority=priority))


def set_enabled(rid: str, enabled: bool) -> pb.TopologyOp:
    return pb.TopologyOp(set_enabled=pb.SetEnabled(id=rid, enabled=enabled))


def set_alias_offset(rid: str, offset: int) -> pb.TopologyOp:
    return pb.TopologyOp(set_alias_offset=pb.SetAliasOffset(id=rid, offset=offset))


def set_size(rid: str, size: int) -> pb.TopologyOp:
    return pb.TopologyOp(set_size=pb.SetSize(id=rid, size=size))


def set_readonly(rid: str, readonly: bool) -> pb.TopologyOp:
    return pb.TopologyOp(set_readonly=pb.SetReadonly(id=rid, readonly=readonly))


def set_romd(rid: str, romd_mode: bool) -> pb.TopologyOp:
    return pb.TopologyOp(set_romd=pb.SetRomd(id=rid, romd_mode=romd_mode))


def create_space(sid: str, root: str, name: str = "") -> pb.TopologyOp:
    return pb.TopologyOp(create_address_space=pb.CreateAddressSpace(id=sid, name=name, root=root))


REBUILD_OPS = [
    set_alias_offset("window", 0x2000),
    set_enabled("spare", True),
    create("dev", pb.CONTAINER, 0x10000),
    create("dev.ram", pb.RAM, 0x1000, nonvolatile=True),
    create("dev.regs", pb.MMIO, 0x100),
    set_enabled("dev.regs", False),
    add("dev", "dev.ram", 0),
    add("dev", "dev.regs", 0x1000),
    add("system", "dev", 0x60000000),
    create("dev.alias", pb.ALIAS, 0x800, target="highmem"),
    add("system", "dev.alias", 0x70000000, priority=2),
    create("hi.rom", pb.ROM, 0x1000, name="hi-rom", readonly=True),
    add("system", "hi.rom", 0x80000000),
    create_space("dma", "dev", name="dma-view"),
]


# -- a small synchronous client on the raw stub ----------------------------------------------


class Wire:
    """The generated stub plus helpers; every call is one real RPC."""

    def __init__(self, address: str) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = bus_pb2_grpc.BusStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def apply(self, *ops: pb.TopologyOp) -> pb.ApplyTopologyResponse:
        return self.stub.ApplyTopology(pb.ApplyTopologyRequest(ops=ops), timeout=30)

    def apply_error(self, *ops: pb.TopologyOp) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            self.apply(*ops)
        return info.value

    def read(self, addr: int, n: int, space: str = "") -> tuple[bytes, int]:
        r = self.stub.Rw(pb.RwRequest(address_space=space, addr=addr, read=n), timeout=30)
        return r.data, r.result

    def data(self, addr: int, n: int, space: str = "") -> bytes:
        data, result = self.read(addr, n, space)
        assert result == OK, f"read of {n} bytes at {addr:#x} failed with {result}"
        return data

    def write(self, addr: int, data: bytes, space: str = "") -> int:
        return self.stub.Rw(
            pb.RwRequest(address_space=space, addr=addr, write=data), timeout=30
        ).result

    def topology(self) -> pb.Topology:
        return self.stub.GetTopology(pb.GetTopologyRequest(flat_views=True), timeout=30)

    def region(self, rid: str) -> pb.Region | None:
        return next((r for r in self.topology().regions if r.id == rid), None)

    def flat(self, space: str = "memory") -> list[pb.FlatRange]:
        topo = self.topology()
        return list(next(s for s in topo.address_spaces if s.id == space).flat_view)

    def range_at(self, addr: int, space: str = "memory") -> pb.FlatRange | None:
        for fr in self.flat(space):
            if fr.start <= addr < fr.start + fr.size:
                return fr
        return None

    def mtree(self, flat: bool = False, disabled: bool = False) -> str:
        return self.stub.Mtree(pb.MtreeRequest(flat=flat, disabled=disabled), timeout=30).text


def local_mtree(path, flat: bool = False, disabled: bool = False) -> str:
    """`mmiobus mtree [-f] [-D] FILE`, run locally (no server)."""
    args = [MMIOBUS, "mtree", *(["-f"] if flat else []), *(["-D"] if disabled else []), str(path)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@dataclass
class Snapshot:
    topology: pb.Topology
    mtrees: list[str]
    memory: list[tuple[bytes, int]]


def snapshot(wire: Wire, probes: list[int]) -> Snapshot:
    return Snapshot(
        wire.topology(),
        [wire.mtree(f, d) for f in (False, True) for d in (False, True)],
        [wire.read(a, 16) for a in probes],
    )


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def machine_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("machine") / "machine.yaml"
    path.write_text(MACHINE)
    return path


@pytest.fixture(scope="module")
def topo_server(machine_server: ServerFactory, machine_file) -> ServerProcess:
    """The server most tests change (each in its own ids and addresses)."""
    return machine_server(machine_file)


@pytest.fixture(scope="module")
def pristine_server(machine_server: ServerFactory, machine_file) -> ServerProcess:
    """A server on the same machine that no test changes."""
    return machine_server(machine_file)


@pytest.fixture(scope="module")
def limited_server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server(None, "--max-topology-ops", "3")


@pytest.fixture(scope="module")
def wire(topo_server) -> Iterator[Wire]:
    w = Wire(topo_server.tcp)
    yield w
    w.close()


_ids = itertools.count()
_windows = itertools.count()


def uid(prefix: str = "r") -> str:
    """A region id no other test uses."""
    return f"{prefix}{next(_ids)}"


@pytest.fixture
def base() -> int:
    """A 1 MiB window of the system address space no other test uses (above 4 GiB)."""
    return 0x1_0000_0000 + next(_windows) * 0x10_0000


def mtree_lines_for(text: str, name: str) -> list[str]:
    return [
        line for line in text.splitlines() if line.endswith(f"): {name}") or f"): {name} " in line
    ]


# -- create_region ---------------------------------------------------------------------------


def test_created_ram_reads_back_its_contents_zero_padded(wire, base):
    """create_region ram with contents: the bytes given, then zeros up to the size."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x100, contents=b"hello"), add("system", r, base))
    assert wire.data(base, 8) == b"hello" + bytes(3)


def test_created_ram_is_writable(wire, base):
    """A RAM region created over the wire stores what is written to it."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x100), add("system", r, base))
    assert wire.write(base + 0x10, b"\x01\x02\x03") == OK
    assert wire.data(base + 0x10, 3) == b"\x01\x02\x03"


def test_created_rom_reads_contents_and_refuses_writes(wire, base):
    """create_region rom: reads its contents; a write fails with DECODE_ERROR and changes nothing."""
    r = uid()
    wire.apply(create(r, pb.ROM, 0x100, contents=b"firmware"), add("system", r, base))
    assert wire.write(base, b"XXXX") & DECODE_ERROR
    assert wire.data(base, 8) == b"firmware"


def test_created_rom_is_a_readonly_range_in_the_flat_view(wire, base):
    """A ROM's flat range carries the readonly flag and names the region."""
    r = uid()
    wire.apply(create(r, pb.ROM, 0x100), add("system", r, base))
    fr = wire.range_at(base)
    assert (fr.region, fr.start, fr.size, fr.offset, fr.readonly) == (r, base, 0x100, 0, True)
    assert wire.region(r).readonly


def test_created_romd_reads_its_contents_in_romd_mode(wire, base):
    """create_region romd: in ROMD mode (the default) reads come from its contents."""
    r = uid()
    wire.apply(create(r, pb.ROMD, 0x100, contents=b"romd!"), add("system", r, base))
    assert wire.data(base, 5) == b"romd!"
    assert wire.region(r).romd_mode


def test_created_container_shows_its_subregions_and_keeps_holes(wire, base):
    """A container maps its children at their offsets; its holes decode to nothing."""
    c, child = uid("c"), uid()
    wire.apply(
        create(c, pb.CONTAINER, 0x1000),
        create(child, pb.RAM, 0x10, contents=b"inside"),
        add(c, child, 0x100),
        add("system", c, base),
    )
    assert wire.data(base + 0x100, 6) == b"inside"
    assert wire.read(base, 4)[1] & DECODE_ERROR
    topo_c, topo_child = wire.region(c), wire.region(child)
    assert list(topo_c.subregions) == [child]
    assert (topo_child.container, topo_child.addr) == (c, 0x100)
    assert topo_c.container == "system"


def test_created_alias_windows_its_target_at_the_offset(wire, base):
    """create_region alias: reads see the target from `offset` on."""
    target, alias = uid("t"), uid("a")
    contents = bytes(range(256))
    wire.apply(
        create(target, pb.RAM, 0x100, contents=contents),
        create(alias, pb.ALIAS, 0x20, target=target, offset=0x40),
        add("system", alias, base),
    )
    assert wire.data(base, 0x20) == contents[0x40:0x60]


def test_created_alias_flat_range_names_the_target_and_offset(wire, base):
    """The flat range behind an alias names the target region and the offset into it."""
    target, alias = uid("t"), uid("a")
    wire.apply(
        create(target, pb.RAM, 0x100),
        create(alias, pb.ALIAS, 0x20, target=target, offset=0x40),
        add("system", alias, base),
    )
    fr = wire.range_at(base)
    assert (fr.region, fr.start, fr.size, fr.offset) == (target, base, 0x20, 0x40)
    topo = wire.region(alias)
    assert (topo.kind, topo.target, topo.offset) == (pb.ALIAS, target, 0x40)


def test_writes_through_an_alias_land_in_the_target(wire, base):
    """Two aliases onto one target: a write through one is read through the other."""
    target, a1, a2 = uid("t"), uid("a"), uid("a")
    wire.apply(
        create(target, pb.RAM, 0x100),
        create(a1, pb.ALIAS, 0x100, target=target),
        create(a2, pb.ALIAS, 0x80, target=target, offset=0x80),
        add("system", a1, base),
        add("system", a2, base + 0x1000),
    )
    assert wire.write(base + 0x84, b"shared") == OK
    assert wire.data(base + 0x1004, 6) == b"shared"


def test_created_mmio_with_unassigned_io_reads_all_ones_ok(wire, base):
    """An mmio region nothing serves, unassigned=io: reads all-ones, MEMTX_OK, writes ignored."""
    r = uid("io")
    wire.apply(create(r, pb.MMIO, 0x10, unassigned=pb.UNASSIGNED_IO), add("system", r, base))
    assert wire.write(base, b"\x00" * 4) == OK
    assert wire.read(base, 8) == (b"\xff" * 8, OK)


def test_created_mmio_with_unassigned_memory_reads_zero_decode_error(wire, base):
    """An mmio region nothing serves, unassigned=memory: reads 0 with DECODE_ERROR."""
    r = uid("mm")
    wire.apply(create(r, pb.MMIO, 0x10), add("system", r, base))
    data, result = wire.read(base, 4)
    assert (data, result & DECODE_ERROR) == (bytes(4), DECODE_ERROR)
    assert wire.write(base, b"\x01") & DECODE_ERROR


def test_created_mmio_with_access_sizes_and_endianness_is_mapped(wire, base):
    """mmio with valid/impl sizes and a byte order is created and mapped as an i/o range."""
    r = uid("dev")
    wire.apply(
        create(
            r,
            pb.MMIO,
            0x100,
            valid=pb.AccessSpec(min=1, max=8, unaligned=True),
            impl=pb.AccessSpec(min=4, max=4),
            endianness=pb.BIG,
        ),
        add("system", r, base),
    )
    assert wire.region(r).kind == pb.MMIO
    assert wire.range_at(base).region == r
    assert any(
        f"{base:016x}-{base + 0xFF:016x}" in line for line in mtree_lines_for(wire.mtree(), r)
    )


def test_romd_valid_access_sizes_refuse_other_sizes_in_mmio_mode(wire, base):
    """A romd region's `valid` sizes decide which accesses reach its device (MMIO mode)."""
    strict, loose = uid("romd"), uid("romd")
    wire.apply(
        create(strict, pb.ROMD, 0x100, valid=pb.AccessSpec(min=4, max=4)),
        create(loose, pb.ROMD, 0x100),
        set_romd(strict, False),
        set_romd(loose, False),
        add("system", strict, base),
        add("system", loose, base + 0x1000),
    )
    assert wire.read(base, 1)[1] & DECODE_ERROR
    assert not wire.read(base + 0x1000, 1)[1] & DECODE_ERROR


def test_created_region_name_defaults_to_its_id(wire, base):
    """Without a name, the region prints (and reports) its id as its name."""
    r = uid("named")
    wire.apply(create(r, pb.RAM, 0x10), add("system", r, base))
    assert wire.region(r).name == r
    assert mtree_lines_for(wire.mtree(), r)


def test_created_region_name_is_what_mtree_prints(wire, base):
    """An explicit name is what GetTopology reports and `info mtree` prints."""
    r = uid()
    name = f"pretty-{r}"
    wire.apply(create(r, pb.RAM, 0x10, name=name), add("system", r, base))
    assert wire.region(r).name == name
    assert mtree_lines_for(wire.mtree(flat=True), name)
    assert not mtree_lines_for(wire.mtree(flat=True), r)


def test_created_nonvolatile_region_is_nonvolatile_in_the_flat_view(wire, base):
    """The nonvolatile flag reaches the region and its flat range."""
    r = uid("nv")
    wire.apply(create(r, pb.RAM, 0x10, nonvolatile=True), add("system", r, base))
    assert wire.region(r).nonvolatile
    assert wire.range_at(base).nonvolatile


def test_created_regions_are_listed_last_in_creation_order(wire):
    """GetTopology lists regions in creation order: new ones come after the existing ones."""
    before = [r.id for r in wire.topology().regions]
    new = [uid(), uid(), uid()]
    wire.apply(*(create(r, pb.RAM, 0x10) for r in new))
    assert [r.id for r in wire.topology().regions] == before + new


def test_created_region_is_unmapped_until_added(wire):
    """create_region alone maps nothing: the region has no container."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x10))
    region = wire.region(r)
    assert region.container == ""
    assert all(fr.region != r for fr in wire.flat())


# -- delete_region ---------------------------------------------------------------------------


def test_delete_region_unmaps_and_forgets_it(wire, base):
    """delete_region: the region leaves GetTopology and the flat view; its range decodes to nothing."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x100), add("system", r, base))
    wire.apply(delete(r))
    assert wire.region(r) is None
    assert wire.range_at(base) is None
    assert wire.read(base, 4)[1] & DECODE_ERROR
    assert r not in wire.region("system").subregions


def test_deleted_region_id_can_be_reused(wire, base):
    """After delete_region the id is free for a new region."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x10, contents=b"old"), add("system", r, base))
    wire.apply(delete(r))
    wire.apply(create(r, pb.RAM, 0x10, contents=b"new"), add("system", r, base))
    assert wire.data(base, 3) == b"new"


def test_delete_container_leaves_its_subregions_unmapped(wire, base):
    """Deleting a container keeps its subregions, unmapped, with their contents."""
    c, child = uid("c"), uid()
    wire.apply(
        create(c, pb.CONTAINER, 0x1000),
        create(child, pb.RAM, 0x10, contents=b"kept"),
        add(c, child, 0),
        add("system", c, base),
    )
    wire.apply(delete(c))
    assert wire.region(child).container == ""
    wire.apply(add("system", child, base + 0x2000))
    assert wire.data(base + 0x2000, 4) == b"kept"


# -- add_subregion / remove_subregion --------------------------------------------------------


def test_higher_priority_subregion_wins_the_overlap(wire, base):
    """add_subregion with a higher priority shows through a later, lower-priority sibling."""
    hi, lo = uid("hi"), uid("lo")
    wire.apply(
        create(hi, pb.RAM, 0x10, contents=b"H" * 16),
        create(lo, pb.RAM, 0x20, contents=b"L" * 32),
        add("system", hi, base, priority=5),
        add("system", lo, base, priority=1),
    )
    assert wire.data(base, 0x20) == b"H" * 16 + b"L" * 16
    assert (wire.range_at(base).region, wire.range_at(base + 0x10).region) == (hi, lo)


def test_subregions_are_listed_by_priority_then_newest_first(wire, base):
    """GetTopology lists a container's subregions in QEMU's order: priority down, newest first."""
    c = uid("c")
    a, b, d = uid("a"), uid("b"), uid("d")
    wire.apply(
        create(c, pb.CONTAINER, 0x1000),
        *(create(r, pb.RAM, 0x10) for r in (a, b, d)),
        add(c, a, 0x000, priority=1),
        add(c, b, 0x100, priority=3),
        add(c, d, 0x200, priority=1),
        add("system", c, base),
    )
    assert list(wire.region(c).subregions) == [b, d, a]


def test_equal_priority_newest_subregion_wins(wire, base):
    """Among equal priorities the most recently added subregion wins the overlap."""
    old, new = uid("old"), uid("new")
    wire.apply(
        create(old, pb.RAM, 0x10, contents=b"O" * 16),
        create(new, pb.RAM, 0x10, contents=b"N" * 16),
        add("system", old, base),
        add("system", new, base),
    )
    assert wire.data(base, 16) == b"N" * 16


def test_negative_priority_loses_to_priority_zero(wire, base):
    """Priorities are signed: -1 is below 0."""
    neg, zero = uid("neg"), uid("zero")
    wire.apply(
        create(zero, pb.RAM, 0x10, contents=b"Z" * 16),
        create(neg, pb.RAM, 0x10, contents=b"N" * 16),
        add("system", zero, base),
        add("system", neg, base, priority=-1),
    )
    assert wire.data(base, 16) == b"Z" * 16
    assert wire.region(neg).priority == -1


def test_remove_subregion_unmaps_but_keeps_region_and_contents(wire, base):
    """remove_subregion: the range decodes to nothing; the region and its bytes stay."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x10), add("system", r, base))
    wire.write(base, b"persist")
    wire.apply(remove(r))
    assert wire.read(base, 4)[1] & DECODE_ERROR
    assert wire.region(r).container == ""
    wire.apply(add("system", r, base + 0x100))
    assert wire.data(base + 0x100, 7) == b"persist"


def test_remove_subregion_reveals_what_it_covered(wire, base):
    """Removing the winner of an overlap makes the region below visible again."""
    top, bottom = uid("top"), uid("bottom")
    wire.apply(
        create(bottom, pb.RAM, 0x10, contents=b"B" * 16),
        create(top, pb.RAM, 0x10, contents=b"T" * 16),
        add("system", bottom, base),
        add("system", top, base),
    )
    wire.apply(remove(top))
    assert wire.data(base, 16) == b"B" * 16


# -- set_address / set_priority / set_enabled ------------------------------------------------


def test_set_address_moves_a_region(wire, base):
    """set_address: the bytes answer at the new address and no longer at the old one."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x10, contents=b"mover"), add("system", r, base))
    wire.apply(set_address(r, base + 0x8000))
    assert wire.data(base + 0x8000, 5) == b"mover"
    assert wire.read(base, 4)[1] & DECODE_ERROR
    assert wire.region(r).addr == base + 0x8000


def test_set_address_makes_the_region_newest_among_equals(wire, base):
    """A moved region becomes the newest at its priority, so it wins ties after moving back."""
    a, b = uid("a"), uid("b")
    wire.apply(
        create(a, pb.RAM, 0x10, contents=b"A" * 16),
        create(b, pb.RAM, 0x10, contents=b"B" * 16),
        add("system", a, base),
        add("system", b, base),
    )
    assert wire.data(base, 16) == b"B" * 16
    wire.apply(set_address(a, base + 0x100), set_address(a, base))
    assert wire.data(base, 16) == b"A" * 16


def test_set_priority_changes_which_region_wins(wire, base):
    """set_priority: lowering the winner's priority lets the other region show."""
    a, b = uid("a"), uid("b")
    wire.apply(
        create(a, pb.RAM, 0x10, contents=b"A" * 16),
        create(b, pb.RAM, 0x10, contents=b"B" * 16),
        add("system", a, base, priority=2),
        add("system", b, base, priority=1),
    )
    wire.apply(set_priority(a, 0))
    assert wire.data(base, 16) == b"B" * 16
    assert wire.range_at(base).region == b
    assert wire.region(a).priority == 0


def test_set_priority_reorders_the_subregion_list(wire, base):
    """set_priority moves the region in its container's subregion list."""
    c, a, b = uid("c"), uid("a"), uid("b")
    wire.apply(
        create(c, pb.CONTAINER, 0x1000),
        create(a, pb.RAM, 0x10),
        create(b, pb.RAM, 0x10),
        add(c, a, 0, priority=2),
        add(c, b, 0x100, priority=1),
        add("system", c, base),
    )
    assert list(wire.region(c).subregions) == [a, b]
    wire.apply(set_priority(b, 3))
    assert list(wire.region(c).subregions) == [b, a]


def test_set_enabled_false_hides_a_region(wire, base):
    """A disabled region answers nothing and hides nothing."""
    under, over = uid("under"), uid("over")
    wire.apply(
        create(under, pb.RAM, 0x10, contents=b"U" * 16),
        create(over, pb.RAM, 0x10, contents=b"O" * 16),
        add("system", under, base),
        add("system", over, base, priority=1),
    )
    wire.apply(set_enabled(over, False))
    assert wire.data(base, 16) == b"U" * 16
    assert not wire.region(over).enabled


def test_set_enabled_true_shows_a_disabled_region(wire):
    """Enabling the machine's disabled `spare` RAM makes its range answer."""
    addr = wire.region("spare").addr
    assert wire.read(addr, 4)[1] & DECODE_ERROR
    try:
        wire.apply(set_enabled("spare", True))
        assert wire.read(addr, 4)[1] == OK
        assert wire.range_at(addr).region == "spare"
    finally:
        wire.apply(set_enabled("spare", False))


def test_disabled_region_prints_only_with_mtree_disabled(wire, base):
    """Mtree shows a disabled region only with `disabled` (-D), marked [disabled]."""
    r = uid("off")
    wire.apply(create(r, pb.RAM, 0x10), add("system", r, base), set_enabled(r, False))
    assert not mtree_lines_for(wire.mtree(), r)
    lines = [line for line in wire.mtree(disabled=True).splitlines() if f"): {r} " in line]
    assert len(lines) == 1
    assert lines[0].endswith("[disabled]")


# -- set_alias_offset / set_size -------------------------------------------------------------


def test_set_alias_offset_slides_the_window(wire, base):
    """set_alias_offset: the alias shows the target from the new offset."""
    target, alias = uid("t"), uid("a")
    contents = bytes(range(256))
    wire.apply(
        create(target, pb.RAM, 0x100, contents=contents),
        create(alias, pb.ALIAS, 0x10, target=target, offset=0),
        add("system", alias, base),
    )
    wire.apply(set_alias_offset(alias, 0x30))
    assert wire.data(base, 0x10) == contents[0x30:0x40]
    assert wire.range_at(base).offset == 0x30
    assert wire.region(alias).offset == 0x30


def test_set_alias_offset_shows_in_mtree(wire, base):
    """The alias line of `info mtree` shows the new window into the target."""
    target, alias = uid("t"), uid("a")
    wire.apply(
        create(target, pb.RAM, 0x100),
        create(alias, pb.ALIAS, 0x10, target=target),
        add("system", alias, base),
        set_alias_offset(alias, 0x40),
    )
    [line] = [x for x in wire.mtree().splitlines() if f"alias {alias} @{target} " in x]
    assert line.endswith(f"{0x40:016x}-{0x4F:016x}")


def test_set_size_growing_ram_keeps_contents_and_adds_zeros(wire, base):
    """set_size: RAM grows with its contents kept and zeros after them."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x10, contents=b"A" * 16), add("system", r, base))
    wire.apply(set_size(r, 0x20))
    assert wire.data(base, 0x20) == b"A" * 16 + bytes(16)
    assert wire.region(r).size == 0x20
    assert wire.range_at(base).size == 0x20


def test_set_size_shrinking_ram_drops_the_tail(wire, base):
    """set_size: a shrunk RAM no longer decodes its old tail, and regrowing brings zeros back."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x20, contents=b"B" * 32), add("system", r, base))
    wire.apply(set_size(r, 0x10))
    assert wire.read(base + 0x10, 4)[1] & DECODE_ERROR
    wire.apply(set_size(r, 0x20))
    assert wire.data(base, 0x20) == b"B" * 16 + bytes(16)


def test_set_size_max_u64_means_two_to_the_64(wire):
    """Size 0xffffffffffffffff is 2**64: the region then spans the whole address space."""
    r, space = uid("huge"), uid("as")
    wire.apply(create(r, pb.CONTAINER, 0x1000), create_space(space, r))
    wire.apply(set_size(r, MASK64))
    assert wire.region(r).size == MASK64
    tree = wire.mtree().splitlines()
    root_line = tree[tree.index(f"address-space: {space}") + 1]
    assert root_line == f"  {0:016x}-{MASK64:016x} (prio 0, i/o): {r}"


# -- set_readonly / set_romd -----------------------------------------------------------------


def test_set_readonly_ram_refuses_writes(wire, base):
    """set_readonly on a RAM region: writes fail with DECODE_ERROR and change nothing."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x10, contents=b"fixed"), add("system", r, base))
    wire.apply(set_readonly(r, True))
    assert wire.write(base, b"XXXXX") & DECODE_ERROR
    assert wire.data(base, 5) == b"fixed"
    assert wire.range_at(base).readonly


def test_clearing_readonly_makes_ram_writable_again(wire, base):
    """set_readonly false: the RAM accepts writes again."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x10, readonly=True), add("system", r, base))
    wire.apply(set_readonly(r, False))
    assert wire.write(base, b"ok") == OK
    assert wire.data(base, 2) == b"ok"


def test_set_readonly_on_a_container_flags_ranges_below_as_rom(wire, base):
    """A readonly container makes the flat ranges below it readonly (printed rom)."""
    c, child = uid("c"), uid()
    wire.apply(
        create(c, pb.CONTAINER, 0x1000),
        create(child, pb.RAM, 0x10),
        add(c, child, 0),
        add("system", c, base),
    )
    assert not wire.range_at(base).readonly
    wire.apply(set_readonly(c, True))
    assert wire.range_at(base).readonly
    [line] = mtree_lines_for(wire.mtree(flat=True), child)
    assert ", rom): " in line


def test_set_romd_false_sends_reads_to_the_device(wire, base):
    """set_romd false: reads stop coming from the contents (MMIO mode)."""
    r = uid("romd")
    wire.apply(create(r, pb.ROMD, 0x10, contents=b"\xaa" * 16), add("system", r, base))
    wire.apply(set_romd(r, False))
    assert wire.read(base, 4)[0] != b"\xaa" * 4
    assert not wire.region(r).romd_mode
    wire.apply(set_romd(r, True))
    assert wire.data(base, 4) == b"\xaa" * 4


def test_set_romd_changes_the_printed_type(wire, base):
    """`info mtree -f` prints a romd region as romd in ROMD mode and as i/o otherwise."""
    r = uid("romd")
    wire.apply(create(r, pb.ROMD, 0x10), add("system", r, base))
    [line] = mtree_lines_for(wire.mtree(flat=True), r)
    assert ", romd): " in line
    wire.apply(set_romd(r, False))
    [line] = mtree_lines_for(wire.mtree(flat=True), r)
    assert ", i/o): " in line


# -- create_address_space --------------------------------------------------------------------


def test_created_address_space_reads_its_root(wire):
    """create_address_space over a region: address 0 of the new space is the region's byte 0."""
    r, space = uid(), uid("as")
    wire.apply(create(r, pb.RAM, 0x100, contents=b"own view"), create_space(space, r))
    assert wire.data(0, 8, space) == b"own view"


def test_created_address_space_shares_memory_with_the_system_view(wire, base):
    """A space rooted at a mapped region sees the bytes written through the system space (QEMU
    renders a root at its own addr, so the region shows at `base` there too)."""
    r, space = uid(), uid("as")
    wire.apply(create(r, pb.RAM, 0x100), add("system", r, base), create_space(space, r))
    [fr] = wire.flat(space)
    assert (fr.region, fr.start, fr.size) == (r, base, 0x100)
    wire.write(base + 0x20, b"both", space="memory")
    assert wire.data(fr.start + 0x20, 4, space) == b"both"


def test_created_address_space_is_in_topology_and_mtree(wire):
    """The new space is listed (id, name, root, flat view) by GetTopology and printed by Mtree."""
    r, space = uid(), uid("as")
    name = f"{space}-name"
    wire.apply(create(r, pb.RAM, 0x100), create_space(space, r, name=name))
    topo = wire.topology()
    [entry] = [s for s in topo.address_spaces if s.id == space]
    assert (entry.name, entry.root) == (name, r)
    assert [(fr.region, fr.start, fr.size) for fr in entry.flat_view] == [(r, 0, 0x100)]
    assert topo.address_spaces[-1].id == space
    assert f"address-space: {name}\n" in wire.mtree()
    assert f'AS "{name}", root: {r}' in wire.mtree(flat=True)


def test_created_address_space_name_defaults_to_its_id(wire):
    """Without a name, the space is printed under its id."""
    r, space = uid(), uid("as")
    wire.apply(create(r, pb.RAM, 0x10), create_space(space, r))
    assert f"address-space: {space}\n" in wire.mtree()


# -- flat views and mtree --------------------------------------------------------------------

_FLAT_LINE = re.compile(
    r"^  ([0-9a-f]{16})-([0-9a-f]{16}) \(prio -?\d+, ([^)]*)\): (\S+)(?: @([0-9a-f]{16}))?$"
)


def _flat_block(text: str, space_name: str) -> list[tuple[int, int, str, str, int]]:
    """(start, last, type, region name, offset) of the FlatView block that lists the space."""
    for block in text.split("FlatView #")[1:]:
        lines = block.splitlines()
        if f' AS "{space_name}", root:' not in "\n".join(lines):
            continue
        out = []
        for line in lines:
            m = _FLAT_LINE.match(line)
            if m:
                out.append((int(m[1], 16), int(m[2], 16), m[3], m[4], int(m[5] or "0", 16)))
        return out
    raise AssertionError(f"no FlatView block for {space_name!r}")


@pytest.mark.parametrize("space", ["memory", "io"])
def test_flat_view_agrees_with_mtree_f(wire, space):
    """GetTopology's flat view has the ranges, regions and offsets that `info mtree -f` prints."""
    topo = wire.topology()
    names = {r.id: r.name for r in topo.regions}
    entry = next(s for s in topo.address_spaces if s.id == space)
    structured = [
        (fr.start, (fr.start + fr.size - 1) & MASK64, names[fr.region], fr.offset, fr.readonly)
        for fr in entry.flat_view
    ]
    printed = [
        (start, last, name, offset, kind.removeprefix("nv-") == "rom")
        for start, last, kind, name, offset in _flat_block(wire.mtree(flat=True), entry.name)
    ]
    assert structured
    assert structured == printed


@pytest.mark.parametrize(
    ("flat", "disabled"), [(False, False), (False, True), (True, False), (True, True)]
)
def test_mtree_equals_local_mtree_of_the_machine_file(
    pristine_server, machine_file, flat, disabled
):
    """Mtree of a server equals `mmiobus mtree [-f] [-D] FILE` run locally on its machine file."""
    w = Wire(pristine_server.tcp)
    try:
        assert w.mtree(flat, disabled) == local_mtree(machine_file, flat, disabled)
    finally:
        w.close()


@pytest.fixture(scope="module")
def rebuilt_server(machine_server: ServerFactory, machine_file) -> ServerProcess:
    """A server on the base machine, reshaped by REBUILD_OPS in one transaction."""
    srv = machine_server(machine_file)
    w = Wire(srv.tcp)
    w.apply(*REBUILD_OPS)
    w.close()
    return srv


@pytest.mark.parametrize(
    ("flat", "disabled"), [(False, False), (False, True), (True, False), (True, True)]
)
def test_mtree_after_apply_equals_local_mtree_of_the_equivalent_file(
    rebuilt_server, tmp_path, flat, disabled
):
    """After ApplyTopology, Mtree equals local `mmiobus mtree` of a file describing the result."""
    path = tmp_path / "rebuilt.yaml"
    path.write_text(REBUILT)
    w = Wire(rebuilt_server.tcp)
    try:
        assert w.mtree(flat, disabled) == local_mtree(path, flat, disabled)
    finally:
        w.close()


def test_get_topology_omits_flat_views_unless_asked(wire):
    """GetTopology(flat_views=False) lists the spaces without their flat views."""
    topo = wire.stub.GetTopology(pb.GetTopologyRequest(flat_views=False), timeout=30)
    assert topo.address_spaces
    assert all(not s.flat_view for s in topo.address_spaces)
    assert any(s.flat_view for s in wire.topology().address_spaces)


def test_empty_transaction_changes_nothing(wire):
    """ApplyTopology with no ops applies 0 ops and leaves the generation as it was."""
    before = wire.topology()
    reply = wire.apply()
    assert (reply.applied, reply.generation) == (0, before.generation)
    assert wire.topology() == before


def test_apply_reports_ops_applied_and_the_new_generation(wire, base):
    """ApplyTopology answers how many ops it applied and the generation GetTopology reports."""
    before = wire.topology().generation
    r = uid()
    reply = wire.apply(create(r, pb.RAM, 0x10), add("system", r, base))
    assert reply.applied == 2
    assert reply.generation == wire.topology().generation
    assert reply.generation > before


def test_accesses_from_another_connection_see_the_new_topology_at_once(topo_server, wire, base):
    """Right after ApplyTopology returns, an access on another connection uses the new map."""
    r = uid()
    other = Wire(topo_server.unix)
    try:
        assert other.read(base, 4)[1] & DECODE_ERROR
        wire.apply(create(r, pb.RAM, 0x10, contents=b"now!"), add("system", r, base))
        assert other.data(base, 4) == b"now!"
        wire.apply(set_address(r, base + 0x100))
        assert other.data(base + 0x100, 4) == b"now!"
    finally:
        other.close()


FLAG_CHANGES: dict[str, Callable[[str, int], list[list[pb.TopologyOp]]]] = {
    "set_enabled": lambda r, a: [[set_enabled(r, False)], [set_enabled(r, True)]],
    "set_readonly": lambda r, a: [[set_readonly(r, True)], [set_readonly(r, False)]],
    "set_priority": lambda r, a: [[set_priority(r, 7)]],
    "set_address": lambda r, a: [[set_address(r, a + 0x1000)], [set_address(r, a)]],
    "remove_and_add": lambda r, a: [[remove(r)], [add("system", r, a)]],
    "set_size_grow": lambda r, a: [[set_size(r, 0x200)]],
}


@pytest.mark.parametrize("change", sorted(FLAG_CHANGES))
def test_changing_only_flags_keeps_ram_contents(wire, base, change):
    """Ops that change flags or placement keep what was written to the RAM."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x100), add("system", r, base))
    pattern = bytes((i * 7 + 1) & 0xFF for i in range(0x100))
    assert wire.write(base, pattern) == OK
    for ops in FLAG_CHANGES[change](r, base):
        wire.apply(*ops)
    assert wire.data(base, 0x100) == pattern


# -- all or nothing --------------------------------------------------------------------------


def test_transaction_failing_half_way_applies_nothing(wire, base):
    """Op 3 of 5 names a missing region: reads, GetTopology and Mtree are as before."""
    made, other = uid("made"), uid("other")
    wire.apply(create(other, pb.RAM, 0x10, contents=b"before"), add("system", other, base + 0x100))
    probes = [base, base + 0x100, wire.region("window").addr, 0]
    before = snapshot(wire, probes)
    error = wire.apply_error(
        create(made, pb.RAM, 0x10, contents=b"ghost"),
        add("system", made, base),
        set_address(other, base + 0x200),
        add("system", uid("missing"), base + 0x300),
        set_enabled("window", False),
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert snapshot(wire, probes) == before


def test_regions_created_by_a_failed_transaction_do_not_exist(wire, base):
    """A region created by an op before the failing one is gone: its id is free again."""
    made = uid("made")
    wire.apply_error(
        create(made, pb.RAM, 0x10),
        add("system", made, base),
        set_enabled(made, False),
        set_priority(uid("missing"), 1),
    )
    assert wire.region(made) is None
    wire.apply(create(made, pb.RAM, 0x10, contents=b"fresh"), add("system", made, base))
    assert wire.data(base, 5) == b"fresh"


def test_address_space_created_by_a_failed_transaction_does_not_exist(wire):
    """create_address_space before the failing op leaves no address space behind."""
    r, space = uid(), uid("as")
    wire.apply(create(r, pb.RAM, 0x10))
    wire.apply_error(create_space(space, r), delete(uid("missing")))
    assert space not in [s.id for s in wire.topology().address_spaces]
    with pytest.raises(grpc.RpcError) as info:
        wire.read(0, 4, space)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_failed_transaction_keeps_ram_contents_of_resized_regions(wire, base):
    """set_size before the failing op is undone with the RAM's bytes intact."""
    r = uid()
    wire.apply(create(r, pb.RAM, 0x20, contents=b"C" * 32), add("system", r, base))
    wire.apply_error(set_size(r, 0x8), set_size(r, 0x40), remove(uid("missing")))
    assert wire.data(base, 0x20) == b"C" * 32
    assert wire.region(r).size == 0x20


def test_failed_transaction_that_deleted_a_region_leaves_topology_unchanged(wire, base):
    """delete_region before the failing op: GetTopology (incl. region order) is unchanged."""
    first, second = uid("first"), uid("second")
    wire.apply(
        create(first, pb.RAM, 0x10),
        create(second, pb.RAM, 0x10),
        add("system", first, base),
        add("system", second, base + 0x100),
    )
    before = snapshot(wire, [base, base + 0x100])
    wire.apply_error(delete(first), add("system", uid("missing"), base + 0x200))
    assert snapshot(wire, [base, base + 0x100]) == before


# -- errors ----------------------------------------------------------------------------------


@dataclass
class Case:
    ops: Callable[[int], list[pb.TopologyOp]]  # given a free address
    code: grpc.StatusCode
    names: Callable[[list[pb.TopologyOp]], list[str]]  # what the message must mention


def _r(ops: list[pb.TopologyOp], i: int) -> str:
    """The region id the i-th op refers to."""
    op = ops[i]
    o = getattr(op, op.WhichOneof("op"))
    for field in ("id", "child", "target", "root"):
        if getattr(o, field, ""):
            return getattr(o, field)
    raise AssertionError(op)


def _fresh(a: int) -> tuple[str, list[pb.TopologyOp]]:
    """A prefix of two good ops (create a RAM and map it at `a`); returns its id and the ops."""
    r = uid("ok")
    return r, [create(r, pb.RAM, 0x10), add("system", r, a)]


def _with_prefix(bad: Callable[[str, int], pb.TopologyOp]) -> Callable[[int], list[pb.TopologyOp]]:
    def build(a: int) -> list[pb.TopologyOp]:
        r, ops = _fresh(a)
        return [*ops, bad(r, a)]

    return build


ERROR_CASES = {
    # NOT_FOUND: a name that does not exist.
    "add_missing_child": Case(
        _with_prefix(lambda r, a: add("system", uid("nope"), a + 0x100)),
        grpc.StatusCode.NOT_FOUND,
        lambda ops: ["add_subregion", _r(ops, 2)],
    ),
    "add_into_missing_parent": Case(
        _with_prefix(lambda r, a: add(uid("noparent"), r, 0)),
        grpc.StatusCode.NOT_FOUND,
        lambda ops: ["add_subregion", ops[2].add_subregion.parent],
    ),
    "set_address_of_missing": Case(
        _with_prefix(lambda r, a: set_address(uid("nope"), a)),
        grpc.StatusCode.NOT_FOUND,
        lambda ops: ["set_address", _r(ops, 2)],
    ),
    "alias_of_missing_target": Case(
        _with_prefix(lambda r, a: create(uid("a"), pb.ALIAS, 0x10, target=uid("nothere"))),
        grpc.StatusCode.NOT_FOUND,
        lambda ops: ["create_region", "target", ops[2].create_region.target],
    ),
    "delete_missing": Case(
        _with_prefix(lambda r, a: delete(uid("nope"))),
        grpc.StatusCode.NOT_FOUND,
        lambda ops: ["delete_region", _r(ops, 2)],
    ),
    "space_over_missing_root": Case(
        _with_prefix(lambda r, a: create_space(uid("as"), uid("noroot"))),
        grpc.StatusCode.NOT_FOUND,
        lambda ops: ["create_address_space", ops[2].create_address_space.root],
    ),
    # ALREADY_EXISTS: a second thing with the same id.
    "create_existing_region": Case(
        _with_prefix(lambda r, a: create(r, pb.RAM, 0x10)),
        grpc.StatusCode.ALREADY_EXISTS,
        lambda ops: ["create_region", _r(ops, 2)],
    ),
    "create_existing_space": Case(
        _with_prefix(lambda r, a: create_space("io", r)),
        grpc.StatusCode.ALREADY_EXISTS,
        lambda ops: ["create_address_space", "io"],
    ),
    # FAILED_PRECONDITION: the state forbids it.
    "map_region_twice": Case(
        _with_prefix(lambda r, a: add("system", r, a + 0x100)),
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda ops: ["add_subregion", _r(ops, 2), "already mapped"],
    ),
    "delete_address_space_root": Case(
        _with_prefix(lambda r, a: delete("ioport")),
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda ops: ["delete_region", "ioport", "root"],
    ),
    "delete_alias_target": Case(
        _with_prefix(lambda r, a: delete("highmem")),
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda ops: ["delete_region", "highmem", "window"],
    ),
    "remove_unmapped": Case(
        lambda a: [create(r := uid("um"), pb.RAM, 0x10), set_priority(r, 1), remove(r)],
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda ops: ["remove_subregion", _r(ops, 2)],
    ),
    "map_inside_itself": Case(
        lambda a: [create(c := uid("c"), pb.CONTAINER, 0x100), set_priority(c, 1), add(c, c, 0)],
        grpc.StatusCode.FAILED_PRECONDITION,
        lambda ops: ["add_subregion", _r(ops, 2)],
    ),
    # INVALID_ARGUMENT: the op itself is malformed.
    "empty_op": Case(
        _with_prefix(lambda r, a: pb.TopologyOp()),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["empty"],
    ),
    "missing_kind": Case(
        _with_prefix(lambda r, a: create(uid("k"), pb.REGION_KIND_UNSPECIFIED, 0x10)),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_region", "kind"],
    ),
    "missing_id": Case(
        _with_prefix(lambda r, a: create("", pb.RAM, 0x10)),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_region", "id"],
    ),
    "access_size_3": Case(
        _with_prefix(lambda r, a: create(uid("m"), pb.MMIO, 0x10, valid=pb.AccessSpec(min=3))),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_region", "valid.min"],
    ),
    "impl_access_size_16": Case(
        _with_prefix(lambda r, a: create(uid("m"), pb.MMIO, 0x10, impl=pb.AccessSpec(max=16))),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_region", "impl.max"],
    ),
    "access_min_above_max": Case(
        _with_prefix(
            lambda r, a: create(uid("m"), pb.MMIO, 0x10, valid=pb.AccessSpec(min=4, max=2))
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_region", "valid", "min", "max"],
    ),
    "contents_larger_than_region": Case(
        _with_prefix(lambda r, a: create(uid("big"), pb.RAM, 4, contents=b"12345")),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_region", "contents", "5"],
    ),
    "contents_on_mmio": Case(
        _with_prefix(lambda r, a: create(uid("m"), pb.MMIO, 0x10, contents=b"x")),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_region", "contents"],
    ),
    "target_on_ram": Case(
        _with_prefix(lambda r, a: create(uid("t"), pb.RAM, 0x10, target=r)),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_region", "target"],
    ),
    "access_sizes_on_ram": Case(
        _with_prefix(lambda r, a: create(uid("t"), pb.RAM, 0x10, valid=pb.AccessSpec(max=4))),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_region", "valid"],
    ),
    "endianness_on_ram": Case(
        _with_prefix(lambda r, a: create(uid("t"), pb.RAM, 0x10, endianness=pb.BIG)),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_region", "endianness"],
    ),
    "unassigned_on_ram": Case(
        _with_prefix(lambda r, a: create(uid("t"), pb.RAM, 0x10, unassigned=pb.UNASSIGNED_IO)),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_region", "unassigned"],
    ),
    "alias_offset_of_ram": Case(
        _with_prefix(lambda r, a: set_alias_offset(r, 4)),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["set_alias_offset", _r(ops, 2), "not an alias"],
    ),
    "romd_mode_of_ram": Case(
        _with_prefix(lambda r, a: set_romd(r, False)),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["set_romd", _r(ops, 2)],
    ),
    "space_without_id": Case(
        _with_prefix(lambda r, a: create_space("", r)),
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda ops: ["create_address_space", "id"],
    ),
}

_XFAIL_CASES: dict[str, str] = {}


def _error_params():
    for name in sorted(ERROR_CASES):
        marks = []
        if name in _XFAIL_CASES:
            marks = [pytest.mark.xfail(reason=_XFAIL_CASES[name], strict=True)]
        yield pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("case", list(_error_params()))
def test_failing_op_gets_the_right_status_and_a_message_naming_it(wire, base, case):
    """Each kind of bad op: its status code, and a message naming the op's index, its
    operation and the offending field or value."""
    spec = ERROR_CASES[case]
    ops = spec.ops(base)
    error = wire.apply_error(*ops)
    assert error.code() == spec.code, error.details()
    details = error.details()
    assert details.startswith(f"ops[{len(ops) - 1}]"), details
    for word in spec.names(ops):
        assert word in details, (word, details)


@pytest.mark.parametrize("case", ["map_region_twice", "access_size_3", "delete_alias_target"])
def test_good_ops_before_a_rejected_op_are_not_applied(wire, base, case):
    """The region the first two ops created and mapped does not exist after the error."""
    ops = ERROR_CASES[case].ops(base)
    wire.apply_error(*ops)
    assert wire.region(ops[0].create_region.id) is None
    assert wire.read(base, 4)[1] & DECODE_ERROR


def test_bad_access_size_message_names_the_value(wire):
    """The INVALID_ARGUMENT message for an access size of 3 says 3."""
    error = wire.apply_error(create(uid("m"), pb.MMIO, 0x10, valid=pb.AccessSpec(min=3)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "3" in error.details().replace("ops[0]", "")


def test_priority_outside_int32_cannot_be_sent():
    """Priorities are signed 32-bit: the wire type itself refuses 2**31."""
    with pytest.raises(ValueError):
        pb.SetPriority(id="x", priority=1 << 31)


# -- limits ----------------------------------------------------------------------------------


def test_more_ops_than_the_limit_is_resource_exhausted_naming_the_option(limited_server):
    """More ops than --max-topology-ops: RESOURCE_EXHAUSTED naming the option, the count and limit."""
    w = Wire(limited_server.tcp)
    try:
        ids = [uid() for _ in range(4)]
        error = w.apply_error(*(create(r, pb.RAM, 0x10) for r in ids))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "--max-topology-ops" in error.details()
        assert "4" in error.details()
        assert "3" in error.details()
        assert all(w.region(r) is None for r in ids)
    finally:
        w.close()


def test_as_many_ops_as_the_limit_are_applied(limited_server):
    """Exactly --max-topology-ops ops are accepted."""
    w = Wire(limited_server.tcp)
    try:
        limit = w.stub.GetInfo(pb.GetInfoRequest(), timeout=30).limits.max_topology_ops
        ids = [uid() for _ in range(limit)]
        assert w.apply(*(create(r, pb.RAM, 0x10) for r in ids)).applied == limit
        assert all(w.region(r) is not None for r in ids)
    finally:
        w.close()


# -- topologies that would take forever to render ---------------------------------------------


def test_aliases_looping_through_each_other_do_not_stall_the_bus(server):
    """Two aliases of a container mapped inside it, each shifting it a little, would multiply
    the render paths beyond counting. ApplyTopology answers at once, refusing the transaction
    (its render would take more work than a commit may) with nothing applied, and the rest of
    the bus keeps serving."""
    w = Wire(server.tcp)
    try:
        size = 1 << 40
        error = w.apply_error(
            create("loop", pb.CONTAINER, size),
            create("loop.ram", pb.RAM, 0x10, contents=b"\x2a"),
            add("loop", "loop.ram", 0),
            create("loop.a", pb.ALIAS, size - 1, target="loop"),
            create("loop.b", pb.ALIAS, size - 2, target="loop"),
            add("loop", "loop.a", 1),
            add("loop", "loop.b", 2),
            create_space("loopy", "loop"),
        )
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "render work" in error.details() and "nothing was applied" in error.details()
        assert w.region("loop") is None
        assert "loopy" not in [s.id for s in w.topology().address_spaces]
        w.write(0x1000, b"\x01\x02")
        assert w.data(0x1000, 2) == b"\x01\x02"
    finally:
        w.close()
