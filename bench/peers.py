"""Peers benchmark: a forwarded 4-byte read of a register served by QEMU's PL011 through
`mmiobus device qemu` (qtest), and of the example RTL register block through `mmiobus device
rtl` (Icarus Verilog under cocotb), each against the same read served by a Python device
process (the scratch RAM model), in alternating rounds (rows: the median round; ratios paired
per round). Beside them, each peer's own rate without the bus: qtest reads from this process,
and APB reads inside the simulator (its BENCH command).

Targets (issue "QEMU and RTL as peers"): QEMU through the adapter >= 0.8x the Python device
process; the RTL adapter's ratio is reported, with the simulator's own rate.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mmiobus.v1 import bus_pb2_grpc
from network import DURATION, MMIOBUS, ROUNDS, Row, _median, _start, _stop, _verdict

from devices import stream_one

HERE = Path(__file__).resolve().parent
REGBLOCK = HERE.parent / "examples" / "rtl" / "regblock.v"
PYTHON_DEV, QEMU_DEV, RTL_DEV = 0x10000000, 0x20000000, 0x30000000
PL011_PERIPHID0, REGBLOCK_ID = 0xFE0, 0x0
MACHINE = """\
address_spaces: [{name: memory, root: system}]
regions:
  - name: system
    kind: container
    size: 2**64
    subregions:
      - {name: ram, kind: ram, size: 1M}
      - {name: dev, kind: mmio, addr: 0x10000000, size: 0x1000, device: bench,
         valid: {min: 1, max: 8}, impl: {min: 1, max: 8}}
"""


def _device(cmd: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving" not in line:
        raise RuntimeError(f"{' '.join(cmd[:3])} did not start")
    return proc


async def _rows(bus_addr: str, targets: dict[str, int]) -> dict[str, list[Row]]:
    import grpc

    samples: dict[str, list[Row]] = {k: [] for k in targets}
    async with grpc.aio.insecure_channel(bus_addr) as ch:
        stub = bus_pb2_grpc.BusStub(ch)
        for _ in range(ROUNDS):
            for key, addr in targets.items():
                samples[key].append(await _read_rate(stub, key, addr))
    return samples


async def _read_rate(stub: bus_pb2_grpc.BusStub, name: str, addr: int) -> Row:
    import devices

    devices.DEVICE_ADDR = addr  # stream_one reads devices.DEVICE_ADDR
    return await stream_one(stub, name)


async def _qtest_rate() -> float:
    from mmiobus.qemu.launch import Qemu, QemuConfig

    qemu = await Qemu.start(QemuConfig(shutil.which("qemu-system-aarch64") or "", "virt", ["none"]))
    try:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < DURATION:
            qemu.qtest.read(0x9000000 + PL011_PERIPHID0, 4)
            n += 1
        return n / (time.perf_counter() - start)
    finally:
        await qemu.stop()


async def _simulator_rates() -> tuple[float, float]:
    """(APB reads/s inside the simulator, reads/s over its socket from this process)."""
    from mmiobus.rtl.device import SimOptions, Simulator

    sim = await Simulator.start([str(REGBLOCK)], "regblock", SimOptions())
    try:
        n = 5000
        sim.call("BENCH 500")  # warm up: the simulator's first transfers cost more
        inside = n / float(sim.call(f"BENCH {n}").split()[1])
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < DURATION:
            sim.call("R 0x0 4")
            count += 1
        return inside, count / (time.perf_counter() - start)
    finally:
        await sim.stop()


def main() -> list[str]:
    lines = [
        f"peers: forwarded 4-byte reads, one in flight, {DURATION:g} s per row; median of "
        f"{ROUNDS} alternating rounds",
        f"  {'row':<52}{'ops/s':>12}{'p50 us':>10}{'p99 us':>10}",
    ]
    have_qemu = shutil.which("qemu-system-aarch64") is not None
    have_rtl = shutil.which("iverilog") is not None
    try:
        import cocotb  # noqa: F401
    except ImportError:
        have_rtl = False
    targets = {"python": PYTHON_DEV}
    with tempfile.TemporaryDirectory() as tmp:
        machine = Path(tmp) / "peers.yaml"
        machine.write_text(MACHINE)
        procs = []
        try:
            bus, addrs = _start([MMIOBUS, "serve", "--config", str(machine), "--listen",
                                 "127.0.0.1:0", "--listen", f"unix:{tmp}/b.sock"])  # fmt: skip
            procs.append(bus)
            server = ["--server", addrs[0]]
            procs.append(_device([MMIOBUS, "device", "run", "mmiobus.devices.models.scratch:"
                                  "ScratchRam", *server, "--claim", "dev", "--name", "bench"]))  # fmt: skip
            if have_qemu:
                procs.append(_device([MMIOBUS, "device", "qemu", *server, "--arch", "aarch64",
                                      "--machine", "virt", "--at", f"{QEMU_DEV:#x}:4K=0x9000000",
                                      "--serial", "none", "--name", "qemu"]))  # fmt: skip
                targets["qemu"] = QEMU_DEV + PL011_PERIPHID0
            if have_rtl:
                procs.append(_device([MMIOBUS, "device", "rtl", str(REGBLOCK), "--top",
                                      "regblock", *server, "--at", f"{RTL_DEV:#x}:4K"]))  # fmt: skip
                targets["rtl"] = RTL_DEV + REGBLOCK_ID
            import uvloop

            samples = uvloop.run(_rows(addrs[0], targets))
        finally:
            for p in reversed(procs):
                _stop(p)
    names = {
        "python": "Python device process (scratch RAM)",
        "qemu": "QEMU's PL011 through device qemu (qtest)",
        "rtl": "RTL register block through device rtl (Icarus)",
    }
    for key, rows in samples.items():
        row = _median(rows)
        lines.append(f"  {names[key]:<52}{row.ops:>12,.0f}{row.p50:>10,.0f}{row.p99:>10,.0f}")

    def paired(key: str) -> float:
        """Median over rounds of the peer's rate / the Python device's, rates from each
        round's median latency (one in flight: a read's typical cost; a scheduling hiccup
        of this shared machine moves a mean, not a median)."""
        pairs = zip(samples[key], samples["python"], strict=True)
        return statistics.median(b.p50 / o.p50 for o, b in pairs)

    def paired_ops(key: str) -> float:
        pairs = zip(samples[key], samples["python"], strict=True)
        return statistics.median(o.ops / b.ops for o, b in pairs)

    lines.append("  ratios: peer / Python device process, paired per round (median over rounds)")
    lines.append("  of p50 latencies; in brackets the same for ops/s")
    if have_qemu:
        lines.append(f"    {'QEMU through the adapter:':<40}{_verdict(paired('qemu'), 0.8)}"
                     f"  ({paired_ops('qemu'):.2f}x)")  # fmt: skip
        lines.append(f"    {'qtest alone (no bus), reads/s:':<40}{uvloop.run(_qtest_rate()):,.0f}")
    else:
        lines.append("    QEMU: skipped (apt-get install qemu-system-arm)")
    if have_rtl:
        inside, socket_rate = uvloop.run(_simulator_rates())
        lines.append(f"    {'RTL through the adapter:':<40}{paired('rtl'):.2f}x (reported)"
                     f"  ({paired_ops('rtl'):.2f}x)")  # fmt: skip
        lines.append(f"    {'simulator alone, APB reads/s:':<40}{inside:,.0f}")
        lines.append(f"    {'simulator over its socket, reads/s:':<40}{socket_rate:,.0f}")
    else:
        lines.append("    RTL: skipped (apt-get install iverilog; pip install 'mmiobus[rtl]')")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
