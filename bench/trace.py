"""Tracing benchmark: Rw unary and RwBatch throughput (4-byte RAM reads) with no subscriber,
with one subscriber whose filter matches everything (reading at full rate), one whose filter
matches nothing, and one that reads slowly; the subscriber is a separate process. Rounds
alternate the four cases; ratios are paired within a round.

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
    for case in CASES:
        _switch(sub, "off" if case == "no subscriber" else case)
        samples[("unary", case)].append(await unary(stub, f"Rw, {case}", 1))
        samples[("batch", case)].append(await batch(stub, f"RwBatch, {case}"))
    samples["last"] = _switch(sub, "off")


def main() -> list[str]:
    import uvloop

    lines = [
        f"tracing: 4-byte RAM reads; median of {ROUNDS} alternating rounds; the subscriber is "
        "another process",
        f"  {'row':<46}{'ops/s':>12}{'p50 us':>10}{'p99 us':>10}",
    ]
    samples: dict = {(k, c): [] for k in ("unary", "batch") for c in CASES}
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
        k: _median(v) for k, v in samples.items() if isinstance(k, tuple)
    }
    for row in rows.values():
        lines.append(f"  {row.name:<46}{row.ops:>12,.0f}{row.p50:>10,.0f}{row.p99:>10,.0f}")

    def paired(kind: str, case: str) -> float:
        return statistics.median(
            a.ops / b.ops
            for a, b in zip(samples[(kind, case)], samples[(kind, "no subscriber")], strict=True)
        )

    lines.append("  ratios to no subscriber (median over rounds, paired within a round):")
    for kind, full in (("unary", 0.9), ("batch", 0.5)):
        lines.append(
            f"    {kind + ', full-rate subscriber:':<40}{_verdict(paired(kind, 'all'), full)}"
        )
        lines.append(
            f"    {kind + ', non-matching subscriber:':<40}{_verdict(paired(kind, 'none'), 0.95)}"
        )
        lines.append(f"    {kind + ', slow subscriber:':<40}{_verdict(paired(kind, 'slow'), 0.95)}")
    lines.append(
        f"  the slow subscriber's last round: {samples['last']} (it lost events, the bus did not wait)"
    )
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
