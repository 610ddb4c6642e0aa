"""Trace requests, and trace events as text, JSON Lines and Chrome trace-event records."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypedDict

from mmiobus.v1 import bus_pb2 as pb
from mmiobus.wire import result_names, size_to_pb


class TraceFilters(TypedDict, total=False):
    """The keyword arguments of ``trace_request`` (and of ``AsyncBus.trace``/``Bus.trace``)."""

    ranges: Iterable[tuple[int, int]]
    address_spaces: Iterable[str]
    regions: Iterable[str]
    direction: str
    kinds: Iterable[str]
    initiators: Iterable[str]
    results: str
    sample_rate: float
    max_data_bytes: int
    queue_capacity: int


def trace_request(
    *,
    ranges: Iterable[tuple[int, int]] = (),
    address_spaces: Iterable[str] = (),
    regions: Iterable[str] = (),
    direction: str = "any",
    kinds: Iterable[str] = (),
    initiators: Iterable[str] = (),
    results: str = "any",
    sample_rate: float = 1.0,
    max_data_bytes: int = 0,
    queue_capacity: int = 0,
) -> pb.TraceRequest:
    """A Trace request: ``ranges`` are half-open ``(start, end)`` pairs; ``regions`` and
    ``initiators`` are globs (initiators: ``client``, ``client:7``, or device names);
    ``direction`` is any/read/write; ``kinds`` from ram, rom, romd, mmio, unassigned;
    ``results`` is any/ok/fault; ``sample_rate`` in (0, 1]."""
    directions = {"any": pb.ANY_DIRECTION, "read": pb.READS, "write": pb.WRITES}
    outcomes = {"any": pb.ANY_RESULT, "ok": pb.OK_ONLY, "fault": pb.FAULTS_ONLY}
    if direction not in directions:
        raise ValueError(f"direction {direction!r} is not any, read or write")
    if results not in outcomes:
        raise ValueError(f"results {results!r} is not any, ok or fault")
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate {sample_rate} is not in (0, 1]")
    for name, value in (("max_data_bytes", max_data_bytes), ("queue_capacity", queue_capacity)):
        if not 0 <= value < 1 << 32:
            raise ValueError(f"{name} {value} is not in 0..2**32-1 (0: the server's default)")
    req = pb.TraceRequest(
        address_spaces=list(address_spaces),
        regions=list(regions),
        direction=directions[direction],
        kinds=list(kinds),
        initiators=list(initiators),
        results=outcomes[results],
        sample_rate=0.0 if sample_rate >= 1 else sample_rate,
        max_data_bytes=max_data_bytes,
        queue_capacity=queue_capacity,
    )
    for start, end in ranges:
        if not 0 <= start < end <= 1 << 64:
            raise ValueError(f"range {start:#x}..{end:#x} is empty or outside 0..2**64")
        req.ranges.add(start=start, size=size_to_pb(end - start))
    return req


def event_dict(e: pb.TraceEvent) -> dict[str, Any]:
    """A JSON-friendly record of one event (gaps are ``{"lost": N}``)."""
    if e.lost:
        return {"lost": e.lost}
    return {
        "seq": e.seq,
        "timestamp_ns": e.timestamp_ns,
        "address_space": e.address_space,
        "addr": e.addr,
        "size": e.size,
        "dir": "write" if e.write else "read",
        "data": e.data.hex(),
        "data_truncated": e.data_truncated,
        "result": e.result,
        "result_name": result_names(e.result),
        "region": e.region,
        "offset": e.offset,
        "kind": e.kind,
        "initiator": e.initiator,
        "requester_id": e.requester_id,
        "latency_ns": e.latency_ns,
    }


def jsonl(e: pb.TraceEvent) -> str:
    return json.dumps(event_dict(e), separators=(",", ":")) + "\n"


_RED, _DIM, _RESET = "\x1b[31;1m", "\x1b[2m", "\x1b[0m"


def text(e: pb.TraceEvent, color: bool = False) -> str:
    """One readable line: address, size, direction, value, region+offset, initiator, result."""
    if e.lost:
        line = f"... {e.lost} event{'s' if e.lost != 1 else ''} lost (the trace fell behind) ..."
        return (_DIM + line + _RESET if color else line) + "\n"
    arrow = "W" if e.write else "R"
    if e.size <= 8 and len(e.data) == e.size and e.size:
        value = f"{int.from_bytes(e.data, 'little'):#0{2 + 2 * e.size}x}"
    else:
        value = e.data.hex() + ("..." if e.data_truncated else "")
    where = f"{e.region}+{e.offset:#x}" if e.region else "(hole)"
    who = e.initiator if e.initiator != "client" else f"client:{e.requester_id}"
    latency = f" {e.latency_ns / 1000:.0f}us" if e.latency_ns else ""
    result = result_names(e.result)
    line = (
        f"{e.seq:>8} {e.address_space:<8} {e.addr:#018x} {arrow}{e.size:<3} {value:<18} "
        f"{where:<24} {e.kind:<10} {who:<12} {result}{latency}"
    )
    if color and e.result:
        line = _RED + line + _RESET
    return line + "\n"


class ChromeTrace:
    """Chrome trace-event JSON (opens in Perfetto and chrome://tracing): one track per region
    (process "regions") and one per initiator (process "initiators"); each access is a
    complete event on both, lasting its device latency (or 1 us)."""

    REGIONS, INITIATORS = 1, 2

    def __init__(self, out: Any) -> None:
        self.out = out
        self.tracks: dict[tuple[int, str], int] = {}
        self.first = True
        out.write("[\n")
        self._emit(
            {"ph": "M", "pid": self.REGIONS, "name": "process_name", "args": {"name": "regions"}}
        )
        self._emit(
            {
                "ph": "M",
                "pid": self.INITIATORS,
                "name": "process_name",
                "args": {"name": "initiators"},
            }
        )

    def _emit(self, record: dict[str, Any]) -> None:
        self.out.write(("" if self.first else ",\n") + json.dumps(record, separators=(",", ":")))
        self.first = False

    def _track(self, pid: int, name: str) -> int:
        key = (pid, name)
        tid = self.tracks.get(key)
        if tid is None:
            tid = self.tracks[key] = len(self.tracks) + 1
            self._emit(
                {"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": name}}
            )
        return tid

    def write(self, e: pb.TraceEvent) -> None:
        if e.lost:
            self._emit(
                {
                    "ph": "i",
                    "pid": self.INITIATORS,
                    "tid": 0,
                    "s": "g",
                    "name": f"{e.lost} events lost",
                    "ts": 0,
                }
            )
            return
        args = event_dict(e)
        dur = max(e.latency_ns / 1000.0, 1.0)
        ts = (e.timestamp_ns - e.latency_ns) / 1000.0
        name = f"{'W' if e.write else 'R'}{e.size} {e.addr:#x}"
        who = e.initiator if e.initiator != "client" else f"client:{e.requester_id}"
        for pid, track in ((self.REGIONS, e.region or "(hole)"), (self.INITIATORS, who)):
            self._emit(
                {
                    "ph": "X",
                    "pid": pid,
                    "tid": self._track(pid, track),
                    "ts": ts,
                    "dur": dur,
                    "name": name,
                    "cat": e.kind,
                    "args": args,
                }
            )

    def close(self) -> None:
        self.out.write("\n]\n")


def read_recording(text_: str) -> list[dict[str, Any]]:
    """The access events of a recording in JSON Lines or Chrome format, in order."""
    stripped = text_.lstrip()
    if stripped.startswith("["):
        try:
            records = json.loads(stripped)
        except json.JSONDecodeError:
            records = json.loads(stripped.rstrip().rstrip(",") + "]")  # a recording cut short
        seen: set[int] = set()
        events = []
        for r in records:
            args = r.get("args", {})
            if r.get("ph") == "X" and "seq" in args and args["seq"] not in seen:
                seen.add(args["seq"])
                events.append(args)
        return sorted(events, key=lambda a: a["seq"])
    events = []
    for n, line in enumerate(text_.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"line {n}: not JSON ({e.msg})") from None
        if "seq" in record:
            events.append(record)
    return events
