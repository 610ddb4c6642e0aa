"""Device models on a bare memory system (``mmiobus.devices.direct``): no server, no network,
the same behaviour as on the bus."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from mmiobus.devices import Device, attach
from mmiobus.devices.models.dma import DmaEngine
from mmiobus.devices.models.timer import Timer
from mmiobus.devices.models.uart16550 import Uart16550
from mmiobus.memory import MemorySystem, MemTxResult

DEV = 0x1000_0000
DEV2 = 0x1000_1000


def machine() -> tuple[MemorySystem, object]:
    system = MemorySystem()
    root = system.container("system", 2**64)
    root.add_subregion(0, system.ram("ram", 0x10000))
    return system, system.address_space("memory", root)


def u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


async def test_uart_transmits_what_is_written_to_its_data_register():
    _system, space = machine()
    uart = Uart16550(output="none")
    await attach(uart, space, DEV, name="uart0")
    for byte in b"hi":
        assert await space.write_async(DEV, bytes([byte])) is MemTxResult.OK
    assert bytes(uart.transmitted) == b"hi"
    lsr = await space.read_async(DEV + 5, 1)
    assert lsr.data[0] & 0x60 == 0x60  # transmitter empty


async def test_timer_raises_its_interrupt_line_on_the_host():
    _system, space = machine()
    host = await attach(Timer(), space, DEV, name="timer0")
    try:
        await space.write_async(DEV + 8, u32(200))  # period 200 us
        await space.write_async(DEV, u32(1 | 4))  # enable, irq enable: one shot
        for _ in range(200):
            if host.irqs.get("irq"):
                break
            await asyncio.sleep(0.005)
        assert host.irqs["irq"] is True
        count = int.from_bytes((await space.read_async(DEV + 0xC, 4)).data, "little")
        assert count == 1
    finally:
        await host.stop()


async def test_dma_engine_copies_memory_through_the_address_space():
    _system, space = machine()
    await attach(DmaEngine(), space, DEV, name="dma0")
    await space.write_async(0x100, b"0123456789abcdef")
    for offset, value in ((0x00, 0x100), (0x08, 0x800), (0x10, 16)):
        await space.write_async(DEV + offset, u32(value))
    await space.write_async(DEV + 0x14, u32(1 | 4))  # start, synchronously
    assert (await space.read_async(0x800, 16)).data == b"0123456789abcdef"
    status = int.from_bytes((await space.read_async(DEV + 0x18, 4)).data, "little")
    assert status & 0x2 and not status & 0x4  # done, no error


async def test_dma_into_the_devices_own_registers_is_refused_as_re_entrant():
    _system, space = machine()
    await attach(DmaEngine(), space, DEV, name="dma0")
    for offset, value in ((0x00, 0x100), (0x08, DEV), (0x10, 4)):
        await space.write_async(DEV + offset, u32(value))
    await space.write_async(DEV + 0x14, u32(1 | 4))
    result = int.from_bytes((await space.read_async(DEV + 0x1C, 4)).data, "little")
    assert result & MemTxResult.ACCESS_ERROR


class Echo(Device):
    size = 0x10
    valid = impl = (4, 4)

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    async def read(self, offset: int, size: int) -> int:
        await asyncio.sleep(0)
        return self.value + offset

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 8:
            raise RuntimeError("a broken register")
        self.value = value


async def test_async_handlers_and_raising_handlers_behave_as_on_the_bus():
    _system, space = machine()
    await attach(Echo(), space, DEV2)
    await space.write_async(DEV2, u32(40))
    assert (await space.read_async(DEV2 + 4, 4)).data == u32(44)
    assert await space.write_async(DEV2 + 8, u32(1)) is MemTxResult.ERROR
    assert (await space.read_async(DEV2 + 2, 4)).result is MemTxResult.DECODE_ERROR  # unaligned


@pytest.mark.parametrize("module", ["mmiobus.devices", "mmiobus.client"])
def test_importing_the_device_sdk_and_client_loads_no_pydantic_or_yaml(module):
    code = f"import sys, {module}; print(sorted({{'pydantic', 'yaml'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
