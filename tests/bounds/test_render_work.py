"""The work of a commit is bounded (RENDER-14): renders share one budget per transaction, a
transaction whose renders would exceed it is refused with nothing applied, and address spaces
can be deleted — in the memory model, and over the wire (``delete_address_space``)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from mmiobus.client import Bus
from mmiobus.memory import MemorySystem, RenderWorkError, flatview
from mmiobus.memory.access import TWO64
from mmiobus.memory.listener import MemoryListener, MemoryRegionSection
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from support.servers import ServerFactory, ServerProcess


def looping(ms: MemorySystem, name: str) -> object:
    """A container with two aliases of itself inside, each shifting it a little: the render
    paths multiply past counting."""
    root = ms.container(name, TWO64)
    root.add_subregion(0x0, ms.ram(f"{name}.ram", 0x10))
    root.add_subregion(0x1, ms.alias(f"{name}.a", root, 0, TWO64 - 1))
    root.add_subregion(0x2, ms.alias(f"{name}.b", root, 0, TWO64 - 2))
    return root


def test_a_transaction_whose_render_exceeds_the_budget_is_refused_and_undone():
    ms = MemorySystem()
    system = ms.container("system", TWO64)
    memory = ms.address_space("memory", system)
    memory_view = memory.flatview
    with pytest.raises(RenderWorkError) as info, ms.atomic():
        loop = looping(ms, "loop")
        system.add_subregion(0x1000_0000, loop)  # type: ignore[arg-type]
    assert "aliases that loop through each other" in str(info.value)
    assert system.subregions == [] and memory.flatview is memory_view
    assert not ms.over_budget


def mirrors(ms: MemorySystem, name: str, count: int) -> object:
    """A container showing one RAM through ``count`` aliases: finite work through aliases."""
    root = ms.container(name, TWO64)
    ram = ms.ram(f"{name}.ram", 0x10)
    for i in range(count):
        root.add_subregion(i * 0x100, ms.alias(f"{name}.m{i}", ram, 0, 0x10))
    return root


def test_the_renders_of_one_transaction_share_the_budget(monkeypatch: pytest.MonkeyPatch):
    """Address spaces over different roots each render within the alias budget alone, but a
    commit that renders all of them does not: the budget is per commit, not per view."""
    monkeypatch.setattr(flatview, "MAX_ALIAS_WORK", 150)
    ms = MemorySystem()
    roots = [mirrors(ms, f"root{i}", 100) for i in range(2)]
    assert not flatview.render(roots[0]).truncated  # type: ignore[arg-type]
    with pytest.raises(RenderWorkError), ms.atomic():
        for i, root in enumerate(roots):
            ms.address_space(f"as{i}", root)  # type: ignore[arg-type]
    assert ms.address_spaces == []
    ms.address_space("alone", roots[0])  # type: ignore[arg-type]
    assert not ms.address_spaces[0].flatview.truncated


def test_too_many_regions_to_render_are_refused_unless_already_there(
    monkeypatch: pytest.MonkeyPatch,
):
    """Plain regions count too. A machine that is over the bound already (loaded as it is)
    still takes transactions: they cannot make it worse than it is."""
    monkeypatch.setattr(flatview, "MAX_RENDER_WORK", 1000)
    ms = MemorySystem()
    system = ms.container("system", TWO64)
    ms.address_space("memory", system)
    with pytest.raises(RenderWorkError) as info, ms.atomic():
        for i in range(200):
            system.add_subregion(i * 0x1000, ms.mmio(f"m{i}", 0x1000))
    assert "too many regions" in str(info.value) and system.subregions == []
    with ms.transaction():  # not atomic: a description, say, is taken as it is
        for i in range(200):
            system.add_subregion(i * 0x1000, ms.mmio(f"m{i}", 0x1000))
    assert ms.over_budget
    with ms.atomic():
        system.subregions[0].set_enabled(False)


class Recorder(MemoryListener):
    def __init__(self) -> None:
        self.events: list[str] = []

    def region_add(self, section: MemoryRegionSection) -> None:
        self.events.append(f"add {section.mr.name}")

    def region_del(self, section: MemoryRegionSection) -> None:
        self.events.append(f"del {section.mr.name}")


def test_an_address_space_removed_tells_its_listeners_and_drops_them():
    ms = MemorySystem()
    root = ms.container("root", 0x1000)
    root.add_subregion(0, ms.ram("ram", 0x100))
    space = ms.address_space("memory", root)
    listener = Recorder()
    space.register_listener(listener)
    ms.remove_address_space(space)
    assert ms.address_spaces == [] and space.listeners == []
    assert listener.events == ["add ram", "del ram"]
    assert space.read(0, 1).data == b"\0"  # a reference kept elsewhere sees its last view


def test_removing_an_address_space_rolls_back_with_its_transaction():
    ms = MemorySystem()
    root = ms.container("root", 0x1000)
    first, second = ms.address_space("a", root), ms.address_space("b", root)
    listener = Recorder()
    first.register_listener(listener)
    with pytest.raises(KeyError), ms.atomic():
        ms.remove_address_space(first)
        raise KeyError("something later failed")
    assert ms.address_spaces == [first, second] and first.listeners == [listener]


# -- over the wire -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(machine_server: ServerFactory) -> ServerProcess:
    return machine_server()


@pytest.fixture
def bus(server: ServerProcess) -> Iterator[Bus]:
    with Bus(server.tcp) as b:
        yield b


def test_delete_address_space_removes_it_and_ends_its_watchers(server: ServerProcess, bus: Bus):
    bus.apply(
        bus.transaction()
        .create_region("side-root", "container", "64K")
        .create_region("side-ram", "ram", "4K")
        .add_subregion("side-root", "side-ram", 0)
        .create_address_space("side", "side-root")
    )
    bus.write(0x10, b"\x2a", address_space="side")
    with grpc.insecure_channel(server.tcp) as channel:
        watch = bus_pb2_grpc.BusStub(channel).WatchTopology(
            pb.WatchTopologyRequest(address_space="side"), timeout=30
        )
        snapshot = next(watch)
        assert snapshot.snapshot and [c.add for c in snapshot.changes] == [True]
        bus.apply(bus.transaction().delete_address_space("side"))
        gone = next(watch)
        assert [(c.add, c.range.region) for c in gone.changes] == [(False, "side-ram")]
        with pytest.raises(grpc.RpcError) as info:
            next(watch)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "side" not in [s.id for s in bus.topology(flat_views=False).address_spaces]
    with pytest.raises(Exception, match="side"):
        bus.read(0x10, 1, address_space="side")
    # its regions stay, and a new address space can use the id again
    bus.apply(bus.transaction().create_address_space("side", "side-root"))
    assert bus.read(0x10, 1, address_space="side") == b"\x2a"


def test_delete_address_space_of_an_unknown_id_is_not_found(bus: Bus):
    with pytest.raises(Exception, match="no address space with id 'nowhere'"):
        bus.apply(bus.transaction().delete_address_space("nowhere"))
