"""The line protocol between an RTL device and its simulator (both sides use these).

The simulator connects and says ``HELLO width=W strobe=0|1 irqs=A,B`` (or ``FAIL WHY``: a port
the design lacks, say). Then the device sends commands, the simulator answers each in order:

    R OFFSET SIZE           -> OK VALUE | ERR WHY     an APB read (sub-word: the word's lanes)
    W OFFSET SIZE VALUE     -> OK | ERR WHY           an APB write (PSTRB, or read-modify-write)
    RESET                   -> OK                     PRESETn asserted for a few cycles
    TIME                    -> OK NANOSECONDS         the simulated time now
    BENCH N                 -> OK SECONDS             N reads of offset 0, inside the simulator

and between answers the simulator reports interrupt outputs that change: ``IRQ NAME 0|1``.
Numbers are hexadecimal with 0x, except N, NANOSECONDS and SECONDS.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hello:
    """What the simulator says about the design: data width in bits, whether it has PSTRB,
    and its interrupt outputs (bus line names)."""

    width: int
    strobe: bool
    irqs: tuple[str, ...]

    def line(self) -> str:
        return f"HELLO width={self.width} strobe={int(self.strobe)} irqs={','.join(self.irqs)}"

    @classmethod
    def parse(cls, line: str) -> Hello:
        words = line.split()
        if not words or words[0] != "HELLO":
            raise ValueError(f"the simulator said {line!r} instead of HELLO")
        fields = dict(w.partition("=")[::2] for w in words[1:])
        irqs = tuple(n for n in fields.get("irqs", "").split(",") if n)
        return cls(int(fields["width"]), fields.get("strobe") == "1", irqs)


def is_event(line: str) -> bool:
    return line.startswith("IRQ ")


def parse_event(line: str) -> tuple[str, bool]:
    """(line name, level) of an ``IRQ NAME LEVEL`` event."""
    _, name, level = line.split()
    return name, level == "1"


@dataclass
class SimOptions:
    """How the design is simulated, as the device asks and the simulator is configured: port
    prefix, clock and reset ports, clock period, interrupt outputs (port -> bus line),
    idle-time policy (see ``mmiobus.rtl.simulation``)."""

    prefix: str = ""
    clock: str = "pclk"
    reset: str = "presetn"
    period_ns: float = 10.0
    irqs: dict[str, str] = field(default_factory=dict)
    idle_cycles: int = 0
    idle_ms: float = 10.0
