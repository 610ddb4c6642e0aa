"""WatchTopology end to end: the snapshot, one message per committed transaction that changes
the watched address space (QEMU memory-listener semantics), silence for the others, device
processes registering and unmapping regions, errors, several watchers.

One server for the module; each test maps its own regions at addresses no other test uses and
removes them at the end. Every expectation comes from GetTopology: a message's region_del and
region_add changes, applied to the flat view before the transaction, must give the flat view
after it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import grpc
import pytest
from mmiobus.client import NotFound
from mmiobus.client.topology import Transaction
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from support.devices import start_device
from support.flat_views import apply_changes, flat_key, flat_view
from support.machines import machine_yaml
from support.models import SCRATCH
from support.rig import Rig, RigFactory
from support.servers import ServerFactory
from support.topology_watch import Watch
from support.wait import TIMEOUT, wait_for

RAM_SIZE = 16 << 20
IO_SPACE = "io"
HOLES = itertools.count(0x40000000, 0x100000)  # 1 MiB of unmapped address space per use
IO_HOLES = itertools.count(0x10000, 0x10000)  # the same in the io address space
RAM_MIDDLES = itertools.count(0x200000, 0x100000)  # places in the middle of RAM
NAMES = (f"w{i}" for i in itertools.count())


@pytest.fixture(scope="module")
def rig(machine_rig: RigFactory) -> Rig:
    io = [{"name": "io-ram", "kind": "ram", "addr": 0, "size": 0x1000}]
    ram = {"name": "ram", "kind": "ram", "addr": 0, "size": RAM_SIZE}
    return machine_rig(machine_yaml([ram], [(IO_SPACE, io)]), [], "--log-format", "json")


def apply(rig: Rig, build: Callable[[Transaction], object]) -> pb.ApplyTopologyResponse:
    """Apply one transaction; its reply (with the generation after it)."""
    with rig.bus.transaction() as t:
        build(t)
    assert t.reply is not None
    return t.reply


def ram(t: Transaction, name: str, size: int, parent: str, addr: int, priority: int = 0) -> None:
    t.create_region(name, "ram", size)
    t.add_subregion(parent, name, addr, priority)


def drop(rig: Rig, *names: str) -> None:
    """Unmap and delete the regions a test created (those that exist)."""
    regions = {r.id: r for r in rig.bus.topology(flat_views=False).regions}
    present = [n for n in names if n in regions]

    def build(t: Transaction) -> None:
        for name in present:
            if regions[name].container:
                t.remove_subregion(name)
        for name in present:
            t.delete_region(name)

    if present:
        apply(rig, build)


def follow(w: Watch, seen: int, view: list, target: list) -> tuple[list, int]:
    """Apply ``w``'s messages after the first ``seen`` to ``view`` until it is ``target``;
    returns (those messages, how many messages ``w`` has had)."""
    new = []
    while view != target:
        messages = w.wait(seen + 1)
        for message in messages[seen:]:
            view = apply_changes(view, message)
            new.append(message)
        seen = len(messages)
    return new, seen


def marker(rig: Rig, space: str = "") -> pb.ApplyTopologyResponse:
    """A transaction that changes ``space`` (map a fresh page, then it stays): every
    transaction before it has been reported once its message arrives."""
    if space == IO_SPACE:
        return apply(rig, lambda t: ram(t, next(NAMES), 0x100, f"{IO_SPACE}-root", next(IO_HOLES)))
    return apply(rig, lambda t: ram(t, next(NAMES), 0x1000, "system", next(HOLES)))


def check_message(message: pb.TopologyChange, before: list, after: list, generation: int) -> None:
    """``message`` is one transaction's non-snapshot change from ``before`` to ``after``:
    region_del of what went away in old address order, then region_add of what appeared in
    new address order, at ``generation``."""
    assert not message.snapshot
    assert message.generation == generation
    dels = [flat_key(c.range) for c in message.changes if not c.add]
    adds = [flat_key(c.range) for c in message.changes if c.add]
    assert [c.add for c in message.changes] == [False] * len(dels) + [True] * len(adds)
    assert dels == [r for r in before if r not in after]
    assert adds == [r for r in after if r not in before]
    assert apply_changes(before, message) == after


# -- the snapshot --------------------------------------------------------------------------------


def test_first_message_is_a_snapshot_of_the_flat_view(rig: Rig):
    """The first message is a snapshot: every range of GetTopology's flat view as an addition,
    in address order, at the current generation."""
    topology = rig.bus.topology()
    with Watch(rig.server, rig.first_space) as w:
        (first,) = w.wait(1)
    assert first.snapshot
    assert all(c.add for c in first.changes)
    assert [flat_key(c.range) for c in first.changes] == flat_view(rig.bus, rig.first_space)
    assert first.generation == topology.generation


def test_empty_address_space_means_the_first_one(rig: Rig):
    """Watching "" watches the machine's first address space."""
    with Watch(rig.server, "") as w:
        (first,) = w.wait(1)
    assert [flat_key(c.range) for c in first.changes] == flat_view(rig.bus, rig.first_space)


def test_snapshot_of_another_address_space_is_its_own_flat_view(rig: Rig):
    """A watcher of the second address space gets that space's flat view."""
    with Watch(rig.server, IO_SPACE) as w:
        (first,) = w.wait(1)
    assert first.snapshot
    assert [flat_key(c.range) for c in first.changes] == flat_view(rig.bus, IO_SPACE)
    assert flat_view(rig.bus, IO_SPACE) != flat_view(rig.bus, rig.first_space)


# -- one message per transaction -----------------------------------------------------------------


def test_mapping_a_region_inside_ram_deletes_it_and_adds_three_pieces(rig: Rig):
    """Mapping a small region over the middle of RAM is one message: region_del of the RAM
    range, then region_add of the RAM on the left, the small region, the RAM on the right;
    applied to the previous flat view it gives GetTopology's new one."""
    small, addr = next(NAMES), next(RAM_MIDDLES)
    with Watch(rig.server, rig.first_space) as w:
        w.wait(1)
        before = flat_view(rig.bus, rig.first_space)
        reply = apply(rig, lambda t: ram(t, small, 0x1000, "system", addr, priority=1))
        after = flat_view(rig.bus, rig.first_space)
        end = marker(rig)
        _, change, last = w.wait(3)
    try:
        check_message(change, before, after, reply.generation)
        assert last.generation == end.generation
        dels = [flat_key(c.range) for c in change.changes if not c.add]
        adds = [flat_key(c.range) for c in change.changes if c.add]
        (big,) = dels
        left, middle, right = adds
        assert [r[2] for r in adds] == [big[2], small, big[2]]  # region ids
        assert left[0] == big[0] and middle[0] == addr == left[0] + left[1]
        assert right[0] == middle[0] + middle[1]
        assert right[0] + right[1] == big[0] + big[1]
    finally:
        drop(rig, small)


# (what the test sets up before watching, the change to watch) for one region named n at a
SCENARIOS: dict[str, tuple[Callable, Callable]] = {
    "map_in_a_hole": (
        lambda t, n, a: t.create_region(n, "ram", 0x2000),
        lambda t, n, a: t.add_subregion("system", n, a),
    ),
    "unmap": (
        lambda t, n, a: ram(t, n, 0x2000, "system", a),
        lambda t, n, a: t.remove_subregion(n),
    ),
    "move": (
        lambda t, n, a: ram(t, n, 0x2000, "system", a),
        lambda t, n, a: t.set_address(n, a + 0x10000),
    ),
    "disable": (
        lambda t, n, a: ram(t, n, 0x2000, "system", a),
        lambda t, n, a: t.set_enabled(n, False),
    ),
    "resize": (
        lambda t, n, a: ram(t, n, 0x2000, "system", a),
        lambda t, n, a: t.set_size(n, 0x3000),
    ),
    "readonly": (
        lambda t, n, a: ram(t, n, 0x2000, "system", a),
        lambda t, n, a: t.set_readonly(n, True),
    ),
    "alias_offset": (
        lambda t, n, a: (
            t.create_region(n, "alias", 0x2000, target="ram", offset=0x1000),
            t.add_subregion("system", n, a),
        ),
        lambda t, n, a: t.set_alias_offset(n, 0x5000),
    ),
    "priority": (
        lambda t, n, a: (
            ram(t, n, 0x2000, "system", a, priority=1),
            ram(t, n + "-under", 0x4000, "system", a, priority=0),
        ),
        lambda t, n, a: t.set_priority(n, -1),
    ),
    "several_operations": (
        lambda t, n, a: ram(t, n, 0x2000, "system", a),
        lambda t, n, a: (
            t.set_address(n, a + 0x8000),
            t.create_region(n + "-b", "ram", 0x1000),
            t.add_subregion("system", n + "-b", a),
            t.set_size(n, 0x1000),
        ),
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_transaction_is_one_message_whose_changes_give_the_new_flat_view(rig: Rig, name: str):
    """Each transaction that changes the watched address space (map, unmap, move, disable,
    resize, readonly, alias offset, priority, several operations at once) yields exactly one
    message: region_del changes in old address order, then region_add changes in new address
    order, that turn the previous flat view into GetTopology's new one."""
    setup, change = SCENARIOS[name]
    region, addr = next(NAMES), next(HOLES)
    apply(rig, lambda t: setup(t, region, addr))
    try:
        with Watch(rig.server, rig.first_space) as w:
            w.wait(1)
            before = flat_view(rig.bus, rig.first_space)
            reply = apply(rig, lambda t: change(t, region, addr))
            after = flat_view(rig.bus, rig.first_space)
            end = marker(rig)
            _, message, last = w.wait(3)
        assert before != after
        check_message(message, before, after, reply.generation)
        assert last.generation == end.generation  # nothing came between the two
    finally:
        drop(rig, region, region + "-under", region + "-b")


def test_transactions_that_leave_the_address_space_alone_send_nothing(rig: Rig):
    """A transaction that changes only another address space, one that changes no flat view
    (a region created but not mapped), one that maps a disabled region, and one whose
    operations cancel out send nothing to this address space's watcher."""
    io_region, unmapped, disabled = next(NAMES), next(NAMES), next(NAMES)
    before = flat_view(rig.bus, rig.first_space)
    with Watch(rig.server, rig.first_space) as w:
        w.wait(1)
        apply(rig, lambda t: ram(t, io_region, 0x100, f"{IO_SPACE}-root", next(IO_HOLES)))
        apply(rig, lambda t: t.create_region(unmapped, "ram", 0x1000))
        apply(
            rig,
            lambda t: (
                t.create_region(disabled, "ram", 0x1000),
                t.set_enabled(disabled, False),
                t.add_subregion("system", disabled, next(HOLES)),
            ),
        )
        apply(rig, lambda t: (t.set_enabled(disabled, True), t.set_enabled(disabled, False)))
        end = marker(rig)
        messages = w.wait(2)
    try:
        assert flat_view(rig.bus, rig.first_space) != before  # the marker did change it
        assert len(messages) == 2
        assert messages[1].generation == end.generation
    finally:
        drop(rig, io_region, disabled, unmapped)


def test_a_failed_transaction_sends_nothing(rig: Rig):
    """A transaction refused part way (an operation on a region that does not exist) applies
    nothing and sends nothing, though its first operation would have changed the view."""
    region = next(NAMES)
    with Watch(rig.server, rig.first_space) as w:
        w.wait(1)
        before = flat_view(rig.bus, rig.first_space)
        with pytest.raises(NotFound):
            apply(
                rig,
                lambda t: (
                    ram(t, region, 0x1000, "system", next(HOLES)),
                    t.set_enabled("no-such-region", False),
                ),
            )
        assert flat_view(rig.bus, rig.first_space) == before
        end = marker(rig)
        messages = w.wait(2)
    assert len(messages) == 2
    assert messages[1].generation == end.generation


def test_a_device_registering_and_unmapping_a_region_shows_as_add_and_del(rig: Rig):
    """A device process that registers a region (--at) shows as region_add of its range;
    when it stops, its region goes away as region_del. Applied to the previous flat view,
    the messages give GetTopology's."""
    name, addr = next(NAMES), next(HOLES)
    with Watch(rig.server, rig.first_space) as w:
        (snapshot,) = w.wait(1)
        original = [flat_key(c.range) for c in snapshot.changes]
        device = start_device(SCRATCH, rig.server.tcp, "--at", hex(addr), name=name)
        try:
            with_device = wait_for(
                lambda: (v := flat_view(rig.bus, rig.first_space)) != original and v
            )
            ids = {r.id for r in rig.bus.topology(flat_views=False).regions if r.device == name}
            added, seen = follow(w, 1, original, with_device)
        finally:
            device.stop()
        without = wait_for(lambda: (v := flat_view(rig.bus, rig.first_space)) != with_device and v)
        removed, _ = follow(w, seen, with_device, without)
    assert ids
    assert all(not m.snapshot and m.changes for m in added + removed)
    assert [c.add for m in added for c in m.changes] == [True] * len(ids)
    assert {c.range.region for m in added for c in m.changes} == ids
    assert all(c.range.start == addr for m in added for c in m.changes)
    assert [c.add for m in removed for c in m.changes] == [False] * len(ids)
    assert without == original


# -- errors and several watchers -----------------------------------------------------------------


def test_unknown_address_space_is_not_found(rig: Rig):
    """Watching an address space that does not exist fails with NOT_FOUND naming it, on the
    wire and through the client."""
    with grpc.insecure_channel(rig.server.tcp) as channel:
        call = bus_pb2_grpc.BusStub(channel).WatchTopology(
            pb.WatchTopologyRequest(address_space="no-such-space"), timeout=TIMEOUT
        )
        with pytest.raises(grpc.RpcError) as failure:
            next(call)
    assert failure.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-space" in failure.value.details()
    with pytest.raises(NotFound, match="no-such-space"):
        next(iter(rig.bus.watch_topology("no-such-space")))


def test_two_watchers_of_different_address_spaces_each_see_their_own(rig: Rig):
    """Watchers of two address spaces each get their own snapshot, a message for each
    transaction that changes their space (one transaction that changes both reaches both,
    at the same generation), and nothing for changes to the other space."""
    mem_region, io_region, both_a, both_b = (next(NAMES) for _ in range(4))
    with Watch(rig.server, rig.first_space) as mem, Watch(rig.server, IO_SPACE) as io:
        mem.wait(1)
        io.wait(1)
        mem_views = [flat_view(rig.bus, rig.first_space)]
        io_views = [flat_view(rig.bus, IO_SPACE)]
        only_io = apply(rig, lambda t: ram(t, io_region, 0x100, f"{IO_SPACE}-root", next(IO_HOLES)))
        io_views.append(flat_view(rig.bus, IO_SPACE))
        only_mem = apply(rig, lambda t: ram(t, mem_region, 0x1000, "system", next(HOLES)))
        mem_views.append(flat_view(rig.bus, rig.first_space))
        both = apply(
            rig,
            lambda t: (
                ram(t, both_a, 0x1000, "system", next(HOLES)),
                ram(t, both_b, 0x100, f"{IO_SPACE}-root", next(IO_HOLES)),
            ),
        )
        mem_views.append(flat_view(rig.bus, rig.first_space))
        io_views.append(flat_view(rig.bus, IO_SPACE))
        end_mem, end_io = marker(rig), marker(rig, IO_SPACE)
        mem_messages, io_messages = mem.wait(4), io.wait(4)
    try:
        assert [flat_key(c.range) for c in mem_messages[0].changes] == mem_views[0]
        assert [flat_key(c.range) for c in io_messages[0].changes] == io_views[0]
        check_message(mem_messages[1], mem_views[0], mem_views[1], only_mem.generation)
        check_message(mem_messages[2], mem_views[1], mem_views[2], both.generation)
        assert mem_messages[3].generation == end_mem.generation
        check_message(io_messages[1], io_views[0], io_views[1], only_io.generation)
        check_message(io_messages[2], io_views[1], io_views[2], both.generation)
        assert io_messages[3].generation == end_io.generation
    finally:
        drop(rig, mem_region, io_region, both_a, both_b)


def test_bus_watch_topology_yields_the_snapshot_then_changes(rig: Rig):
    """Bus.watch_topology() is a blocking iterator: the snapshot, then one message per
    transaction."""
    region = next(NAMES)
    watch = rig.bus.watch_topology(rig.first_space)
    try:
        first = next(watch)
        before = flat_view(rig.bus, rig.first_space)
        reply = apply(rig, lambda t: ram(t, region, 0x1000, "system", next(HOLES)))
        after = flat_view(rig.bus, rig.first_space)
        second = next(watch)
    finally:
        watch.close()
    try:
        assert first.snapshot and [flat_key(c.range) for c in first.changes] == before
        check_message(second, before, after, reply.generation)
    finally:
        drop(rig, region)


def test_a_watcher_far_behind_is_resynchronised_with_a_snapshot(rig: Rig):
    """A watcher that stops reading while thousands of transactions commit is sent a fresh
    snapshot when it reads again; following its messages (a snapshot replaces the view)
    still ends at GetTopology's flat view."""
    region, addr = next(NAMES), next(HOLES)
    apply(rig, lambda t: ram(t, region, 0x1000, "system", addr))
    # A small flow-control window, so that little waits in transit for a reader.
    small_window = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]
    with grpc.insecure_channel(rig.server.tcp, options=small_window) as channel:
        stub = bus_pb2_grpc.BusStub(channel)
        call = stub.WatchTopology(pb.WatchTopologyRequest(address_space=rig.first_space))
        try:
            first = next(call)
            for i in range(1300):  # more than the watcher may have queued (1024) and in transit
                toggle = pb.TopologyOp(set_enabled=pb.SetEnabled(id=region, enabled=i % 2 == 1))
                stub.ApplyTopology(pb.ApplyTopologyRequest(ops=[toggle]), timeout=TIMEOUT)
            end = marker(rig)
            view = [flat_key(c.range) for c in first.changes]
            snapshots = 0
            for message in call:
                if message.snapshot:
                    snapshots += 1
                    view = sorted(flat_key(c.range) for c in message.changes)
                else:
                    view = apply_changes(view, message)
                if message.generation == end.generation:
                    break
        finally:
            call.cancel()
    try:
        assert snapshots >= 1
        assert view == flat_view(rig.bus, rig.first_space)
    finally:
        drop(rig, region)


def test_server_shutdown_ends_topology_watches_cleanly(machine_server: ServerFactory):
    """When the server shuts down, a watcher's stream ends (no error, nothing hangs) and the
    server exits 0."""
    server = machine_server()
    try:
        w = Watch(server, "")
        w.wait(1)
    finally:
        status = server.stop()
    assert status == 0, server.log()
    wait_for(lambda: w.ended, message="the watch stream did not end")
    w.close()
    assert w.error is None, w.error
