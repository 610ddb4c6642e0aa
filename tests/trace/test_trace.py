"""The Trace stream end to end: a real server, real device processes (a scratch RAM and a DMA
engine), real gRPC. What an event says about an access, every filter alone and combined,
refused filters, several subscribers, a subscriber that stops reading, subscribers that come
and go, batching, and the client iterators.

One server for the module. Tests run one after another and each works at addresses no other
test uses (the ``spot`` fixture); what a test expects is what it did as a client, with regions
and offsets taken from GetTopology. A test knows it has every event it is owed by making, last,
one more access its filter matches (the marker) and waiting for that.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import pytest
from mmiobus.client import AsyncBus, Bus, MemTxAttrs, Read, Write
from mmiobus.client.tracing import trace_request
from mmiobus.server.trace import KINDS
from mmiobus.v1 import bus_pb2 as pb
from mmiobus.v1 import bus_pb2_grpc
from support.dma_engine import CTRL, DST_HI, DST_LO, LEN, SRC_HI, SRC_LO, START, STATUS, SYNC
from support.flat_views import served_by
from support.machines import machine_yaml, mmio
from support.models import SCRATCH, target
from support.models.tagged_dma import TaggedDmaEngine
from support.rig import Rig, RigFactory
from support.servers import ServerFactory
from support.spots import Spots
from support.trace_stream import (
    Subscription,
    accesses,
    at,
    joined,
    left,
    log_events,
    summary,
    trace_error,
)
from support.wait import TIMEOUT, wait_for
from support.words import u32

TAGGED_DMA = target(TaggedDmaEngine)

RAM_SIZE = 16 << 20
ROM, ROMD = 0x2000000, 0x2100000  # rom0 (rom) and flash0 (romd, its device in the server)
SCRATCH_BASE = 0x10000000  # scratch0: a ScratchRam device process
DMA_BASE = 0x10001000  # dma0: a (tagged) DmaEngine device process
LOCAL_BASE = 0x10002000  # local0: a ScratchRam the server runs itself
LOCAL_DMA_BASE = 0x10003000  # dmal: a (tagged) DmaEngine the server runs itself
ENGINES = {"dma0": DMA_BASE, "dmal": LOCAL_DMA_BASE}  # region id -> registers
HOLE = 0x30000000  # nothing is mapped there
IO_SPACE = "io"  # a second address space: io-ram at 0
MAX_DATA_LIMIT = 2048  # the server's --trace-max-data

BIG_COPY = (0x800000, 0xC00000, 0x100000)  # src, dst, length of a long DMA copy
SPOTS = Spots(0x100000, 0x1000, BIG_COPY[0])  # 4 KiB of RAM per test, below the long copy
SCRATCH_SPOTS = itertools.count(SCRATCH_BASE, 0x40)
ROM_SPOTS = itertools.count(ROM, 0x40)
HOLE_SPOTS = itertools.count(HOLE, 0x40)
IO_SPOTS = itertools.count(0, 0x40)


@pytest.fixture(scope="module")
def rig(machine_rig: RigFactory) -> Rig:
    """The server, a scratch RAM and a (tagged) DMA engine as device processes; ``kinds`` in
    ``rig.extra`` maps region ids to trace kinds (from GetTopology)."""
    subregions = [
        {"name": "ram", "kind": "ram", "addr": 0, "size": RAM_SIZE},
        {"name": "rom0", "kind": "rom", "addr": ROM, "size": 0x1000, "file": "rom.bin"},
        {
            **mmio("flash0", ROMD, 0x1000, {"class": SCRATCH}),
            "kind": "romd",
            "file": "flash.bin",
        },
        mmio("scratch0", SCRATCH_BASE, 0x1000, "scratch0"),
        mmio("dma0", DMA_BASE, 0x20, "dma0", valid=(4, 4), impl=(4, 4)),
        mmio("local0", LOCAL_BASE, 0x1000, {"class": SCRATCH}),
        mmio("dmal", LOCAL_DMA_BASE, 0x20, {"class": TAGGED_DMA}, valid=(4, 4), impl=(4, 4)),
    ]
    io = [{"name": "io-ram", "kind": "ram", "addr": 0, "size": 0x1000}]
    rig = machine_rig(
        machine_yaml(subregions, [(IO_SPACE, io)]),
        [(SCRATCH, "scratch0", []), (TAGGED_DMA, "dma0", [])],
        "--log-format", "json",
        "--trace-max-data", str(MAX_DATA_LIMIT),
        files={
            "rom.bin": bytes(range(256)) * 16,
            "flash.bin": bytes(reversed(range(256))) * 16,
        },
    )  # fmt: skip
    kinds = {}
    for r in rig.bus.topology(flat_views=False).regions:
        kind = pb.RegionKind.Name(r.kind).lower()
        kinds[r.id] = "rom" if kind == "ram" and r.readonly else kind
    rig.extra["kinds"] = kinds
    return rig


# -- accesses, as the client saw them ----------------------------------------------------------


@dataclass(frozen=True)
class Done:
    """One access as the client made it and saw its outcome."""

    space: str
    addr: int
    size: int
    write: bool
    data: bytes
    result: int
    rid: int = 0

    def key(self) -> tuple:
        """Comparable with ``summary(event)``."""
        return (self.space, self.addr, self.size, self.write, self.data, self.result)


def _attrs(rid: int) -> MemTxAttrs | None:
    return MemTxAttrs(requester_id=rid) if rid else None


def wr(rig: Rig, addr: int, data: bytes, rid: int = 0, space: str = "") -> Done:
    """A write with Rw."""
    result = rig.bus.write(addr, data, attrs=_attrs(rid), address_space=space, check=False)
    return Done(space or rig.first_space, addr, len(data), True, data, int(result), rid)


def rd(rig: Rig, addr: int, size: int, rid: int = 0, space: str = "") -> Done:
    """A read with Rw."""
    r = rig.bus.read(addr, size, attrs=_attrs(rid), address_space=space, check=False)
    return Done(space or rig.first_space, addr, size, False, r.data, int(r.result), rid)


def where(rig: Rig, d: Done) -> tuple[str, str]:
    """(region id, kind) that GetTopology says serves ``d``'s first byte."""
    region, _ = served_by(rig.bus, d.space, d.addr)
    return region, rig.extra["kinds"].get(region, "unassigned") if region else "unassigned"


def program_dma(rig: Rig, src: int, dst: int, length: int, base: int = DMA_BASE) -> list[Done]:
    """Set the engine's source, destination and length (client writes)."""
    values = [
        (SRC_LO, src & 0xFFFFFFFF),
        (SRC_HI, src >> 32),
        (DST_LO, dst & 0xFFFFFFFF),
        (DST_HI, dst >> 32),
        (LEN, length),
    ]
    return [wr(rig, base + reg, u32(v)) for reg, v in values]


def copy_sync(rig: Rig, src: int, dst: int, length: int, base: int = DMA_BASE) -> list[Done]:
    """A DMA copy done inside the client's write of START|SYNC; the client's accesses."""
    done = program_dma(rig, src, dst, length, base)
    done.append(wr(rig, base + CTRL, u32(START | SYNC)))
    assert done[-1].result == 0
    return done


def repeat_until_seen(rig: Rig, sub: Subscription, addr: int) -> int:
    """Write ``addr`` (which ``sub``'s filter matches) until ``sub`` has received such an
    access (its filter may sample or drop some); returns how many writes it took."""
    for n in range(1, 1001):
        wr(rig, addr, b"\x03")
        if any(e.addr == addr and not e.lost for e in sub.snapshot()):
            return n
        time.sleep(0.01)
    raise AssertionError(f"no access at {addr:#x} ever reached the subscriber")


# -- what an event says --------------------------------------------------------------------------


def test_events_describe_accesses_as_the_client_made_them(rig: Rig, spot: int):
    """Address space, address, size, direction, data, result, initiator and requester id of
    each event are those of the client's access; RAM accesses report no device latency."""
    with Subscription(rig.server, trace_request(ranges=[(spot, spot + 0x1000)])) as sub:
        done = [
            wr(rig, spot + 8, b"\x01\x02\x03\x04", rid=7),
            rd(rig, spot + 8, 4, rid=7),
            rd(rig, spot + 6, 8, rid=0x1234),
            wr(rig, spot + 0x20, b"\xaa" * 3),
        ]
        events = sub.until(at(wr(rig, spot + 0x800, b"\x00").addr))
    assert [summary(e) for e in events] == [d.key() for d in done]
    assert [(e.initiator, e.requester_id) for e in events] == [("client", d.rid) for d in done]
    assert all(e.latency_ns == 0 for e in events)


def test_events_name_the_region_offset_and_kind_from_the_flat_view(rig: Rig, spot: int):
    """Each event's region, offset and kind are what GetTopology's flat view says serves the
    address: RAM, ROM, a ROM device, MMIO in a device process and in the server, a hole (no
    region), and RAM in a second address space."""
    targets = [
        lambda: rd(rig, spot + 0x10, 4),
        lambda: rd(rig, next(ROM_SPOTS) + 4, 4),
        lambda: rd(rig, ROMD + 0x20, 4),
        lambda: wr(rig, next(SCRATCH_SPOTS), b"\x11\x22"),
        lambda: rd(rig, LOCAL_BASE + 0x10, 4),
        lambda: rd(rig, next(HOLE_SPOTS), 4),
        lambda: wr(rig, next(IO_SPOTS) + 4, b"\x05", space=IO_SPACE),
    ]
    with Subscription(rig.server, trace_request()) as sub:
        done = [t() for t in targets]
        marker = wr(rig, spot + 0x800, b"\x00")
        events = sub.until(at(marker.addr))
    mine = [e for e in events if (e.address_space, e.addr) in {(d.space, d.addr) for d in done}]
    assert [summary(e) for e in mine] == [d.key() for d in done]
    for d, e in zip(done, mine, strict=True):
        region, offset = served_by(rig.bus, d.space, d.addr)
        assert (e.region, e.kind) == (region, where(rig, d)[1]), d
        if region:
            assert e.offset == offset, d
    assert {where(rig, d)[1] for d in done} == set(KINDS)  # every kind was exercised


def test_forwarded_accesses_report_the_device_latency(rig: Rig):
    """Accesses served by a device process report how long they waited (latency_ns > 0)."""
    base = next(SCRATCH_SPOTS)
    with Subscription(rig.server, trace_request(ranges=[(base, base + 0x40)])) as sub:
        done = [wr(rig, base, b"\x12\x34\x56\x78"), rd(rig, base, 4), rd(rig, base + 2, 2)]
        events = sub.until(at(wr(rig, base + 0x20, b"\x00").addr))
    assert [summary(e) for e in events] == [d.key() for d in done]
    assert all(e.kind == "mmio" and e.latency_ns > 0 for e in events)


def test_data_is_cut_to_max_data_bytes_and_marked_truncated(rig: Rig, spot: int):
    """With max_data_bytes N, data longer than N is its first N bytes with data_truncated
    set, and size still says how long the access was; shorter data is whole."""
    big, small = bytes(range(40)), b"\x01\x02\x03\x04\x05\x06\x07\x08"
    request = trace_request(ranges=[(spot, spot + 0x1000)], max_data_bytes=16)
    with Subscription(rig.server, request) as sub:
        done = [wr(rig, spot, big), rd(rig, spot, 40), wr(rig, spot + 0x100, small)]
        events = sub.until(at(wr(rig, spot + 0x800, b"\x00").addr))
    assert [(e.addr, e.size, e.write) for e in events] == [(d.addr, d.size, d.write) for d in done]
    assert [(e.data, e.data_truncated) for e in events] == [
        (big[:16], True),
        (done[1].data[:16], True),
        (small, False),
    ]


def test_default_data_bound_keeps_a_prefix_of_long_data(rig: Rig, spot: int):
    """With no max_data_bytes, a long write's data is a proper prefix, marked truncated."""
    big = bytes(range(256)) * 2
    with Subscription(rig.server, trace_request(ranges=[(spot, spot + 0x1000)])) as sub:
        wr(rig, spot, big)
        (event,) = sub.until(at(wr(rig, spot + 0x800, b"\x00").addr))
    assert event.size == len(big) and event.data_truncated
    assert 0 < len(event.data) < len(big) and big.startswith(event.data)


def test_max_data_bytes_up_to_the_server_limit_keeps_whole_data(rig: Rig, spot: int):
    """max_data_bytes equal to the server's --trace-max-data is accepted and keeps that much."""
    big = bytes(range(256)) * (MAX_DATA_LIMIT // 256)
    request = trace_request(ranges=[(spot, spot + 0x1000)], max_data_bytes=MAX_DATA_LIMIT)
    with Subscription(rig.server, request) as sub:
        wr(rig, spot, big)
        (event,) = sub.until(at(wr(rig, spot + 0xFF0, b"\x00").addr))
    assert (event.data, event.data_truncated) == (big, False)


def test_seq_increases_and_timestamps_follow_the_servers_monotonic_clock(rig: Rig, spot: int):
    """seq strictly increases, timestamps never go back and each lies between the (same host)
    monotonic clock readings taken before and after the access."""
    with Subscription(rig.server, trace_request(ranges=[(spot, spot + 0x1000)])) as sub:
        bounds = []
        for i in range(40):
            before = time.monotonic_ns()
            if i % 2:
                wr(rig, spot + i, bytes([i]))
            else:
                rd(rig, spot + i, 1)
            bounds.append((before, time.monotonic_ns()))
        events = sub.until(at(wr(rig, spot + 0x800, b"\x00").addr))
    seqs = [e.seq for e in events]
    stamps = [e.timestamp_ns for e in events]
    assert all(a < b for a, b in itertools.pairwise(seqs))
    assert all(a <= b for a, b in itertools.pairwise(stamps))
    assert all(lo <= ts <= hi for ts, (lo, hi) in zip(stamps, bounds, strict=True))


@pytest.mark.parametrize("path", ["rw", "batch", "stream"])
def test_accesses_of_every_rpc_are_traced(rig: Rig, spot: int, path: str):
    """Accesses made with Rw, RwBatch and RwStream are all traced, in order, with their
    requester ids, including accesses forwarded to a device and faults."""
    dev = next(SCRATCH_SPOTS)
    hole = next(HOLE_SPOTS)
    plan = [
        Write(spot, b"\x10\x20\x30", attrs=MemTxAttrs(requester_id=3)),
        Read(spot, 3),
        Write(dev, b"\x99\x88\x77\x66", attrs=MemTxAttrs(requester_id=4)),
        Read(dev, 4),
        Read(hole, 2),
        Write(spot + 0x10, b"\x01"),
    ]
    ranges = [(spot, spot + 0x1000), (dev, dev + 0x40), (hole, hole + 0x40)]
    with Subscription(rig.server, trace_request(ranges=ranges)) as sub:
        if path == "rw":
            outcomes = [
                rig.bus.write(a.addr, a.data, attrs=a.attrs, check=False)
                if isinstance(a, Write)
                else rig.bus.read(a.addr, a.size, attrs=a.attrs, check=False)
                for a in plan
            ]
        elif path == "batch":
            outcomes = rig.bus.batch(plan, check=False)
        else:
            with rig.bus.stream() as s:
                futures = [
                    s.write(a.addr, a.data, attrs=a.attrs, check=False)
                    if isinstance(a, Write)
                    else s.read(a.addr, a.size, attrs=a.attrs, check=False)
                    for a in plan
                ]
                outcomes = [f.result(TIMEOUT) for f in futures]
        events = sub.until(at(wr(rig, spot + 0x800, b"\x00").addr))
    expected = []
    for a, out in zip(plan, outcomes, strict=True):
        rid = a.attrs.requester_id if a.attrs else 0
        if isinstance(a, Write):
            expected.append((rig.first_space, a.addr, len(a.data), True, a.data, int(out), rid))
        else:
            expected.append(
                (rig.first_space, a.addr, a.size, False, out.data, int(out.result), rid)
            )
    assert [(*summary(e), e.requester_id) for e in events] == expected
    assert any(e.result for e in events)  # the hole's fault is traced too


def _run_plan(rig: Rig, plan: list, path: str) -> list:
    """Run ``plan`` as one RwBatch or on one RwStream; the outcomes, in order."""
    if path == "batch":
        return rig.bus.batch(plan, check=False)
    with rig.bus.stream() as s:
        futures = [
            s.write(a.addr, a.data, check=False)
            if isinstance(a, Write)
            else s.read(a.addr, a.size, check=False)
            for a in plan
        ]
        return [f.result(TIMEOUT) for f in futures]


@pytest.mark.parametrize("path", ["batch", "stream"])
def test_a_range_filter_keeps_the_accesses_of_a_batch_that_touch_it(rig: Rig, spot: int, path: str):
    """Of batches and stream messages, a subscriber whose only range is a small window gets
    exactly the accesses that touch it: one among many far from it, one that starts below it
    and runs into it, and nothing of a batch that lies wholly elsewhere."""
    window = (spot + 0x100, spot + 0x110)
    far = [Write(spot + 0x800 + i, b"\x01") for i in range(64)]
    plan = [*far[:32], Write(spot + 0x104, b"\xaa"), Read(spot + 0xFE, 4), *far[32:]]
    with Subscription(rig.server, trace_request(ranges=[window])) as sub:
        _run_plan(rig, far, path)
        outcomes = _run_plan(rig, plan, path)
        marker = wr(rig, spot + 0x10F, b"\x00")
        events = sub.until(lambda e: summary(e) == marker.key())
    space = rig.first_space
    written, read = outcomes[32], outcomes[33]
    assert [summary(e) for e in events] == [
        (space, spot + 0x104, 1, True, b"\xaa", int(written)),
        (space, spot + 0xFE, 4, False, read.data, int(read.result)),
    ]


# -- DMA -----------------------------------------------------------------------------------------


def device_of(rig: Rig, region: str) -> str:
    """The name of the device serving ``region``, as GetTopology says."""
    (name,) = [r.device for r in rig.bus.topology(flat_views=False).regions if r.id == region]
    assert name
    return name


@pytest.mark.parametrize("engine", list(ENGINES))
def test_dma_is_traced_with_the_device_as_initiator(rig: Rig, spot: int, engine: str):
    """A DmaEngine copy (the engine in a device process, or in the server) shows as the
    device's DMA read of the source and write of the destination: initiator is the device's
    name, requester id the device's, data the bytes copied."""
    src, dst, payload = spot, spot + 0x400, bytes(range(100, 164))
    with Subscription(rig.server, trace_request(ranges=[(spot, spot + 0x1000)])) as sub:
        wr(rig, src, payload)
        copy_sync(rig, src, dst, len(payload), ENGINES[engine])
        marker = rd(rig, dst, len(payload))
        events = sub.until(at(marker.addr, write=False))
    assert marker.data == payload
    dma = [e for e in events if e.initiator != "client"]
    assert [(e.addr, e.size, e.write, e.data, e.result) for e in dma] == [
        (src, len(payload), False, payload, 0),
        (dst, len(payload), True, payload, 0),
    ]
    assert {(e.initiator, e.requester_id) for e in dma} == {
        (device_of(rig, engine), TaggedDmaEngine.requester_id)
    }
    assert {(e.address_space, e.region) for e in dma} == {
        (rig.first_space, served_by(rig.bus, rig.first_space, src)[0])
    }


def test_dma_into_ram_reports_no_device_latency(rig: Rig, spot: int):
    """latency_ns is only for accesses that waited for a device (bus.proto): a device's DMA
    into RAM waits for none, so it reports 0, like a client's RAM access."""
    src, dst = spot, spot + 0x400
    with Subscription(rig.server, trace_request(ranges=[(spot, spot + 0x1000)])) as sub:
        wr(rig, src, b"\x5a" * 16)
        copy_sync(rig, src, dst, 16)
        events = sub.until(at(rd(rig, dst, 16).addr, write=False))
    dma = [e for e in events if e.initiator != "client"]
    assert len(dma) == 2
    assert [e.latency_ns for e in dma] == [0, 0]


# -- filters, each alone -------------------------------------------------------------------------


class Mix:
    """A spread of accesses: RAM, ROM, ROM device, device MMIO, a hole, a second address
    space; reads and writes; requester ids 0, 7 and 8; successes and faults."""

    def __init__(self, rig: Rig, spot: int) -> None:
        self.rig, self.spot = rig, spot
        self.dev = next(SCRATCH_SPOTS)
        self.rom = next(ROM_SPOTS)
        self.hole = next(HOLE_SPOTS)
        self.io = next(IO_SPOTS)

    def run(self) -> list[Done]:
        r, s = self.rig, self.spot
        return [
            rd(r, s - 2, 4),  # straddles the start of the spot
            wr(r, s, b"\x01\x02\x03\x04", rid=7),
            rd(r, s, 4, rid=7),
            wr(r, s + 0x10, b"\x05\x06", rid=8),
            rd(r, s + 0x40, 8),
            rd(r, self.rom, 4),
            wr(r, self.rom, b"\xff\xff\xff\xff", rid=7),
            wr(r, self.dev, b"\x21\x43\x65\x87", rid=7),
            rd(r, self.dev, 4, rid=8),
            rd(r, ROMD + 0x40, 4),
            rd(r, self.hole, 4),
            wr(r, self.hole, b"\x01", rid=7),
            wr(r, self.io, b"\x0a\x0b\x0c\x0d", space=IO_SPACE),
            rd(r, self.io, 4, rid=8, space=IO_SPACE),
            wr(r, s + 0x1FF, b"\xee\xee"),  # straddles the start of the second range
        ]

    def touches(self, d: Done, start: int, end: int) -> bool:
        return d.space == self.rig.first_space and d.addr < end and start < d.addr + d.size


# (filters, which of our accesses it keeps, the marker access: one it keeps)
FILTERS: dict[str, tuple[Callable, Callable, Callable]] = {
    "ranges": (
        lambda m: {"ranges": [(m.spot, m.spot + 0x20), (m.spot + 0x200, m.spot + 0x210)]},
        lambda m, d: (
            m.touches(d, m.spot, m.spot + 0x20) or m.touches(d, m.spot + 0x200, m.spot + 0x210)
        ),
        lambda m: wr(m.rig, m.spot + 0x1C, b"\x00"),
    ),
    "address_spaces": (
        lambda m: {"address_spaces": [IO_SPACE]},
        lambda m, d: d.space == IO_SPACE,
        lambda m: wr(m.rig, m.io + 0x20, b"\x00", space=IO_SPACE),
    ),
    "default_address_space": (
        lambda m: {"address_spaces": [""]},
        lambda m, d: d.space == m.rig.first_space,
        lambda m: wr(m.rig, m.spot + 0x800, b"\x00"),
    ),
    "regions": (
        lambda m: {"regions": ["scratch*", "rom?"]},
        lambda m, d: where(m.rig, d)[0] in ("scratch0", "rom0"),
        lambda m: wr(m.rig, m.dev + 0x20, b"\x00"),
    ),
    "reads": (
        lambda m: {"direction": "read"},
        lambda m, d: not d.write,
        lambda m: rd(m.rig, m.spot + 0x800, 1),
    ),
    "writes": (
        lambda m: {"direction": "write"},
        lambda m, d: d.write,
        lambda m: wr(m.rig, m.spot + 0x800, b"\x00"),
    ),
    "kinds": (
        lambda m: {"kinds": ["rom", "romd", "unassigned"]},
        lambda m, d: where(m.rig, d)[1] in ("rom", "romd", "unassigned"),
        lambda m: rd(m.rig, m.rom + 0x20, 1),
    ),
    "initiator_requester_id": (
        lambda m: {"initiators": ["client:7"]},
        lambda m, d: d.rid == 7,
        lambda m: wr(m.rig, m.spot + 0x800, b"\x00", rid=7),
    ),
    "initiator_glob": (
        lambda m: {"initiators": ["client:[78]"]},
        lambda m, d: d.rid in (7, 8),
        lambda m: wr(m.rig, m.spot + 0x800, b"\x00", rid=8),
    ),
    "results_ok": (
        lambda m: {"results": "ok"},
        lambda m, d: d.result == 0,
        lambda m: wr(m.rig, m.spot + 0x800, b"\x00"),
    ),
    "results_fault": (
        lambda m: {"results": "fault"},
        lambda m, d: d.result != 0,
        lambda m: rd(m.rig, m.hole + 0x20, 1),
    ),
    "combined": (
        lambda m: {
            "ranges": [(m.spot - 0x10, m.spot + 0x1000), (m.dev, m.dev + 0x40)],
            "direction": "write",
            "initiators": ["client:7"],
            "kinds": ["ram", "mmio"],
            "results": "ok",
        },
        lambda m, d: (
            d.write
            and d.rid == 7
            and d.result == 0
            and where(m.rig, d)[1] in ("ram", "mmio")
            and (m.touches(d, m.spot - 0x10, m.spot + 0x1000) or m.touches(d, m.dev, m.dev + 0x40))
        ),
        lambda m: wr(m.rig, m.spot + 0x800, b"\x00", rid=7),
    ),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_filter_keeps_exactly_the_matching_accesses(rig: Rig, spot: int, name: str):
    """Each filter criterion alone (and several combined) keeps exactly the accesses it
    describes, in order."""
    filters, keep, marker = FILTERS[name]
    mix = Mix(rig, spot)
    with Subscription(rig.server, trace_request(**filters(mix))) as sub:
        done = mix.run()
        last = marker(mix)
        events = sub.until(lambda e: summary(e) == last.key())
    assert keep(mix, last)
    expected = [d.key() for d in done if keep(mix, d)]
    assert expected and len(expected) < len(done)  # the filter does select
    assert [summary(e) for e in events] == expected


def test_initiator_filter_selects_a_devices_dma_by_name(rig: Rig, spot: int):
    """initiators=[device name] keeps that device's DMA and none of the client accesses,
    not even the client's accesses to the device's own registers."""
    src, dst, payload = spot, spot + 0x400, bytes(range(32))
    name = device_of(rig, "dma0")
    with Subscription(rig.server, trace_request(initiators=[name])) as sub:
        wr(rig, src, payload)
        rd(rig, src, 4)
        copy_sync(rig, src, dst + 0x100, len(payload), LOCAL_DMA_BASE)  # another engine's
        copy_sync(rig, src, dst, len(payload))  # dma0's
        events = sub.until(at(dst, write=True))
    assert [(e.initiator, e.addr, e.write, e.data) for e in events] == [(name, src, False, payload)]


def test_initiator_client_excludes_device_dma(rig: Rig, spot: int):
    """initiators=["client"] keeps every client access (any requester id), no device DMA."""
    src, dst, payload = spot, spot + 0x400, bytes(range(16))
    with Subscription(rig.server, trace_request(initiators=["client"])) as sub:
        done = [wr(rig, src, payload, rid=5)]
        done += copy_sync(rig, src, dst, len(payload))
        marker = rd(rig, dst, len(payload))
        events = sub.until(at(marker.addr, write=False))
    assert marker.data == payload  # the copy happened
    assert [summary(e) for e in events] == [d.key() for d in done]
    assert {e.initiator for e in events} == {"client"}


def test_sample_rate_keeps_that_fraction_evenly_spaced(rig: Rig, spot: int):
    """sample_rate 1/4 keeps one matching access in four, evenly spaced."""
    rate, n = 0.25, 400
    request = trace_request(ranges=[(spot, spot + 0x1000)], sample_rate=rate)
    with Subscription(rig.server, request) as sub:
        rig.bus.batch([Write(spot + i, bytes([i & 0xFF])) for i in range(n)])
        marker = spot + 0xFF0
        repeat_until_seen(rig, sub, marker)  # the marker is sampled too
        events = sub.until(at(marker))
    kept = [e.addr - spot for e in events]
    assert len(kept) == n * rate
    assert {b - a for a, b in itertools.pairwise(kept)} == {round(1 / rate)}


def test_a_range_of_size_all_ones_reaches_the_end_of_the_address_space(rig: Rig, spot: int):
    """AddressRange.size 0xffffffffffffffff means to the end of the address space (bus.proto):
    from ``spot`` up, everything matches; below it, nothing."""
    request = pb.TraceRequest(ranges=[pb.AddressRange(start=spot, size=(1 << 64) - 1)])
    with Subscription(rig.server, request) as sub:
        wr(rig, spot - 4, b"\x01")
        done = [wr(rig, spot + 0x10, b"\x02"), rd(rig, next(HOLE_SPOTS), 1)]
        events = sub.until(at(wr(rig, spot + 0x800, b"\x00").addr))
    assert [summary(e) for e in events] == [d.key() for d in done]


# -- refused filters ---------------------------------------------------------------------------

REFUSED = {
    "empty_range": (
        pb.TraceRequest(ranges=[pb.AddressRange(start=0x1000, size=0)]),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["ranges[0]"],
    ),
    "range_past_2_64": (
        pb.TraceRequest(ranges=[pb.AddressRange(start=(1 << 64) - 0x10, size=0x20)]),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["range"],
    ),
    "sample_rate_above_1": (
        pb.TraceRequest(sample_rate=1.5),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["sample_rate", "1.5"],
    ),
    "negative_sample_rate": (
        pb.TraceRequest(sample_rate=-0.5),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["sample_rate"],
    ),
    "unknown_kind": (
        pb.TraceRequest(kinds=["ram", "flash"]),
        grpc.StatusCode.INVALID_ARGUMENT,
        ["kind", "flash"],
    ),
    "unknown_address_space": (
        pb.TraceRequest(address_spaces=["no-such-space"]),
        grpc.StatusCode.NOT_FOUND,
        ["address_spaces[0]", "no-such-space"],
    ),
    "max_data_above_limit": (
        pb.TraceRequest(max_data_bytes=MAX_DATA_LIMIT + 1),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        ["max_data_bytes", str(MAX_DATA_LIMIT + 1), str(MAX_DATA_LIMIT)],
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_invalid_filter_is_refused_naming_the_problem(rig: Rig, name: str):
    """A filter the server cannot honour ends the call with a status that names the field and
    the value, and leaves no subscriber behind."""
    request, code, words = REFUSED[name]
    before = joined(rig.server)
    error = trace_error(rig.server, request)
    assert error.code() == code, error.details()
    for word in words:
        assert word in error.details()
    assert joined(rig.server) == before


def test_client_refuses_a_sample_rate_above_one(rig: Rig, spot: int):
    """Bus.trace(sample_rate=1.5) fails (locally or with the server's INVALID_ARGUMENT)
    instead of tracing at some other rate."""
    stop = threading.Event()

    def poke() -> None:  # something to trace, should the request be accepted
        with Bus(rig.server.tcp) as bus:
            while not stop.wait(0.02):
                bus.write(spot, b"\x01")

    poker = threading.Thread(target=poke, daemon=True)
    poker.start()
    try:
        with Bus(rig.server.tcp) as bus:
            events = bus.trace(ranges=[(spot, spot + 0x10)], sample_rate=1.5)
            try:
                with pytest.raises(Exception) as failure:
                    next(events)
            finally:
                events.close()
    finally:
        stop.set()
        poker.join(TIMEOUT)
    assert "sample_rate" in str(failure.value)


# -- several subscribers -------------------------------------------------------------------------


def test_several_subscribers_each_get_exactly_their_matches(rig: Rig, spot: int):
    """Subscribers with different filters at the same time each receive exactly the accesses
    their own filter keeps."""
    mix = Mix(rig, spot)
    names = ["reads", "writes", "initiator_requester_id", "kinds", "ranges", "results_fault"]
    subs = [Subscription(rig.server, trace_request(**FILTERS[n][0](mix))) for n in names]
    try:
        done = mix.run()
        markers = [FILTERS[n][2](mix) for n in names]
        everything = done + markers
        for name, sub, marker in zip(names, subs, markers, strict=True):
            keep = FILTERS[name][1]
            events = sub.until(lambda e, m=marker: summary(e) == m.key())
            upto = everything[: len(done) + markers.index(marker)]
            assert [summary(e) for e in events] == [d.key() for d in upto if keep(mix, d)], name
    finally:
        for sub in subs:
            sub.close()


# -- a subscriber that stops reading -------------------------------------------------------------


def _flood(rig: Rig, spot: int) -> int:
    """Many accesses in ``spot``; returns how many."""
    n = 0
    for _ in range(20):
        rig.bus.batch([Write(spot + (i % 0x800), b"\x01") for i in range(500)])
        n += 500
    for i in range(200):
        wr(rig, spot + i, b"\x02")
        n += 1
    return n


@pytest.mark.parametrize("matching", ["ranges", "everything"])
def test_a_subscriber_that_stops_reading_does_not_block_the_bus(rig: Rig, spot: int, matching: str):
    """While a subscriber with a small queue reads nothing, clients complete thousands of
    accesses; when it reads again, gap events count what it lost, and what it saw plus what
    it lost is exactly what matched its filter (an address range, or no filter at all: then
    every access of the bus, which are this test's alone)."""
    ranges = [(spot, spot + 0x1000)] if matching == "ranges" else []
    request = trace_request(ranges=ranges, queue_capacity=16)
    with Subscription(rig.server, request, read=False) as stalled:
        matched = _flood(rig, spot)
        stalled.resume()
        matched += repeat_until_seen(rig, stalled, spot + 0xFF0)

        def tally() -> tuple[int, int]:
            events = stalled.snapshot()
            return len(accesses(events)), sum(e.lost for e in events)

        wait_for(
            lambda: sum(tally()) >= matched,
            message=f"seen + lost never reached {matched} matched accesses: {tally()}",
        )
        seen, lost = tally()
    assert lost > 0
    assert seen + lost == matched


def test_a_gap_event_sits_where_the_events_were_lost(rig: Rig, spot: int):
    """Each gap event sits where events went missing: the seq numbers of the events either
    side of it (every access here matches the filter, so seqs are consecutive) skip exactly
    `lost`, and where no gap is reported no seq is skipped."""
    request = trace_request(ranges=[(spot, spot + 0x1000)], queue_capacity=16)
    with Subscription(rig.server, request, read=False) as stalled:
        _flood(rig, spot)
        stalled.resume()
        marker = spot + 0xFF0
        repeat_until_seen(rig, stalled, marker)
        events = stalled.until(at(marker))
    assert any(e.lost for e in events)
    misplaced = []
    previous, pending = None, 0
    for i, e in enumerate(events):
        if e.lost:
            if previous is None:
                misplaced.append((i, "gap before any event", e.lost))
            pending += e.lost
            continue
        if previous is not None and e.seq - previous - 1 != pending:
            misplaced.append((i, f"seq {previous} -> {e.seq}", pending))
        previous, pending = e.seq, 0
    assert misplaced == []


# -- subscribers that come and go ----------------------------------------------------------------


def test_subscribers_that_come_and_go_leave_the_bus_serving_and_clean(rig: Rig, spot: int):
    """Subscribers that join and leave many times (cancelled before reading, after joining,
    mid-stream while events flow, by breaking out of Bus.trace, by closing their channel)
    leave the bus serving, every one of them unsubscribed, and tracing idle: a later
    subscriber is the only one, and its seq numbers continue from the last ones seen,
    because nothing was numbered while nobody listened."""
    stop = threading.Event()
    completed = [0]
    errors: list[BaseException] = []

    def traffic() -> None:
        try:
            with Bus(rig.server.tcp) as bus:
                while not stop.is_set():
                    bus.write(spot + (completed[0] % 0x100), b"\x01")
                    completed[0] += 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    request = trace_request(ranges=[(spot, spot + 0x100)])
    try:
        for i in range(60):
            mode = i % 5
            if mode == 0:  # cancelled at once, perhaps before the server subscribed it
                with grpc.insecure_channel(rig.server.tcp) as channel:
                    bus_pb2_grpc.BusStub(channel).Trace(request).cancel()
            elif mode == 1:  # joins, never reads, leaves
                Subscription(rig.server, request, read=False).close()
            elif mode == 2:  # cancelled mid-stream while events flow
                with Subscription(rig.server, request) as sub:
                    sub.wait(lambda e: True)
            elif mode == 3:  # breaks out of the client iterator
                with Bus(rig.server.tcp) as bus:
                    for _ in bus.trace(ranges=[(spot, spot + 0x100)]):
                        break
            else:  # the channel goes away under the call
                sub = Subscription(rig.server, request)
                sub.wait(lambda e: True)
                sub.channel.close()
                sub.close()
        at_end = completed[0]
        wait_for(lambda: completed[0] > at_end + 50, message="the bus stopped serving")
    finally:
        stop.set()
        worker.join(TIMEOUT)
    assert not errors, errors
    wait_for(
        lambda: left(rig.server) == joined(rig.server),
        message=f"{joined(rig.server)} subscribers joined but {left(rig.server)} left",
    )
    # The last event anyone saw; then accesses while nobody listens; then a new subscriber.
    with Subscription(rig.server, request) as sub:
        i = sub.wait(at(wr(rig, spot + 0x80, b"\x00").addr))
        last_seq = sub.snapshot()[i].seq
    wait_for(lambda: left(rig.server) == joined(rig.server))
    for i in range(50):
        wr(rig, spot + i, b"\x04")
    with Subscription(rig.server, request) as sub:
        record = log_events(rig.server, "trace subscriber joined")[-1]
        i = sub.wait(at(wr(rig, spot + 0x90, b"\x00").addr))
        first = sub.snapshot()[i]
    assert record["subscribers"] == 1
    assert first.seq == last_seq + 1


# -- batching ------------------------------------------------------------------------------------


def test_events_travel_in_batches(rig: Rig, spot: int):
    """When many accesses happen quickly, stream messages carry several events each."""
    with Subscription(rig.server, trace_request(ranges=[(spot, spot + 0x1000)])) as sub:
        for i in range(300):
            wr(rig, spot + i, bytes([i & 0xFF]))
        rig.bus.batch([Write(spot + 0x400 + i, b"\x01") for i in range(200)])
        sub.until(at(wr(rig, spot + 0xFF0, b"\x00").addr))
        batches = [b for b in sub.batches if b.events]
    events = sum(len(b.events) for b in batches)
    assert events >= 501
    assert max(len(b.events) for b in batches) > 1
    assert len(batches) < events


# -- the client iterators ------------------------------------------------------------------------


def test_bus_trace_yields_the_filtered_events(rig: Rig, spot: int):
    """Bus.trace(**filters) is a blocking iterator over the same events, filters included."""
    got: list[pb.TraceEvent] = []
    marker = spot + 0x800
    ready = joined(rig.server)

    def follow() -> None:
        with Bus(rig.server.tcp) as bus:
            for event in bus.trace(ranges=[(spot, spot + 0x1000)], direction="write"):
                got.append(event)
                if event.addr == marker:
                    break

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    wait_for(lambda: joined(rig.server) > ready)
    done = [wr(rig, spot, b"\x01\x02", rid=7), rd(rig, spot, 2), wr(rig, spot + 4, b"\x03")]
    done.append(wr(rig, marker, b"\x00"))
    reader.join(TIMEOUT)
    assert not reader.is_alive()
    assert [summary(e) for e in got] == [d.key() for d in done if d.write]


async def test_async_bus_trace_yields_the_filtered_events(rig: Rig, spot: int):
    """AsyncBus.trace(**filters) is an async iterator over the same events."""
    marker = spot + 0x800
    async with AsyncBus(rig.server.tcp) as bus:
        ready = joined(rig.server)

        async def follow() -> list[pb.TraceEvent]:
            got = []
            async for event in bus.trace(ranges=[(spot, spot + 0x1000)], initiators=["client:9"]):
                got.append(event)
                if event.addr == marker:
                    break
            return got

        reader = asyncio.create_task(follow())
        deadline = time.monotonic() + TIMEOUT
        while joined(rig.server) == ready and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        nine = MemTxAttrs(requester_id=9)
        await bus.write(spot, b"\x01", attrs=nine)
        await bus.write(spot + 1, b"\x02")
        data = await bus.read(spot, 2, attrs=nine)
        await bus.write(marker, b"\x00", attrs=nine)
        got = await asyncio.wait_for(reader, TIMEOUT)
    first = rig.first_space
    assert [summary(e) for e in got] == [
        (first, spot, 1, True, b"\x01", 0),
        (first, spot, 2, False, data, 0),
        (first, marker, 1, True, b"\x00", 0),
    ]


# -- where an access went, when the topology changes while it runs -----------------------------


def test_event_names_the_region_that_served_the_access_even_if_remapped_later(rig: Rig, spot: int):
    """An access is attributed to the region that served it, even when the address is
    remapped before the rest of its batch (here a long DMA copy) completes."""
    src, dst, length = BIG_COPY
    program_dma(rig, src, dst, length)
    served = served_by(rig.bus, rig.first_space, spot)
    overlay = f"overlay-{spot:x}"
    plan = [Write(spot, b"\xab\xcd"), Write(DMA_BASE + CTRL, u32(START | SYNC))]
    with Subscription(rig.server, trace_request(ranges=[(spot, spot + 0x1000)])) as sub:
        outcome: list = []
        with Bus(rig.server.tcp) as other:
            runner = threading.Thread(
                target=lambda: outcome.append(other.batch(plan, check=False)), daemon=True
            )
            runner.start()
            wait_for(lambda: rig.bus.read_u32(DMA_BASE + STATUS) & 1)  # BUSY: copy under way
            with rig.bus.transaction() as t:
                t.create_region(overlay, "ram", 0x1000)
                t.add_subregion("system", overlay, spot, priority=1)
            runner.join(TIMEOUT)
        try:
            events = sub.until(at(wr(rig, spot + 0x800, b"\x00").addr))
        finally:
            with rig.bus.transaction() as t:
                t.remove_subregion(overlay)
                t.delete_region(overlay)
    assert outcome, "the batch did not finish"
    assert rig.bus.read(spot, 2) == b"\xab\xcd"  # the write did go to the RAM below
    (event,) = [e for e in events if e.addr == spot]
    assert (event.region, event.offset) == served


# -- shutdown ------------------------------------------------------------------------------------


def test_server_shutdown_ends_trace_streams_cleanly(machine_server: ServerFactory):
    """When the server shuts down, a subscriber's stream ends (no error, nothing hangs) and
    the server exits 0."""
    server = machine_server(None, "--log-format", "json")
    try:
        sub = Subscription(server, trace_request())
        with Bus(server.tcp) as bus:
            bus.write(0x1000, b"\x01")
        sub.wait(lambda e: e.addr == 0x1000)
    finally:
        status = server.stop()
    assert status == 0, server.log()
    wait_for(lambda: sub.ended, message="the trace stream did not end")
    sub.close()
    assert sub.error is None, sub.error
