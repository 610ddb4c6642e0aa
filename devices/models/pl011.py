"""An Arm PrimeCell PL011 UART, as QEMU 7.2's ``pl011`` presents it: transmit to stdout or a
file, receive from stdin or a TCP console socket (see ``mmiobus.devices.models.serial``), and an
interrupt line that follows the masked interrupt status.

Registers (32-bit words; PL011 Technical Reference Manual, r1p5):

    0x000 DR     data: write transmits (at once), read takes the oldest received byte
    0x004 RSR    receive status (always 0; writing clears it)
    0x018 FR     flags: RXFE 0x10 (nothing received), TXFF 0x20, RXFF 0x40, TXFE 0x80
    0x020 ILPR   0x024 IBRD   0x028 FBRD   (baud rate: kept, not used)
    0x02c LCR_H  line control (FEN 0x10 enables the 16-byte receive FIFO)
    0x030 CR     control (reset 0x300: TXE, RXE)
    0x034 IFLS   FIFO interrupt levels (reset 0x12)
    0x038 IMSC   interrupt mask: RX 0x10, TX 0x20 (and the others, stored)
    0x03c RIS    raw interrupt status         0x040 MIS  masked status (RIS & IMSC)
    0x044 ICR    write 1s to clear raw status bits
    0x048 DMACR  DMA control (kept, no DMA)
    0xfe0-0xffc  peripheral and PrimeCell ids: 0x11 0x10 0x14 0x00, 0x0d 0xf0 0x05 0xb1

Transmission is instant, so TX is raised by every write to DR (and cleared by ICR); RX is high
while received data waits (from the first byte, whatever IFLS says, as on QEMU). The
line ``DEVICE.irq`` is high while ``RIS & IMSC`` is not zero.
"""

from __future__ import annotations

import collections

from mmiobus.devices import Device

from .serial import SerialLine

DR, RSR, FR, ILPR, IBRD, FBRD, LCR_H, CR, IFLS, IMSC, RIS, MIS, ICR, DMACR = (
    0x000, 0x004, 0x018, 0x020, 0x024, 0x028, 0x02C, 0x030, 0x034, 0x038, 0x03C, 0x040, 0x044,
    0x048,
)  # fmt: skip
FR_RXFE, FR_TXFF, FR_RXFF, FR_TXFE = 0x10, 0x20, 0x40, 0x80
INT_RX, INT_TX = 0x10, 0x20
LCR_FEN = 0x10
IDS = (0x11, 0x10, 0x14, 0x00, 0x0D, 0xF0, 0x05, 0xB1)
FIFO_DEPTH = 16
BUFFER = 4096  # bytes kept while the guest does not read (a console paste)


class Pl011(Device):
    size = 0x1000
    valid = (1, 4)
    impl = (1, 4)

    def __init__(self, output: str = "stdout", input: str = "auto") -> None:
        super().__init__()
        self.line = SerialLine(output, input, self.receive)
        self.rx: collections.deque[int] = collections.deque()
        self.transmitted = bytearray()
        self.reset_state()

    def reset_state(self) -> None:
        self.lcr_h = self.imsc = self.ris = self.dmacr = 0
        self.ilpr = self.ibrd = self.fbrd = 0
        self.cr = 0x300
        self.ifls = 0x12
        self.rx.clear()

    # -- registers ----------------------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        if offset >= 0xFE0:
            index = (offset - 0xFE0) >> 2
            return IDS[index] if index < len(IDS) and not offset & 3 else 0
        if offset == DR:
            value = self.rx.popleft() if self.rx else 0
            self._update()
            return value
        return {
            RSR: 0,
            FR: (FR_RXFE if not self.rx else 0)
            | (FR_RXFF if len(self.rx) >= self._depth() else 0)
            | FR_TXFE,
            ILPR: self.ilpr,
            IBRD: self.ibrd,
            FBRD: self.fbrd,
            LCR_H: self.lcr_h,
            CR: self.cr,
            IFLS: self.ifls,
            IMSC: self.imsc,
            RIS: self.ris,
            MIS: self.ris & self.imsc,
            DMACR: self.dmacr,
        }.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == DR:
            byte = value & 0xFF
            self.transmitted.append(byte)
            self.line.transmit(bytes([byte]))
            self.ris |= INT_TX
        elif offset == ILPR:
            self.ilpr = value & 0xFF
        elif offset == IBRD:
            self.ibrd = value & 0xFFFF
        elif offset == FBRD:
            self.fbrd = value & 0x3F
        elif offset == LCR_H:
            if (self.lcr_h ^ value) & LCR_FEN:
                self.rx.clear()  # switching the FIFO on or off empties it, as on QEMU
            self.lcr_h = value & 0xFF
        elif offset == CR:
            self.cr = value & 0xFFFF
        elif offset == IFLS:
            self.ifls = value & 0x3F
        elif offset == IMSC:
            self.imsc = value & 0x7FF
        elif offset == ICR:
            self.ris &= ~value
        elif offset == DMACR:
            self.dmacr = value & 0x7
        self._update()

    def receive(self, data: bytes) -> None:
        """Bytes arriving on the line (from stdin, the console socket, or a test)."""
        for b in data:
            if len(self.rx) < BUFFER:
                self.rx.append(b)
        self._update()

    def _depth(self) -> int:
        return FIFO_DEPTH if self.lcr_h & LCR_FEN else 1

    def _update(self) -> None:
        # RX: data waiting. QEMU raises it for one byte whatever IFLS says (drivers read the FIFO
        # only when interrupted, so a higher trigger would strand the last bytes); so do we.
        if self.rx:
            self.ris |= INT_RX
        else:
            self.ris &= ~INT_RX
        self.irq().set(bool(self.ris & self.imsc))

    def reset(self) -> None:
        self.reset_state()
        self._update()

    # -- the world outside ----------------------------------------------------------------------

    async def start(self) -> None:
        await self.line.open(self.spawn)

    async def stop(self) -> None:
        await self.line.close()
