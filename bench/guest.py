"""Guest benchmark: real firmware (Debian's OpenSBI, to the end of its boot report) on the CPU
front-end with the bus as its memory, against the same firmware on the same engine with the
UART as a local hook (standalone), measured in the same run; plus one synchronous guest read of
a device process's register against a raw gRPC stream round trip between two processes, and
the RPCs a guest running from RAM costs. Instruction counting is off everywhere (it costs the
same in every setup and would only dilute the ratios).

Targets (issue "Real guests on the bus"), each a ratio to the standalone boot:
  CPU in the server, 16550 in a device process: <= 15x
  CPU in the server, 16550 in the server:        <= 3x
  CPU in its own process, 16550 in a device process: <= 30x
  one guest read of a device process's register, CPU in the server: <= 1.3x a raw stream round
  trip; guest code running from RAM with no MMIO: 0 RPCs per million instructions.

The device process runs as `mmiobus device run` starts it by default; rows marked --pin repeat
a setup with `device run --pin` (its threads on one core), and its read is also set against a
raw round trip whose two processes are pinned alike (like for like, reported: the target's raw
round trip is the one between two processes as they run by default). The CPU polls for the
bus's answers as it does by default (`--poll-max-us`, see docs/cpu.md); the raw client does not.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mmiobus.machine import Machine
from mmiobus.machine.builtin import builtin_text
from network import MMIOBUS, ROUNDS, _start, _stop

HERE = Path(__file__).resolve().parent
OPENSBI = Path("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin")
UART = "mmiobus.devices.models.uart16550:Uart16550"
PAYLOAD = 0x80200000
READS = 2000
WALL = re.compile(r"([\d,.]+) ms")


# -- a few RV64 instructions, for the guests of this benchmark ---------------------------------


def _i(imm: int, rs1: int, f3: int, rd: int, op: int) -> int:
    return ((imm & 0xFFF) << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op


def _lui(rd: int, imm20: int) -> int:
    return (imm20 << 12) | (rd << 7) | 0x37


def _bne(rs1: int, rs2: int, off: int) -> int:
    o = off & 0x1FFF
    return (((o >> 12) & 1) << 31 | ((o >> 5) & 0x3F) << 25 | rs2 << 20 | rs1 << 15 | 1 << 12
            | ((o >> 1) & 0xF) << 8 | ((o >> 11) & 1) << 7 | 0x63)  # fmt: skip


def _words(*words: int) -> bytes:
    return b"".join(struct.pack("<I", w) for w in words)


T0, T1, T2, T3, T4 = 5, 6, 7, 28, 29
# sifive_test <- 0x5555 (power off), then wait there (jal x0, 0) for the run to end
POWER_OFF = (_lui(T3, 0x100), _lui(T4, 0x5), _i(0x555, T4, 0, T4, 0x13),
             (T4 << 20) | (T3 << 15) | (2 << 12) | 0x23, 0x0000006F)  # fmt: skip


def _device_reads(n: int) -> bytes:
    """Read the UART's line status register ``n`` times, then power off."""
    return _words(
        _lui(T0, 0x10000),  # t0 = 0x10000000
        _i(n, 0, 0, T1, 0x13),  # t1 = n
        _i(5, T0, 4, T2, 0x03),  # loop: lbu t2, 5(t0)
        _i(-1, T1, 0, T1, 0x13),  # addi t1, t1, -1
        _bne(T1, 0, -8),  # bnez t1, loop
        *POWER_OFF,
    )


def _ram_loop(iterations: int) -> bytes:
    """``iterations`` turns of a two-instruction loop in RAM, then power off."""
    return _words(
        _lui(T1, iterations >> 12),
        _i(-1, T1, 0, T1, 0x13),  # loop: addi t1, t1, -1
        _bne(T1, 0, -4),
        *POWER_OFF,
    )


# -- the setups ----------------------------------------------------------------------------------


def _ms(text: str) -> float:
    match = WALL.search(text.split(" traps, ")[-1])
    assert match is not None, text
    return float(match.group(1).replace(",", ""))


def standalone_ms() -> float:
    from mmiobus.cpu.standalone import standalone

    machine = Machine.builtin("riscv-virt")
    board, _uart = standalone(machine)
    board.load(0x80000000, OPENSBI.read_bytes(), "firmware")
    result = board.engine.run(until_pc=PAYLOAD, timeout_seconds=60)
    return result.wall_seconds * 1000


def _machine_file(tmp: str, uart_in_server: bool) -> str:
    spec = yaml.safe_load(builtin_text("riscv-virt"))
    if uart_in_server:
        for region in spec["regions"][0]["subregions"]:
            if region.get("id") == "uart0":
                region["device"] = {"class": UART, "args": {"output": "none", "input": "none"}}
    path = Path(tmp) / ("in-server.yaml" if uart_in_server else "process.yaml")
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _device(server: str, pin: bool = False) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [MMIOBUS, "device", "run", UART, "--server", server, "--claim", "uart0",
         "--arg", "output=none", "--arg", "input=none", *(["--pin"] if pin else [])],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and "serving" in proc.stdout.readline()
    return proc


def in_server_ms(
    tmp: str, firmware: Path, until: int | None, uart_in_server: bool, pin_device: bool = False
) -> float:
    """One run of a CPU in the server (a fresh server): its wall time in ms."""
    log = Path(tmp) / "server.log"
    args = [MMIOBUS, "serve", "--config", _machine_file(tmp, uart_in_server), "--listen",
            "127.0.0.1:0", "--listen", f"unix:{tmp}/s.sock", "--cpu", "cpu0", "--no-count",
            "--firmware", str(firmware)]  # fmt: skip
    if until is not None:
        args += ["--until", hex(until)]
    os.environ["MMIOBUS_BENCH_LOG"] = str(log)
    server, addrs = _start(args)
    del os.environ["MMIOBUS_BENCH_LOG"]
    device = None if uart_in_server else _device(addrs[0], pin_device)
    try:
        deadline = time.monotonic() + 120
        while "CPU stopped" not in log.read_text():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the CPU did not stop:\n{log.read_text()[-2000:]}")
            time.sleep(0.02)
        line = next(ln for ln in log.read_text().splitlines() if "CPU stopped" in ln)
        return _ms(line)
    finally:
        if device is not None:
            _stop(device)
        _stop(server)
        log.unlink()


def process_ms(server: str, firmware: Path, until: int | None) -> tuple[float, str]:
    """One run of `mmiobus cpu run` against ``server``: (its wall time in ms, its summary)."""
    args = [MMIOBUS, "cpu", "run", "--server", server, "--no-count", "--firmware", str(firmware)]
    if until is not None:
        args += ["--until", hex(until)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    summary = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr
    if out.returncode not in (0,):
        raise RuntimeError(f"cpu run failed: {out.stderr[-2000:]}")
    return _ms(summary), summary


def stream_round_trip_us(pinned: bool = False) -> float:
    """A raw gRPC stream round trip between two processes (bench/ceiling_server.py); with
    ``pinned``, each process's threads on a core of its own (as ``mmiobus.affinity`` pins a
    process), else where the scheduler puts them."""

    import grpc
    import uvloop
    from mmiobus.affinity import pin_process, unpin_process
    from mmiobus.v1 import bus_pb2 as pb
    from mmiobus.v1 import bus_pb2_grpc

    ceiling, addrs = _start([sys.executable, str(HERE / "ceiling_server.py"), "127.0.0.1:0"], 1)
    ours = None
    if pinned:
        first, second = sorted(os.sched_getaffinity(0))[:2]
        for tid in os.listdir(f"/proc/{ceiling.pid}/task"):
            with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
                os.sched_setaffinity(int(tid), {first})
        ours = pin_process(second)

    async def measure() -> float:
        async with grpc.aio.insecure_channel(addrs[0]) as channel:
            call = bus_pb2_grpc.BusStub(channel).RwStream()
            message = pb.RwStreamRequest(accesses=[pb.RwRequest(addr=0x1000, read=1)])
            for _ in range(200):
                await call.write(message)
                await call.read()
            start = time.perf_counter()
            for _ in range(READS):
                await call.write(message)
                await call.read()
            elapsed = time.perf_counter() - start
            await call.done_writing()
            return elapsed / READS * 1e6

    try:
        return uvloop.run(measure())
    finally:
        unpin_process(ours)
        _stop(ceiling)


def _read_verdict(ratio: float) -> str:
    return f"{ratio:.2f}x (target <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})"


def main() -> list[str]:
    if not OPENSBI.exists():
        return [f"guest: skipped: {OPENSBI} is missing (apt-get install opensbi)"]
    lines = [
        f"guest: OpenSBI to {PAYLOAD:#x} on riscv-virt (3,590 MMIO accesses); median of "
        f"{ROUNDS} rounds, wall time of the run (start-up excluded)",
        f"  {'setup':<58}{'ms':>9}{'ratio':>9}",
    ]
    pinning = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    with tempfile.TemporaryDirectory() as tmp:
        reads = Path(tmp) / "reads.bin"
        reads.write_bytes(_device_reads(READS))
        ram = Path(tmp) / "ram.bin"
        ram.write_bytes(_ram_loop(1 << 22))
        server, addrs = _start([MMIOBUS, "serve", "--machine", "riscv-virt", "--listen",
                                "127.0.0.1:0", "--listen", f"unix:{tmp}/b.sock"])  # fmt: skip
        device = _device(addrs[0])
        keys = ("base", "ss", "sp", "sp pin", "pp", "read", "read pin")
        samples: dict[str, list[float]] = {k: [] for k in keys}
        try:
            for _ in range(ROUNDS):
                samples["base"].append(standalone_ms())
                samples["ss"].append(in_server_ms(tmp, OPENSBI, PAYLOAD, uart_in_server=True))
                samples["sp"].append(in_server_ms(tmp, OPENSBI, PAYLOAD, uart_in_server=False))
                samples["pp"].append(process_ms(addrs[0], OPENSBI, PAYLOAD)[0])
                samples["read"].append(in_server_ms(tmp, reads, None, uart_in_server=False))
                if pinning:
                    samples["sp pin"].append(
                        in_server_ms(tmp, OPENSBI, PAYLOAD, uart_in_server=False, pin_device=True)
                    )
                    samples["read pin"].append(
                        in_server_ms(tmp, reads, None, uart_in_server=False, pin_device=True)
                    )
            ram_ms, ram_summary = process_ms(addrs[0], ram, None)
            bus_accesses = re.search(r"\bbus ([\d,]+)", ram_summary)
            cpu_dma = int(bus_accesses.group(1).replace(",", "")) if bus_accesses else 0
        finally:
            _stop(device)
            _stop(server)
        rtt = statistics.median(stream_round_trip_us() for _ in range(3))
        rtt_pinned = (
            statistics.median(stream_round_trip_us(True) for _ in range(3)) if pinning else 0
        )
    rows = [
        ("standalone: UART as a local hook (the baseline)", "base", None),
        ("CPU in the server, 16550 in the server", "ss", 3.0),
        ("CPU in the server, 16550 in a device process", "sp", 15.0),
        ("  the same, the device process with --pin", "sp pin", None),
        ("CPU in its own process, 16550 in a device process", "pp", 30.0),
    ]
    for name, key, target in rows:
        if not samples[key]:
            continue
        ms = statistics.median(samples[key])
        ratios = sorted(v / b for v, b in zip(samples[key], samples["base"], strict=True))
        ratio = statistics.median(ratios)
        verdict = "" if target is None else (
            f"  (target <= {target:g}x: {'met' if ratio <= target else 'NOT met'}; rounds "
            f"{ratios[0]:.1f}..{ratios[-1]:.1f}x)"
        )  # fmt: skip
        lines.append(f"  {name:<58}{ms:>9.1f}{ratio:>8.1f}x{verdict}")
    read_us = statistics.median(samples["read"]) * 1000 / READS
    lines.append(
        f"  one guest read of a device process's register, CPU in the server: {read_us:.0f} us; "
        f"a raw gRPC stream round trip between two processes: {rtt:.0f} us: "
        f"{_read_verdict(read_us / rtt)}"
    )
    if pinning:
        pinned_us = statistics.median(samples["read pin"]) * 1000 / READS
        lines.append(
            f"    the device process with --pin: {pinned_us:.0f} us: {pinned_us / rtt:.2f}x the "
            f"raw round trip; like for like, against a raw round trip with each process on a "
            f"core of its own as ours are ({rtt_pinned:.0f} us): {pinned_us / rtt_pinned:.2f}x "
            f"(reported)"
        )
    instructions = 2 * (1 << 22)
    lines.append(
        f"  guest code from RAM, no MMIO: {cpu_dma} RPCs for {instructions / 1e6:.1f} M "
        f"instructions ({ram_ms:.0f} ms) = {cpu_dma / (instructions / 1e6):.1f} per million "
        f"(target 0: {'met' if cpu_dma == 0 else 'NOT met'})"
    )
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
