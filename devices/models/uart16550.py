"""A 16550-style UART: transmit to stdout or a file, receive from stdin or a TCP socket,
interrupt on receive.

Byte registers at ``offset << reg_shift`` (DLAB = LCR bit 7 selects the divisor latch):

    0 RBR (read) / THR (write) / DLL      4 MCR (bit 4: loopback)
    1 IER / DLM                           5 LSR (bit 0 data ready, bits 5-6 transmitter empty)
    2 IIR (read) / FCR (write)            6 MSR
    3 LCR                                 7 SCR

Interrupts (line ``DEVICE.irq``): received data available (IER bit 0) and transmitter empty
(IER bit 1, cleared by reading IIR or writing THR). Transmission is instant.

Arguments: ``output`` = "stdout" (default), "file:PATH" or "none"; ``input`` = "none" (default),
"stdin", or "tcp:[HOST:]PORT" — a console socket: received bytes come from it and transmitted
bytes also go to it.
"""

from __future__ import annotations

import asyncio
import collections
import sys
from typing import IO

from mmiobus.devices import Device

RBR, IER, IIR, LCR, MCR, LSR, MSR, SCR = range(8)
DLAB = 0x80
LOOPBACK = 0x10
LSR_DR, LSR_THRE, LSR_TEMT = 0x01, 0x20, 0x40
IER_RDA, IER_THRE = 0x01, 0x02
IIR_NONE, IIR_THRE, IIR_RDA, IIR_FIFO = 0x01, 0x02, 0x04, 0xC0
FIFO_SIZE = 4096


class Uart16550(Device):
    valid = (1, 4)
    impl = (1, 1)

    def __init__(self, output: str = "stdout", input: str = "none", reg_shift: int = 0) -> None:
        super().__init__()
        self.reg_shift = int(reg_shift)
        self.size = max(8 << self.reg_shift, 0x8)
        self.output_spec = output
        self.input_spec = input
        self._out: IO[bytes] | None = None
        self.rx: collections.deque[int] = collections.deque()
        self.transmitted = bytearray()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self._stdin_task: asyncio.Task[None] | None = None
        self.reset_state()

    def reset_state(self) -> None:
        self.ier = self.lcr = self.mcr = self.scr = self.fcr = 0
        self.dll, self.dlm = 12, 0  # 9600 baud at 1.8432 MHz
        self.msr = 0xB0
        self.thre_pending = False
        self.rx.clear()

    # -- registers ----------------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        reg = offset >> self.reg_shift
        if reg == RBR:
            if self.lcr & DLAB:
                return self.dll
            value = self.rx.popleft() if self.rx else 0
            self._update_irq()
            return value
        if reg == IER:
            return self.dlm if self.lcr & DLAB else self.ier
        if reg == IIR:
            fifo = IIR_FIFO if self.fcr & 1 else 0
            if self.ier & IER_RDA and self.rx:
                return IIR_RDA | fifo
            if self.ier & IER_THRE and self.thre_pending:
                self.thre_pending = False  # reading IIR acknowledges "transmitter empty"
                self._update_irq()
                return IIR_THRE | fifo
            return IIR_NONE | fifo
        if reg == LCR:
            return self.lcr
        if reg == MCR:
            return self.mcr
        if reg == LSR:
            return (LSR_DR if self.rx else 0) | LSR_THRE | LSR_TEMT
        if reg == MSR:
            return self.msr
        if reg == SCR:
            return self.scr
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        reg, value = offset >> self.reg_shift, value & 0xFF
        if reg == RBR:
            if self.lcr & DLAB:
                self.dll = value
            else:
                self._transmit(value)
        elif reg == IER:
            if self.lcr & DLAB:
                self.dlm = value
            else:
                if value & IER_THRE and not self.ier & IER_THRE:
                    self.thre_pending = True
                self.ier = value & 0x0F
        elif reg == IIR:
            self.fcr = value
            if value & 0x02:
                self.rx.clear()
        elif reg == LCR:
            self.lcr = value
        elif reg == MCR:
            self.mcr = value & 0x1F
        elif reg == SCR:
            self.scr = value
        self._update_irq()

    def _transmit(self, byte: int) -> None:
        if self.mcr & LOOPBACK:
            self.receive(bytes([byte]))
        else:
            self.transmitted.append(byte)
            if self._out is not None:
                self._out.write(bytes([byte]))
                self._out.flush()
            for w in list(self._writers):
                w.write(bytes([byte]))
        if self.ier & IER_THRE:
            self.thre_pending = True

    def receive(self, data: bytes) -> None:
        """Bytes arriving on the line (from stdin, the console socket, or a test)."""
        for b in data:
            if len(self.rx) < FIFO_SIZE:
                self.rx.append(b)
        self._update_irq()

    def _update_irq(self) -> None:
        pending = bool(self.ier & IER_RDA and self.rx) or bool(
            self.ier & IER_THRE and self.thre_pending
        )
        self.irq().set(pending)

    def reset(self) -> None:
        self.reset_state()
        self._update_irq()

    # -- the world outside ----------------------------------------------------------------------

    async def start(self) -> None:
        out = self.output_spec
        if out == "stdout":
            self._out = sys.stdout.buffer
        elif out.startswith("file:"):
            self._out = open(out[5:], "ab", buffering=0)  # noqa: SIM115 - kept open while serving
        inp = self.input_spec
        if inp == "stdin":
            self._stdin_task = self.spawn(self._read_stdin())
        elif inp.startswith("tcp:"):
            host, _, port = inp[4:].rpartition(":")
            self._server = await asyncio.start_server(self._console, host or "127.0.0.1", int(port))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.close()
        if self._out is not None and self._out is not sys.stdout.buffer:
            self._out.close()
        self._out = None

    async def _console(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while data := await reader.read(4096):
                self.receive(data)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while data := await reader.read(4096):
            self.receive(data)
