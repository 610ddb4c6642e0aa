"""Tracing benchmark: Rw unary and RwBatch throughput (4-byte RAM reads) with no subscriber,
with one subscriber whose filter matches everything (reading at full rate), one whose filter
matches nothing, and one that reads slowly; the subscriber is a separate process. Each
measurement with a subscriber sits between two without one, and its ratio is to their mean:
on a small shared machine the rate drifts by more than the effects measured, so only
neighbours are compared. Figures are medians over rounds.

The slow subscriber (one stream message a second) is measured once it has fallen behind, as it
is for all but the first moments of its life. Until then the bus serves it like a full-rate one:
its queue fills, and so does what the transport takes on its behalf — the HTTP/2 flow-control
window, which gRPC grows (BDP probing) to megabytes on a fast link, about 100,000 events. That is
a one-off cost, not a rate; so that rounds need not spend seconds on it, the slow subscriber's
channel keeps the initial 64 KiB window. The last line reports how many events it received
(queue and window) and how many it was told it lost.

Targets (issue "Remote tracing"): full-rate subscriber >= 0.9x (unary) and >= 0.5x (batch) of
the no-subscriber rate; non-matching or slow subscriber >= 0.95x.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
from mmiobus.v1 import bus_pb2_grpc
from network import MMIOBUS, Row, _median, _start, _stop, _verdict, batch, unary

HERE = Path(__file__).resolve().parent
ROUNDS = int(os.environ.get("MMIOBUS_BENCH_ROUNDS", "7"))
CASES = ["no subscriber", "all", "none", "slow"]


def _switch(sub: subprocess.Popen[str], mode: str) -> str:
    assert sub.stdin is not None and sub.stdout is not None
    sub.stdin.write(mode + "\n")
    sub.stdin.flush()
    return sub.stdout.readline().strip()


async def _round(stub: bus_pb2_grpc.BusStub, sub: subprocess.Popen[str], samples: dict) -> None:
    for kind, measure in (
        ("unary", lambda name: unary(stub, name, 1)),
        ("batch", lambda name: batch(stub, name)),
    ):
        label = "Rw" if kind == "unary" else "RwBatch"
        before = await measure(f"{label}, no subscriber")
        samples[(kind, "no subscriber")].append(before)
        for case in CASES[1:]:
            _switch(sub, case)
            if case == "slow":  # let it fall behind first (see the module's docstring)
                await batch(stub, "falling behind")
            row = await measure(f"{label}, {case}")
            report = _switch(sub, "off")
            after = await measure(f"{label}, no subscriber")
            samples[(kind, case)].append(row)
            samples[(kind, "no subscriber")].append(after)
            samples["ratios"][(kind, case)].append(row.ops * 2 / (before.ops + after.ops))
            if case == "slow":
                samples["last"] = report
            before = after


def main() -> list[str]:
    import uvloop

    lines = [
        f"tracing: 4-byte RAM reads; median of {ROUNDS} rounds; the subscriber is another process",
        f"  {'row':<46}{'ops/s':>12}{'p50 us':>10}{'p99 us':>10}",
    ]
    samples: dict = {(k, c): [] for k in ("unary", "batch") for c in CASES}
    samples["ratios"] = {(k, c): [] for k in ("unary", "batch") for c in CASES[1:]}
    with tempfile.TemporaryDirectory() as tmp:
        bus, addrs = _start(
            [MMIOBUS, "serve", "--listen", "127.0.0.1:0", "--listen", f"unix:{tmp}/b.sock"]
        )
        sub = subprocess.Popen(
            [sys.executable, str(HERE / "trace_subscriber.py"), addrs[0]],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:

            async def run() -> None:
                async with grpc.aio.insecure_channel(addrs[0]) as ch:
                    stub = bus_pb2_grpc.BusStub(ch)
                    for _ in range(ROUNDS):
                        await _round(stub, sub, samples)

            uvloop.run(run())
        finally:
            if sub.stdin:
                sub.stdin.close()
            sub.wait(10)
            _stop(bus)
    rows: dict[tuple[str, str], Row] = {
        k: _median(v) for k, v in samples.items() if isinstance(k, tuple) and v
    }
    for row in rows.values():
        lines.append(f"  {row.name:<46}{row.ops:>12,.0f}{row.p50:>10,.0f}{row.p99:>10,.0f}")

    lines.append(
        "  ratios to no subscriber (each to the mean of its two neighbours; median [lowest..highest"
        " round]):"
    )
    for kind, full in (("unary", 0.9), ("batch", 0.5)):
        for case, label, target in (
            ("all", "full-rate", full),
            ("none", "non-matching", 0.95),
            ("slow", "slow", 0.95),
        ):
            r = samples["ratios"][(kind, case)]
            lines.append(
                f"    {f'{kind}, {label} subscriber:':<40}{_verdict(statistics.median(r), target)}"
                f"  [{min(r):.2f}..{max(r):.2f}]"
            )
    last = samples["last"].split()
    lost = int(last[-1]) if len(last) == 4 and last[-1].isdigit() else 0
    lines.append(
        f"  the slow subscriber's last round: it received {last[1] if len(last) == 4 else '?'} "
        f"events (its queue, and what the transport buffered) and was told of {lost} lost"
        + (" (it fell behind; the bus did not wait for it)" if lost else "")
    )
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
