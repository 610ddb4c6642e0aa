"""Bench benchmark: what `mmiobus up` costs the bus, and how long a bench takes to start.

Forwarded reads (client -> server -> scratch RAM device process -> back) on two identical
setups that run side by side: one started by hand (`mmiobus serve` and `mmiobus device run`, no
metrics), one started by `mmiobus up` from a bench file, at a terminal (a pty) so that its live
status line is drawn every second (from the bus's metrics, which are therefore on). Each round
starts both setups afresh, in the opposite order every other round, and measures each row of
both, in the opposite order every other round; rows report the median round, ratios are paired
per round.

Start-up: the time from launching `mmiobus up` until the bus answers its health check (it
prints where it listens) and until every process is ready ("running"), for a bench with only
the bus and for one with three device processes; the median of a few launches.

Target (issue "Test benches"): forwarded reads under `mmiobus up` >= 0.95x those without it.
"""

from __future__ import annotations

import os
import pty
import re
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import grpc
from mmiobus.client import AsyncBus
from mmiobus.v1 import bus_pb2_grpc
from network import MMIOBUS, Row, _median, _start, _stop, _verdict

from devices import MACHINE, library, stream_one

# Rounds differ by up to +-10% on a small shared machine; 15 keep the median steady.
ROUNDS = int(os.environ.get("MMIOBUS_BENCH_ROUNDS", "15"))
LAUNCHES = int(os.environ.get("MMIOBUS_BENCH_LAUNCHES", "3"))
SCRATCH = "mmiobus.devices.models.scratch:ScratchRam"
DEVICE_BENCH = f"""
bus: {{config: machine.yaml, listen: [127.0.0.1:0]}}
processes:
  bench: {{kind: device, class: "{SCRATCH}", claim: dev}}
"""
THREE_DEVICES = """
bus: {config: deploy.yaml, listen: [127.0.0.1:0]}
processes:
  uart0: {kind: device, class: "mmiobus.devices.models.uart16550:Uart16550", claim: uart0,
          args: {output: none, input: none}}
  timer0: {kind: device, class: "mmiobus.devices.models.timer:Timer", claim: timer0}
  dma0: {kind: device, class: "mmiobus.devices.models.dma:DmaEngine", claim: dma0}
"""
LISTENS = re.compile(r"the bus listens on (\S+?),? ")


class UpAtATerminal:
    """`mmiobus up BENCH` on a pseudo-terminal (its status line live), its screen read
    continuously; ``seen(text)`` waits for ``text`` on it and returns when it appeared."""

    def __init__(self, bench: Path) -> None:
        self.main, secondary = pty.openpty()
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            [MMIOBUS, "up", str(bench)], stdin=subprocess.DEVNULL, stdout=secondary,
            stderr=secondary, cwd=bench.parent,
        )  # fmt: skip
        os.close(secondary)
        self.screen = ""
        self.lock = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.main, 65536)
            except OSError:
                break
            if not data:
                break
            with self.lock:
                self.screen = (self.screen + data.decode(errors="replace"))[-200_000:]
                self.lock.notify_all()

    def seen(self, pattern: str, timeout: float = 60) -> tuple[float, re.Match[str]]:
        """Seconds from the launch until ``pattern`` (a regex) showed, and its match."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                m = re.search(pattern, self.screen)
                if m:
                    return time.perf_counter() - self.started, m
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mmiobus up did not show {pattern!r}:\n{self.screen}")
                self.lock.wait(0.05)

    def stop(self) -> None:
        _stop(self.proc)  # type: ignore[arg-type]
        os.close(self.main)


async def _measure(plain: str, under_up: str, samples: dict[str, list[Row]], i: int) -> None:
    """One round: each row once, in the opposite order every other round."""
    async with (
        grpc.aio.insecure_channel(plain) as pch,
        grpc.aio.insecure_channel(under_up) as uch,
        AsyncBus(plain) as plib,
        AsyncBus(under_up) as ulib,
    ):
        p, u = bus_pb2_grpc.BusStub(pch), bus_pb2_grpc.BusStub(uch)
        plan = {
            "plain1": lambda: stream_one(p, "by hand, 1 in flight"),
            "up1": lambda: stream_one(u, "under mmiobus up, 1 in flight"),
            "plain64": lambda: library(plib, "by hand, 64 in flight (AsyncStream)", 64),
            "up64": lambda: library(ulib, "under mmiobus up, 64 in flight (AsyncStream)", 64),
        }
        for key in list(plan) if i % 2 == 0 else reversed(plan):
            samples.setdefault(key, []).append(await plan[key]())


def _by_hand(folder: Path, i: int) -> tuple[list[subprocess.Popen[str]], str]:
    """The bus and the device process started by hand: the processes and the bus's address."""
    bus, addrs = _start([MMIOBUS, "serve", "--config", str(folder / "machine.yaml"),
                         "--listen", "127.0.0.1:0", "--listen", f"unix:{folder}/b{i}.sock"])  # fmt: skip
    dev = subprocess.Popen(
        [MMIOBUS, "device", "run", SCRATCH, "--server", addrs[0], "--claim", "dev",
         "--name", "bench"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert dev.stdout is not None and "serving" in dev.stdout.readline()
    return [bus, dev], addrs[0]


def _under_up(folder: Path) -> tuple[UpAtATerminal, str]:
    """The same bench under `mmiobus up`, once its status line shows the device."""
    up = UpAtATerminal(folder / "bench.yaml")
    _, m = up.seen(LISTENS.pattern)
    up.seen(r"running;")
    up.seen(r"1 device \(bench\)")  # the live status line is drawn
    return up, m.group(1)


def _start_up_times(bench: Path) -> tuple[float, float]:
    """Median seconds to the bus healthy and to every process ready, over LAUNCHES launches."""
    healthy, ready = [], []
    for _ in range(LAUNCHES):
        up = UpAtATerminal(bench)
        try:
            healthy.append(up.seen(r"the bus listens on")[0])
            ready.append(up.seen(r"running;")[0])
        finally:
            up.stop()
    return statistics.median(healthy), statistics.median(ready)


def main() -> list[str]:
    lines = [
        f"benches: forwarded 4-byte reads with and without `mmiobus up` (live status on); "
        f"median of {ROUNDS} alternating rounds",
        f"  {'row':<48}{'ops/s':>12}{'p50 us':>10}{'p99 us':>10}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "machine.yaml").write_text(MACHINE)
        (folder / "bench.yaml").write_text(DEVICE_BENCH)
        here = Path(__file__).resolve().parent
        (folder / "deploy.yaml").write_text((here.parent / "deploy" / "machine.yaml").read_text())
        (folder / "three.yaml").write_text(THREE_DEVICES)
        (folder / "bus.yaml").write_text("bus: {listen: [127.0.0.1:0]}\n")
        samples: dict[str, list[Row]] = {}
        redraws = 0
        for i in range(ROUNDS):
            # Both setups afresh every round, started in the opposite order every other round:
            # with the same processes throughout, the setup started second measured a few
            # percent slower even when both were alike (see bench/auth.py).
            procs: list[subprocess.Popen[str]] = []
            up = None
            try:
                if i % 2 == 0:
                    procs, plain = _by_hand(folder, i)
                    up, under_up = _under_up(folder)
                else:
                    up, under_up = _under_up(folder)
                    procs, plain = _by_hand(folder, i)
                import uvloop

                uvloop.run(_measure(plain, under_up, samples, i))
                redraws += up.screen.count("\r\x1b[K")
            finally:
                if up is not None:
                    up.stop()
                for p in reversed(procs):
                    _stop(p)
        startup = {
            "the bus alone": _start_up_times(folder / "bus.yaml"),
            "the bus and three device processes": _start_up_times(folder / "three.yaml"),
        }
    rows = {k: _median(v) for k, v in samples.items()}
    for row in rows.values():
        lines.append(f"  {row.name:<48}{row.ops:>12,.0f}{row.p50:>10,.0f}{row.p99:>10,.0f}")

    def paired(ours: str, base: str) -> float:
        return statistics.median(
            o.ops / b.ops for o, b in zip(samples[ours], samples[base], strict=True)
        )

    lines.append("  ratios: median over rounds of (under up / by hand) measured in the same round")
    lines.append(f"    {'1 in flight:':<35}{_verdict(paired('up1', 'plain1'), 0.95)}")
    lines.append(f"    {'64 in flight:':<35}{_verdict(paired('up64', 'plain64'), 0.95)}")
    lines.append(f"    (the status line was redrawn {redraws} times meanwhile)")
    lines.append(f"  start-up of `mmiobus up`, median of {LAUNCHES} launches:")
    for what, (healthy, ready) in startup.items():
        lines.append(f"    {what + ':':<40}bus healthy {healthy:.2f} s, every process ready "
                     f"{ready:.2f} s")  # fmt: skip
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
