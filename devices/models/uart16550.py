"""A 16550-style UART: transmit to stdout or a file, receive from stdin or a TCP socket,
interrupt on receive.

Byte registers at ``offset << reg_shift`` (DLAB = LCR bit 7 selects the divisor latch):

    0 RBR (read) / THR (write) / DLL      4 MCR (bit 4: loopback)
    1 IER / DLM                           5 LSR (bit 0 data ready, bits 5-6 transmitter empty)
    2 IIR (read) / FCR (write)            6 MSR
    3 LCR                                 7 SCR

Interrupts (line ``DEVICE.irq``): received data available (IER bit 0) and transmitter empty
(IER bit 1, cleared by reading IIR or writing THR). Transmission is instant.

Arguments: ``output`` = "stdout" (default), "file:PATH" or "none"; ``input`` = "auto" (default:
standard input when it is a terminal), "stdin", "none", or "tcp:[HOST:]PORT" — a console socket:
received bytes come from it and transmitted bytes also go to it (``mmiobus.devices.models.serial``).
"""

from __future__ import annotations

import collections

from mmiobus.devices import Device

from .serial import SerialLine

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

    def __init__(self, output: str = "stdout", input: str = "auto", reg_shift: int = 0) -> None:
        super().__init__()
        self.reg_shift = int(reg_shift)
        self.size = max(8 << self.reg_shift, 0x8)
        self.line = SerialLine(output, input, self.receive)
        self.rx: collections.deque[int] = collections.deque()
        self.transmitted = bytearray()
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
            self.line.transmit(bytes([byte]))
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
        await self.line.open(self.spawn)

    async def stop(self) -> None:
        await self.line.close()
