"""How a CPU meets the bus, seen from a device the test plays itself (``RawDevice``): the CPU
starts only once the device processes its machine declares serve their regions, a guest's
store and the load after it reach the device together (one message, in order), and a store
reaches the device even when the guest never touches the bus again. Both for a CPU in its own
process (`mmiobus cpu run`) and one in the server (`serve --cpu`)."""

from __future__ import annotations

import os
import time

import pytest
from mmiobus.client import Bus
from mmiobus.v1 import devices_pb2
from support.devices import start_device
from support.firmware import start_cpu
from support.guest import RiscvGuest
from support.raw_device import RawDevice
from support.rvasm import Program, beq, jal, la, lbu, ld, li, ref, sb, sd, sw
from support.servers import start_server
from support.wait import wait_for

BASE, RESULT = 0x80000000, 0x80100000
UART, TEST = 0x10000000, 0x100000
LSR = 0x60  # what the test's "16550" answers for its line status


def _guest(store_then_load: bool) -> Program:
    """Store "A" to the UART's transmit register; then read its line status into RESULT and
    power off, or spin forever."""
    p = Program(BASE)
    p.labels.update(result=RESULT)
    p.emit(li("t0", UART), li("t1", ord("A")), sb("t1", "t0", 0))
    if store_then_load:
        p.emit(lbu("t2", "t0", 5), la("t3", "result"), sd("t2", "t3"))
        p.emit(li("t0", TEST), li("t1", 0x5555), sw("t1", "t0"))
    p.label("spin")
    p.emit(ref(jal, "spin", "zero"))
    return p


@pytest.fixture(params=["process", "server"])
def where(request) -> str:
    return request.param


def test_cpu_waits_for_its_device_to_claim_then_store_and_load_travel_together(tmp_path, where):
    cpu = RiscvGuest(tmp_path, _guest(store_then_load=True), where)
    try:
        with RawDevice(cpu.server.tcp) as uart:
            uart.hello("uart0")
            wait_for(lambda: "waits for its devices" in cpu.log(), 30, message=cpu.log)
            # Attached but not serving uart0 yet: a CPU started now would read an absent
            # device and stop on a bus fault. Give it the time to do so.
            time.sleep(0.5)
            uart.claim("uart0")
            accesses, messages = uart.accesses(2)
            assert messages == 1  # the held store went out with the load
            store, load = accesses
            assert (store.write, store.offset, store.size, store.value) == (True, 0, 1, ord("A"))
            assert store.posted
            assert (load.write, load.offset, load.size) == (False, 5, 1)
            uart.answer(devices_pb2.AccessReply(id=load.id, value=LSR))
            assert "guest_exit" in cpu.summary()
        with Bus(cpu.server.tcp) as client:
            assert int.from_bytes(client.read(RESULT, 8), "little") == LSR
    finally:
        cpu.stop()


def test_a_store_reaches_the_device_though_the_guest_never_reads_again(tmp_path, where):
    cpu = RiscvGuest(tmp_path, _guest(store_then_load=False), where)
    try:
        with RawDevice(cpu.server.tcp) as uart:
            uart.hello("uart0")
            uart.claim("uart0")
            (store,), _ = uart.accesses(1)  # sent at the end of the CPU's slice
            assert (store.write, store.offset, store.value) == (True, 0, ord("A"))
    finally:
        cpu.stop()


# -- one core for the process while its CPU runs (mmiobus.affinity) ---------------------------

FLAG = 0x80100008  # the guest spins until the test writes it


def _waiting_guest() -> Program:
    """Say it runs (1 at RESULT), spin until FLAG is set, power off."""
    p = Program(BASE)
    p.labels.update(result=RESULT, flag=FLAG)
    p.emit(la("t0", "result"), li("t1", 1), sd("t1", "t0"), la("t0", "flag"))
    p.label("wait")
    p.emit(ld("t1", "t0"), ref(beq, "wait", "t1", "zero"))
    p.emit(li("t0", TEST), li("t1", 0x5555), sw("t1", "t0"))
    p.label("spin")
    p.emit(ref(jal, "spin", "zero"))
    return p


def _cores(pid: int) -> dict[int, set[int]]:
    """The cores each thread of process ``pid`` may run on, by thread id (a thread that ends
    between the listing and the question is left out)."""
    cores = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            cores[int(tid)] = os.sched_getaffinity(int(tid))
        except ProcessLookupError:
            continue
    return cores


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and two cores to see threads share one",
)
@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "no-pin"])
def test_the_engine_and_the_loop_share_a_core_while_the_cpu_runs(tmp_path, where, pinned):
    image = tmp_path / "guest.bin"
    image.write_bytes(_waiting_guest().to_bytes())
    extra = [] if pinned else ["--no-pin"]
    in_server = ["--cpu", "cpu0", "--firmware", str(image)] if where == "server" else []
    server = start_server("--machine", "riscv-virt", *in_server, *extra)
    uart = start_device("mmiobus.devices.models.uart16550:Uart16550", server.tcp, "--claim",
                        "uart0", "--arg", "output=none", "--arg", "input=none")  # fmt: skip
    process = None
    if where == "process":
        process = start_cpu(server.tcp, "--firmware", str(image), "--timeout", "60", *extra)
    pid = process.proc.pid if process is not None else server.proc.pid
    everything = os.sched_getaffinity(pid)
    try:
        with Bus(server.tcp) as client:
            wait_for(lambda: client.read(RESULT, 8) == (1).to_bytes(8, "little"), 60)
            cores = _cores(pid)
            main = cores[pid]  # the engine's thread in `cpu run`, the loop's in the server
            if pinned:  # every thread: the engine's, the loop's, gRPC's
                assert len(main) == 1 and len(cores) > 2, cores
                assert all(c == main for c in cores.values()), cores
            else:
                assert all(c == everything for c in cores.values()), cores
            if process is not None:  # the server's threads too, while the CPU is attached
                bus = _cores(server.proc.pid)
                one = {frozenset(c) for c in bus.values()}
                assert (
                    (len(one) == 1 and len(next(iter(one))) == 1)
                    if pinned
                    else (one == {frozenset(everything)})
                ), bus
            client.write(FLAG, (1).to_bytes(8, "little"))
        if process is not None:
            status, _out, log = process.wait()
            assert status == 0, log
        else:
            wait_for(lambda: "CPU stopped" in server.log(), 60, message=server.log)
        # The server's threads get their cores back when the CPU stops or leaves.
        spid = server.proc.pid
        given_back = lambda: all(c == everything for c in _cores(spid).values())  # noqa: E731
        wait_for(given_back, 10)
    finally:
        uart.stop()
        if process is not None:
            process.kill()
        assert server.stop() == 0, server.log()


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux and two cores to see threads share one",
)
@pytest.mark.parametrize("pinned", [True, False], ids=["pin", "default"])
def test_a_device_process_keeps_its_threads_on_one_core_with_pin(pinned):
    server = start_server("--machine", "riscv-virt")
    uart = start_device("mmiobus.devices.models.uart16550:Uart16550", server.tcp, "--claim",
                        "uart0", "--arg", "output=none", "--arg", "input=none",
                        *(["--pin"] if pinned else []))  # fmt: skip
    try:
        everything = os.sched_getaffinity(server.proc.pid)
        with Bus(server.tcp) as client:  # it still serves
            assert client.read(UART + 5, 1)[0] & 0x60 == 0x60  # its line status: idle
        cores = _cores(uart.proc.pid)
        if pinned:
            assert len(cores) > 2 and len({frozenset(c) for c in cores.values()}) == 1, cores
            assert len(next(iter(cores.values()))) == 1, cores
        else:
            assert all(c == everything for c in cores.values()), cores
    finally:
        uart.stop()
        assert server.stop() == 0, server.log()
