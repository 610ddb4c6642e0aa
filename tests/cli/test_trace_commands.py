"""`mmiobus trace` and `mmiobus replay` end to end: the command line against a real server
with a ScratchRam and a DmaEngine in device processes.

The commands run in this process (``main(argv)``; see conftest.py): a `trace` command runs in a
background thread, the test waits until the server has subscribed it (its log says so), makes
its accesses, and `--count` ends the command once it has printed what it owes. The tests that
need a terminal or a signal run the installed `mmiobus` script as a subprocess.
"""

from __future__ import annotations

import itertools
import json
import os
import pty
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from mmiobus.client import MemTxAttrs, MemTxResult
from mmiobus.client.tracing import trace_request
from support.command_line import command_env
from support.dma_engine import CTRL, DST_HI, DST_LO, LEN, SRC_HI, SRC_LO, START, SYNC
from support.flat_views import served_by
from support.machines import machine_yaml, mmio
from support.models import DMA_ENGINE, SCRATCH
from support.rig import Rig, RigFactory
from support.servers import MMIOBUS
from support.trace_stream import Subscription, at, joined, log_events
from support.wait import TIMEOUT, wait_for

RAM_SIZE = 16 << 20
SCRATCH_BASE = 0x10000000  # scratch0: a ScratchRam device process
DMA_BASE = 0x10001000  # dma0: a DmaEngine device process
HOLE = 0x30000000
EXIT_DIFFERENT = 4  # `mmiobus replay` found differences

SPOTS = itertools.count(0x100000, 0x1000)
SCRATCH_SPOTS = itertools.count(SCRATCH_BASE, 0x80)
HOLE_SPOTS = itertools.count(HOLE, 0x100)

JSONL_KEYS = {
    "seq",
    "timestamp_ns",
    "address_space",
    "addr",
    "size",
    "dir",
    "data",
    "data_truncated",
    "result",
    "result_name",
    "region",
    "offset",
    "kind",
    "initiator",
    "requester_id",
    "latency_ns",
}


@pytest.fixture(scope="module")
def rig(machine_rig: RigFactory) -> Rig:
    machine = machine_yaml(
        [
            {"name": "ram", "kind": "ram", "addr": 0, "size": RAM_SIZE},
            mmio("scratch0", SCRATCH_BASE, 0x1000, "scratch0"),
            mmio("dma0", DMA_BASE, 0x20, "dma0", valid=(4, 4), impl=(4, 4)),
        ]
    )
    devices = [(SCRATCH, "scratch0", []), (DMA_ENGINE, "dma0", [])]
    return machine_rig(machine, devices, "--log-format", "json")


@pytest.fixture
def spot() -> int:
    """4 KiB of RAM for this test alone."""
    return next(SPOTS)


# -- running the command line --------------------------------------------------------------------


class TraceCommand:
    """`mmiobus trace ARGS` in a background thread of this process; returns once the server
    has subscribed it."""

    def __init__(self, rig: Rig, mmiobus, *args: str) -> None:
        before = joined(rig.server)
        self.ran = None
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.ran = mmiobus("trace", "--server", rig.server.tcp, *args)
            except BaseException as e:  # reported by finish()
                self.error = e

        self.thread = threading.Thread(target=run, name="mmiobus-trace", daemon=True)
        self.thread.start()
        wait_for(
            lambda: joined(rig.server) > before or not self.thread.is_alive(),
            message="`mmiobus trace` never subscribed",
        )
        assert self.thread.is_alive(), self.error or self.ran

    def finish(self) -> tuple[str, str]:
        """Wait for the command to end by itself (--count); (stdout, stderr)."""
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "`mmiobus trace` did not end"
        if self.error is not None:
            raise self.error
        assert self.ran is not None
        assert self.ran.returncode == 0, self.ran.stderr
        return self.ran.output, self.ran.stderr


class TraceProcess:
    """`mmiobus trace ARGS` as a subprocess (for a terminal, or a signal); returns once the
    server has subscribed it."""

    def __init__(self, rig: Rig, *args: str, tty: bool = False) -> None:
        before = joined(rig.server)
        self.master = None
        stdout = subprocess.PIPE
        if tty:  # standard output is a terminal
            self.master, slave = pty.openpty()
            stdout = slave
        self.proc = subprocess.Popen(
            [MMIOBUS, "trace", "--server", rig.server.tcp, *args],
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=command_env(),
        )
        if tty:
            os.close(slave)
        try:
            wait_for(
                lambda: joined(rig.server) > before or self.proc.poll() is not None,
                message="`mmiobus trace` never subscribed",
            )
            assert self.proc.poll() is None, self.proc.communicate()
        except BaseException:
            self.proc.kill()
            raise

    def finish(self) -> tuple[str, str]:
        """Wait for the command to end by itself (--count); (stdout, stderr)."""
        if self.master is None:
            out, err = self.proc.communicate(timeout=TIMEOUT)
        else:
            self.proc.wait(TIMEOUT)
            err = self.proc.stderr.read()
            chunks = []
            while True:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the terminal's other side is closed
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            os.close(self.master)
            out = b"".join(chunks).decode().replace("\r\n", "\n")
        assert self.proc.returncode == 0, err
        return out, err


# -- accesses, as the client saw them ------------------------------------------------------------


@dataclass(frozen=True)
class Done:
    addr: int
    size: int
    write: bool
    data: bytes
    result: int
    rid: int = 0


def _attrs(rid: int) -> MemTxAttrs | None:
    return MemTxAttrs(requester_id=rid) if rid else None


def wr(rig: Rig, addr: int, data: bytes, rid: int = 0) -> Done:
    result = rig.bus.write(addr, data, attrs=_attrs(rid), check=False)
    return Done(addr, len(data), True, data, int(result), rid)


def rd(rig: Rig, addr: int, size: int, rid: int = 0) -> Done:
    r = rig.bus.read(addr, size, attrs=_attrs(rid), check=False)
    return Done(addr, size, False, r.data, int(r.result), rid)


def record_key(r: dict) -> tuple:
    """A JSON Lines record, comparable with ``done_key``."""
    return (r["addr"], r["size"], r["dir"] == "write", bytes.fromhex(r["data"]), r["result"])


def done_key(d: Done) -> tuple:
    return (d.addr, d.size, d.write, d.data, d.result)


def jsonl_records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def hex_tokens(line: str) -> set[int]:
    return {int(t, 16) for t in re.findall(r"0x[0-9a-fA-F]+", line)}


def u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


# -- output formats ------------------------------------------------------------------------------


def test_text_output_is_one_readable_line_per_access(mmiobus, rig: Rig, spot: int):
    """The text format prints one line per access with its address, direction and size,
    value, region and offset, initiator and result; a fault's line names the fault."""
    dev, hole = next(SCRATCH_SPOTS), next(HOLE_SPOTS)
    ranges = [f"{spot:#x}+0x100", f"{dev:#x}+0x10", f"{hole:#x}+0x10"]
    args = [a for r in ranges for a in ("--range", r)]
    cmd = TraceCommand(rig, mmiobus, *args, "--count", "4")
    done = [
        wr(rig, spot + 8, b"\x78\x56\x34\x12", rid=7),
        rd(rig, spot + 8, 2),
        wr(rig, dev, b"\xcd\xab", rid=0x21),
        rd(rig, hole, 1, rid=7),
    ]
    out, _ = cmd.finish()
    lines = out.splitlines()
    assert len(lines) == len(done)
    for d, line in zip(done, lines, strict=True):
        region, offset = served_by(rig.bus, rig.first_space, d.addr)
        assert d.addr in hex_tokens(line), line
        assert int.from_bytes(d.data, "little") in hex_tokens(line), line
        assert re.search(rf"(?<!\w){'W' if d.write else 'R'}\s*{d.size}(?!\w)", line), line
        assert f"client:{d.rid}" in line, line
        if region:
            assert region in line and offset in hex_tokens(line), line
        result = MemTxResult(d.result)
        words = line.split()
        if result:
            assert result.name in line and "OK" not in words, line
        else:
            assert "OK" in words, line
    assert MemTxResult(done[-1].result)  # the hole's read was a fault


def test_text_output_in_a_terminal_highlights_faults(rig: Rig, spot: int):
    """In a terminal, a fault's line stands out (coloured); a successful access's does not."""
    hole = next(HOLE_SPOTS)
    cmd = TraceProcess(
        rig, "--range", f"{spot:#x}+0x10", "--range", f"{hole:#x}+0x10", "--count", "2", tty=True
    )
    ok, fault = wr(rig, spot, b"\x01"), rd(rig, hole, 1)
    out, _ = cmd.finish()
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 2
    assert ok.result == 0 and fault.result != 0
    assert "\x1b[" not in lines[0]
    assert "\x1b[" in lines[1] and MemTxResult(fault.result).name in lines[1]


def test_jsonl_output_is_one_json_object_per_access(mmiobus, rig: Rig, spot: int):
    """--format jsonl prints one JSON object per line, with the documented keys, whose
    values are those of the access (region and offset as GetTopology says)."""
    dev = next(SCRATCH_SPOTS)
    ranges = ["--range", f"{spot:#x}+0x100", "--range", f"{dev:#x}+0x10"]
    cmd = TraceCommand(rig, mmiobus, *ranges, "--format", "jsonl", "--count", "3")
    done = [wr(rig, spot, b"\x0a\x0b\x0c", rid=3), rd(rig, spot + 1, 2), rd(rig, dev, 4, rid=4)]
    out, _ = cmd.finish()
    records = jsonl_records(out)
    assert len(out.splitlines()) == len(records) == len(done)
    for d, r in zip(done, records, strict=True):
        assert set(r) >= JSONL_KEYS
        assert record_key(r) == done_key(d)
        assert r["address_space"] == rig.first_space
        assert (r["region"], r["offset"]) == served_by(rig.bus, rig.first_space, d.addr)
        assert (r["initiator"], r["requester_id"]) == ("client", d.rid)
        assert r["result_name"] == MemTxResult(d.result).name
    assert [r["seq"] for r in records] == sorted({r["seq"] for r in records})
    assert records[2]["latency_ns"] > 0 and records[0]["latency_ns"] == 0  # device vs RAM


def test_chrome_output_has_a_track_per_region_and_per_initiator(
    mmiobus, rig: Rig, spot: int, tmp_path
):
    """--format chrome --out FILE writes valid trace-event JSON: every access is a complete
    event on the track of its region and on the track of its initiator, and each track is
    declared once by thread_name metadata."""
    out_file = tmp_path / "run.json"
    dev = next(SCRATCH_SPOTS)
    ranges = ["--range", f"{spot:#x}+0x100", "--range", f"{dev:#x}+0x10"]
    cmd = TraceCommand(
        rig, mmiobus, *ranges, "--format", "chrome", "--out", str(out_file), "--count", "4"
    )
    done = [
        wr(rig, spot, b"\x01\x02", rid=1),
        rd(rig, dev, 2, rid=2),
        wr(rig, dev + 4, b"\x05", rid=1),
        rd(rig, spot, 2),
    ]
    cmd.finish()
    records = json.loads(out_file.read_text())
    meta = [r for r in records if r.get("ph") == "M"]
    complete = [r for r in records if r.get("ph") == "X"]
    processes = {r["pid"]: r["args"]["name"] for r in meta if r["name"] == "process_name"}
    threads = [r for r in meta if r["name"] == "thread_name"]
    tracks = {(r["pid"], r["tid"]): r["args"]["name"] for r in threads}
    assert len(tracks) == len(threads)  # each track declared once
    for pid in processes:  # one track per name within a process
        names = [name for (p, _), name in tracks.items() if p == pid]
        assert len(names) == len(set(names))
    # Every access is on two tracks of different processes: its region's and its initiator's.
    assert Counter(r["args"]["seq"] for r in complete) == dict.fromkeys(
        {r["args"]["seq"] for r in complete}, 2
    )
    args = {r["args"]["seq"]: r["args"] for r in complete}
    assert [record_key(args[seq]) for seq in sorted(args)] == [done_key(d) for d in done]
    regions = {served_by(rig.bus, rig.first_space, d.addr)[0] for d in done}
    initiators = {f"client:{d.rid}" for d in done}
    names_by_pid: dict[int, set[str]] = {}
    for seq, d in zip(sorted(args), done, strict=True):
        pair = [r for r in complete if r["args"]["seq"] == seq]
        assert pair[0]["pid"] != pair[1]["pid"]
        assert {tracks[(r["pid"], r["tid"])] for r in pair} == {
            served_by(rig.bus, rig.first_space, d.addr)[0],
            f"client:{d.rid}",
        }
        for r in pair:
            assert (r["pid"], r["tid"]) in tracks
            assert r["dur"] > 0 and isinstance(r["ts"], (int, float))
            names_by_pid.setdefault(r["pid"], set()).add(tracks[(r["pid"], r["tid"])])
    assert sorted(names_by_pid.values(), key=sorted) == sorted([regions, initiators], key=sorted)
    assert set(names_by_pid) <= set(processes)


# -- filters on the command line -----------------------------------------------------------------


def _mix(rig: Rig, spot: int, dev: int, hole: int) -> list[Done]:
    return [
        wr(rig, spot, b"\x01\x02\x03\x04", rid=7),
        rd(rig, spot, 4, rid=8),
        rd(rig, spot + 0x200, 2, rid=7),
        wr(rig, dev, b"\x11\x22", rid=8),
        rd(rig, dev, 2, rid=7),
        rd(rig, hole, 1, rid=7),
        wr(rig, hole, b"\x01", rid=8),
        wr(rig, spot + 0x204, b"\x09", rid=7),
        rd(rig, spot + 0x10, 1),
    ]


FILTER_ARGS = {
    "range": (
        lambda s, dev, hole: ["--range", f"{s + 0x200:#x}:{s + 0x300:#x}"],
        lambda rig, d, s, dev, hole: s + 0x200 <= d.addr < s + 0x300,
    ),
    "read": (
        lambda s, dev, hole: ["--read"],
        lambda rig, d, s, dev, hole: not d.write,
    ),
    "write": (
        lambda s, dev, hole: ["--write"],
        lambda rig, d, s, dev, hole: d.write,
    ),
    "region": (
        lambda s, dev, hole: ["--region", "scratch*"],
        lambda rig, d, s, dev, hole: served_by(rig.bus, rig.first_space, d.addr)[0] == "scratch0",
    ),
    "faults": (
        lambda s, dev, hole: ["--faults"],
        lambda rig, d, s, dev, hole: d.result != 0,
    ),
    "initiator": (
        lambda s, dev, hole: ["--initiator", "client:7"],
        lambda rig, d, s, dev, hole: d.rid == 7,
    ),
    "combined": (
        lambda s, dev, hole: ["--range", f"{s:#x}+0x1000", "--read", "--initiator", "client:7"],
        lambda rig, d, s, dev, hole: s <= d.addr < s + 0x1000 and not d.write and d.rid == 7,
    ),
}


@pytest.mark.parametrize("name", list(FILTER_ARGS))
def test_command_line_filter_keeps_only_matching_accesses(mmiobus, rig: Rig, spot: int, name: str):
    """Each filter option (--range, --read, --write, --region, --faults, --initiator, and
    several at once) prints exactly the accesses it selects, in order."""
    dev, hole = next(SCRATCH_SPOTS), next(HOLE_SPOTS)
    args, keep = FILTER_ARGS[name]
    # A first round without tracing says which accesses the filter selects (addresses,
    # directions, requester ids and results do not change from one round to the next).
    rehearsal = [keep(rig, d, spot, dev, hole) for d in _mix(rig, spot, dev, hole)]
    count = sum(rehearsal)
    # Something the filter rejects comes before the last access it keeps, so a filter that
    # kept too much would show before --count ends the command.
    assert count > 0 and not all(rehearsal[: len(rehearsal) - rehearsal[::-1].index(True)])
    cmd = TraceCommand(
        rig, mmiobus, *args(spot, dev, hole), "--format", "jsonl", "--count", str(count)
    )
    done = _mix(rig, spot, dev, hole)
    out, _ = cmd.finish()
    assert [keep(rig, d, spot, dev, hole) for d in done] == rehearsal
    expected = [done_key(d) for d in done if keep(rig, d, spot, dev, hole)]
    assert [record_key(r) for r in jsonl_records(out)] == expected


def test_count_stops_after_that_many_accesses(mmiobus, rig: Rig, spot: int):
    """--count N ends the command after it printed N accesses: the first N that matched."""
    cmd = TraceCommand(
        rig, mmiobus, "--range", f"{spot:#x}+0x100", "--format", "jsonl", "--count", "3"
    )
    done = [wr(rig, spot + i, bytes([i])) for i in range(6)]
    out, _ = cmd.finish()
    assert [record_key(r) for r in jsonl_records(out)] == [done_key(d) for d in done[:3]]


# -- record and replay ---------------------------------------------------------------------------


@dataclass
class Scene:
    """Addresses in RAM and in the device, their contents before the recording, and the
    accesses of a recording (reads before and after writes, in RAM and in the device)."""

    ram: int
    dev: int
    hole: int
    initial_ram: bytes = bytes(range(0x40, 0x60))
    initial_dev: bytes = bytes(range(0x80, 0x90))

    def restore(self, rig: Rig, ram_patch: bytes = b"", dev_patch: bytes = b"") -> None:
        """Put the state back as it was before the recording (with patches over its start)."""
        rig.bus.write(self.ram, ram_patch + self.initial_ram[len(ram_patch) :])
        for i in range(0, len(self.initial_dev), 8):
            chunk = (dev_patch + self.initial_dev[len(dev_patch) :])[i : i + 8]
            rig.bus.write(self.dev + i, chunk)

    def steps(self, rig: Rig) -> list[Callable[[], Done]]:
        r, d = self.ram, self.dev
        return [
            lambda: rd(rig, r, 4),  # initial contents
            lambda: wr(rig, r + 4, b"\xde\xad\xbe\xef", rid=7),
            lambda: rd(rig, r + 4, 4, rid=7),  # what was just written
            lambda: rd(rig, d, 4),  # the device's initial contents
            lambda: wr(rig, d + 4, b"\x01\x02\x03\x04", rid=9),
            lambda: rd(rig, d + 4, 4, rid=9),
            lambda: rd(rig, self.hole, 2),  # a fault
            lambda: rd(rig, r + 0x10, 8),
        ]


def record(rig: Rig, mmiobus, scene: Scene, path: Path, fmt: str, *extra: str) -> list[Done]:
    """Record the scene's accesses to ``path``; the accesses as the client saw them."""
    ranges = [f"{scene.ram:#x}+0x100", f"{scene.dev:#x}+0x10", f"{scene.hole:#x}+0x10"]
    args = [a for r in ranges for a in ("--range", r)]
    scene.restore(rig)
    steps = scene.steps(rig)
    cmd = TraceCommand(
        rig, mmiobus, *args, "--format", fmt, "--out", str(path), "--count", str(len(steps)), *extra
    )
    done = [step() for step in steps]
    cmd.finish()
    return done


def new_scene(spot: int) -> Scene:
    return Scene(spot, next(SCRATCH_SPOTS), next(HOLE_SPOTS))


def replay(mmiobus, rig: Rig, path: Path):
    """`mmiobus replay PATH` against the rig's server, to the end."""
    return mmiobus("replay", str(path), "--server", rig.server.tcp)


def test_replay_against_the_same_state_finds_no_differences(mmiobus, rig: Rig, spot: int, tmp_path):
    """A JSON Lines recording of RAM and device accesses, replayed against the state it was
    recorded from, reproduces every access: no differences, exit status 0."""
    scene, path = new_scene(spot), tmp_path / "run.jsonl"
    done = record(rig, mmiobus, scene, path, "jsonl")
    scene.restore(rig)
    out = replay(mmiobus, rig, path)
    assert out.returncode == 0, out.output + out.stderr
    assert "no differences" in out.output
    assert f"replayed {len(done)} accesses" in out.output


def test_replay_reports_every_access_whose_data_or_result_differs(
    mmiobus, rig: Rig, spot: int, tmp_path
):
    """After the RAM and the device contents change (and a hole gets mapped), replay reports
    exactly the accesses that now read other data or end with another result, by seq, and
    exits with status 4."""
    scene, path = new_scene(spot), tmp_path / "run.jsonl"
    record(rig, mmiobus, scene, path, "jsonl")
    records = jsonl_records(path.read_text())
    # Change what the first RAM read and the first device read see, and fill the hole.
    scene.restore(rig, ram_patch=b"\xff", dev_patch=b"\xee")
    patch = f"patch-{spot:x}"
    with rig.bus.transaction() as t:
        t.create_region(patch, "ram", 0x100)
        t.add_subregion("system", patch, scene.hole)
    try:
        out = replay(mmiobus, rig, path)
    finally:
        with rig.bus.transaction() as t:
            t.remove_subregion(patch)
            t.delete_region(patch)
    changed = {
        r["seq"]
        for r in records
        if (r["addr"], r["dir"]) in {(scene.ram, "read"), (scene.dev, "read"), (scene.hole, "read")}
    }
    assert out.returncode == EXIT_DIFFERENT, out.output + out.stderr
    reported = {int(m) for m in re.findall(r"^seq (\d+)", out.output, re.MULTILINE)}
    assert reported == changed
    assert len(changed) == 3


def test_replay_of_a_chrome_recording(mmiobus, rig: Rig, spot: int, tmp_path):
    """A Chrome-format recording replays like a JSON Lines one."""
    scene, path = new_scene(spot), tmp_path / "run.json"
    done = record(rig, mmiobus, scene, path, "chrome")
    scene.restore(rig)
    out = replay(mmiobus, rig, path)
    assert out.returncode == 0, out.output + out.stderr
    assert "no differences" in out.output
    assert f"replayed {len(done)} accesses" in out.output


def test_replay_refuses_a_recording_with_truncated_write_data(
    mmiobus, rig: Rig, spot: int, tmp_path
):
    """A recording made with --max-data too small to hold a write is refused with an error
    that says to record again with a larger --max-data; nothing is replayed (exit 1)."""
    path = tmp_path / "short.jsonl"
    cmd = TraceCommand(
        rig, mmiobus, "--range", f"{spot:#x}+0x100", "--format", "jsonl", "--out", str(path),
        "--max-data", "4", "--count", "1",
    )  # fmt: skip
    payload = bytes(range(16))
    wr(rig, spot, payload)
    cmd.finish()
    (recorded,) = jsonl_records(path.read_text())
    assert recorded["data_truncated"]
    rig.bus.write(spot, b"\x00" * len(payload))
    out = replay(mmiobus, rig, path)
    assert out.returncode == 1, out.output + out.stderr
    assert "--max-data" in out.stderr and str(recorded["seq"]) in out.stderr
    assert rig.bus.read(spot, len(payload)) == b"\x00" * len(payload)  # nothing was replayed


def test_replay_skips_device_dma(mmiobus, rig: Rig, spot: int, tmp_path):
    """A recording that holds a DMA engine's copy replays only the client's accesses (which
    start the copy again); the engine's DMA reads and writes are not issued as client
    accesses."""
    src, dst, payload = spot, spot + 0x400, bytes(range(0x30, 0x50))
    path = tmp_path / "dma.jsonl"
    rig.bus.write(src, payload)
    registers = [
        (SRC_LO, src & 0xFFFFFFFF),
        (SRC_HI, src >> 32),
        (DST_LO, dst & 0xFFFFFFFF),
        (DST_HI, dst >> 32),
        (LEN, len(payload)),
        (CTRL, START | SYNC),
    ]
    ranges = ["--range", f"{DMA_BASE:#x}+0x20", "--range", f"{spot:#x}+0x1000"]
    cmd = TraceCommand(
        rig, mmiobus, *ranges, "--format", "jsonl", "--out", str(path), "--count", "8"
    )
    for reg, value in registers:
        wr(rig, DMA_BASE + reg, u32(value))
    cmd.finish()
    records = jsonl_records(path.read_text())
    dma = [r for r in records if r["initiator"] != "client"]
    assert {r["initiator"] for r in dma} == {"dma0"} and len(dma) == 2
    assert rig.bus.read(dst, len(payload)) == payload
    rig.bus.write(dst, b"\x00" * len(payload))
    request = trace_request(ranges=[(dst, dst + len(payload))], initiators=["client"])
    with Subscription(rig.server, request) as sub:
        out = replay(mmiobus, rig, path)
        client_at_dst = sub.until(at(wr(rig, dst, payload).addr))
    assert out.returncode == 0, out.output + out.stderr
    assert f"replayed {len(records) - len(dma)} accesses" in out.output
    assert client_at_dst == []
    assert rig.bus.read(dst, len(payload)) == payload


def test_replay_refuses_a_file_that_is_not_a_recording(mmiobus, rig: Rig, tmp_path):
    """A file that is not a recording is refused with a one-line error, exit status 1."""
    path = tmp_path / "notes.txt"
    path.write_text("this is not a trace\n")
    out = replay(mmiobus, rig, path)
    assert out.returncode == 1
    assert "not a recording" in out.stderr and len(out.stderr.splitlines()) == 1


# -- stopping and refusing -----------------------------------------------------------------------


def _interrupted_chrome_recording(rig: Rig, spot: int, path: Path) -> tuple[list[Done], int, str]:
    """Record accesses in Chrome format, then interrupt the command as Ctrl-C would; the
    accesses, the command's exit status and its standard error."""
    cmd = TraceProcess(
        rig, "--range", f"{spot:#x}+0x1000", "--format", "chrome", "--out", str(path)
    )
    done = [wr(rig, spot + (i % 0x800), bytes([i & 0xFF]) * 8) for i in range(300)]
    # The file fills as the command writes it: wait until some of it reached the disk.
    wait_for(lambda: path.exists() and path.stat().st_size > 0)
    cmd.proc.send_signal(signal.SIGINT)
    try:
        _, err = cmd.proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        cmd.proc.kill()
        raise AssertionError("`mmiobus trace` did not stop on SIGINT") from None
    return done, cmd.proc.returncode, err


def test_interrupting_a_chrome_recording_leaves_a_valid_file(rig: Rig, spot: int, tmp_path):
    """Ctrl-C (SIGINT) on `mmiobus trace --format chrome --out FILE` leaves valid trace-event
    JSON holding the accesses recorded so far, in order."""
    path = tmp_path / "cut.json"
    done, _, _ = _interrupted_chrome_recording(rig, spot, path)
    records = json.loads(path.read_text())
    args = {r["args"]["seq"]: r["args"] for r in records if r.get("ph") == "X"}
    got = [record_key(args[seq]) for seq in sorted(args)]
    assert got and got == [done_key(d) for d in done[: len(got)]]


def test_interrupting_trace_stops_it_cleanly(rig: Rig, spot: int, tmp_path):
    """Ctrl-C is how a live trace is stopped: the command ends with status 0 and no
    traceback."""
    _, status, err = _interrupted_chrome_recording(rig, spot, tmp_path / "cut.json")
    assert "Traceback" not in err, err
    assert status == 0, err


def test_duration_ends_the_trace_even_when_nothing_matches(mmiobus, rig: Rig, spot: int):
    """--duration SECONDS ends the command after that long even if no access matched."""
    args = ["--range", f"{spot:#x}+0x10", "--duration", "0.5"]
    ran = []
    thread = threading.Thread(
        target=lambda: ran.append(mmiobus("trace", "--server", rig.server.tcp, *args)),
        daemon=True,
    )
    started = time.monotonic()
    thread.start()
    thread.join(6)  # generous: far longer than 0.5 s
    assert not thread.is_alive(), "`mmiobus trace --duration 0.5` was still running"
    assert time.monotonic() - started >= 0.5
    assert ran and ran[0].returncode == 0, ran and ran[0].stderr


def test_queue_sets_how_many_events_the_server_holds_for_the_command(mmiobus, rig: Rig, spot: int):
    """--queue N asks the server to queue up to N events for this subscriber (its log says so)
    instead of its --trace-queue default; the command traces as usual."""
    args = ["--range", f"{spot:#x}+0x10", "--queue", "16", "--format", "jsonl", "--count", "1"]
    cmd = TraceCommand(rig, mmiobus, *args)
    record = log_events(rig.server, "trace subscriber joined")[-1]
    done = wr(rig, spot, b"\x01")
    out, err = cmd.finish()
    assert record["queue"] == 16
    assert cmd.ran is not None and cmd.ran.returncode == 0, err
    assert [record_key(r) for r in jsonl_records(out)] == [done_key(done)]


@pytest.mark.parametrize("option", ["--queue", "--max-data"])
def test_a_negative_count_option_is_a_one_line_error(mmiobus, rig: Rig, option: str):
    out = mmiobus("trace", "--server", rig.server.tcp, option, "-1", "--count", "1")
    assert out.returncode in (1, 2)
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "-1" in out.stderr, out.stderr


def test_an_empty_range_is_a_one_line_error(mmiobus, rig: Rig):
    """`mmiobus trace --range END:START` is refused with one line naming the range (exit 1 or
    2), as every command-line error is."""
    out = mmiobus("trace", "--server", rig.server.tcp, "--range", "0x2000:0x1000", "--count", "1")
    assert out.returncode in (1, 2)
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "0x2000" in out.stderr
