"""The machine: one Unicorn CPU, its memory map, and the run loop.

Memory map (:mod:`.memory_map`): RAM and ROM are host memory; board devices
(:meth:`CpuEngine.add_device`) are in-process models called directly from Unicorn's MMIO
callbacks -- the timers and interrupt controllers that firmware polls millions of times; in
bus windows (:meth:`CpuEngine.add_bus_window`) every access is handed to the pluggable
:class:`~.bus.Bus` with its absolute guest-physical address; anything else is an
:class:`~.results.UnmappedAccess` error. RAM, ROM and bus windows follow the bus's flat view
(:meth:`CpuEngine.remap`, from any thread): the new map takes effect between slices, as QEMU's
CPUs take a new memory map between translation blocks.

Run loop (:meth:`CpuEngine.run`): the engine runs in *slices*: ``emu_start``
with ``count=slice``, which Unicorn ends cleanly before an instruction. A
slice also ends when the guest reaches ``until_pc``, on ``wfi`` and on errors.
Between slices the machine is quiescent: the subclass delivers pending
interrupts (:meth:`_service`), idles on ``wfi`` and the stop conditions
(stop/kick from any thread, timeout, guest exit) are checked. So interrupts
and stops take effect within ``slice`` instructions (at the next block when
``count_instructions`` installs the block hook). ``emu_stop`` is only called
in the block hook (before the block's first instruction) and where the run
ends anyway (bus faults, device errors): Unicorn checks for a stop after
every guest load/store and then rewinds the pc to that instruction, so a run
resumed after such a stop would execute it twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import structlog
from unicorn import Uc, UcError
from unicorn import unicorn_const as UC

from .bus import Bus, BusFault, Device, DeviceBus
from .clock import VirtualClock
from .memory import Ram
from .memory_map import Mapping, MemoryMap
from .results import BusAccessError, CpuError, ExitReason, RunResult, UnhandledTrap, UnmappedAccess

log = structlog.get_logger("mmiobus.cpu")

NEVER = 0xFFFF_FFFF_FFFF_FFF0  # an until address no guest reaches
_ROM_WRITE = "write (read-only)"
_UNMAPPED_KIND = {
    UC.UC_MEM_READ_UNMAPPED: "read",
    UC.UC_MEM_WRITE_UNMAPPED: "write",
    UC.UC_MEM_FETCH_UNMAPPED: "fetch",
    UC.UC_MEM_WRITE_PROT: _ROM_WRITE,
    UC.UC_MEM_FETCH_PROT: "fetch (no-exec)",
}


class CpuEngine:
    """Base class of :class:`~.riscv.RiscvEngine` and :class:`~.arm64.Arm64Engine`.

    *clock* is the guest timebase; *bus* receives bus-window accesses (default:
    an empty :class:`DeviceBus`); *count_instructions* installs a per-block hook
    (costs time, see :class:`RunResult`); *idle* is the ``wfi`` policy: ``"skip"``
    jumps guest time to the next timer deadline, ``"sleep"`` waits for it in real
    time, ``"return"`` is "skip" but ends the run (IDLE) when nothing can wake the CPU.
    """

    pc_reg: int = -1
    name = "cpu"  # the CPU's name in what the engine logs (``board.build`` gives the machine's)
    slice = 20_000  # instructions per emu_start: bounds the latency of stops and interrupts

    def __init__(
        self,
        uc: Uc,
        clock: VirtualClock,
        bus: Bus | None = None,
        count_instructions: bool = False,
        idle: str = "skip",
    ) -> None:
        if idle not in ("skip", "sleep", "return"):
            raise ValueError(f"idle must be skip, sleep or return, not {idle!r}")
        self.uc, self.clock, self.idle = uc, clock, idle
        self.bus: Bus = bus if bus is not None else DeviceBus()
        self.memory = MemoryMap(uc)
        self.accesses: Counter = Counter()
        self.traps: Counter = Counter()
        self.count_instructions = count_instructions
        self.instructions = 0
        self._cond = threading.Condition()
        # Held around every access to a board device: the bus may reach them from another
        # thread (a client reading mtime) while the guest does.
        self.board_lock = threading.RLock()
        self._stop_reason: ExitReason | None = None
        self._exit: tuple[int, str] | None = None
        self._kick_seq = 0
        self._kick_seen = 0
        self._timeout_at: float | None = None
        self._max_at: int | None = None
        self._unmapped: tuple[str, int, int] | None = None
        self._fault: tuple[BaseException, int, int, bool, int] | None = None
        self._block_len: dict[int, int] = {}
        self._last_block: tuple[int, int, int] | None = None
        self._next_memory: list[Mapping] | None = None  # a remap for the next slice boundary
        uc.hook_add(UC.UC_HOOK_MEM_UNMAPPED | UC.UC_HOOK_MEM_PROT, self._on_unmapped)
        if count_instructions:
            uc.hook_add(UC.UC_HOOK_BLOCK, self._on_block)

    # ---- memory map -------------------------------------------------------------
    def add_ram(self, base: int, size: int, name: str = "ram", backing: Any = None) -> Ram:
        """Map host memory at *base* (see :meth:`.memory_map.MemoryMap.add_ram`)."""
        return self.memory.add_ram(base, size, name, backing)

    def add_device(self, base: int, size: int, device: Device, name: str) -> Device:
        """Serve [base, base + size) with a local *device* (``read(offset, size)``,
        ``write(offset, size, value)``, offsets from *base*), called directly
        from the engine. Unicorn splits 8-byte accesses into two 4-byte ones
        (low half first)."""
        lock, push = self.board_lock, self._push

        def read(offset: int, size: int) -> int:
            push()
            with lock:
                return device.read(offset, size)

        def write(offset: int, size: int, value: int) -> None:
            push()
            with lock:
                device.write(offset, size, value)

        self._map(base, size, name, "device", 0, read, write)
        return device

    def _push(self) -> None:
        """Send the writes the bus holds back, if it holds any (see :mod:`.bus`)."""
        push = getattr(self.bus, "push", None)
        if push is not None:
            push()

    def add_bus_window(self, base: int, size: int, name: str = "bus") -> None:
        """Forward every access in [base, base + size) to ``self.bus`` with its
        absolute address (8-byte accesses arrive as two 4-byte ones)."""
        self._map(base, size, name, "bus", base, self.bus.read, self.bus.write)

    def _map(
        self,
        base: int,
        size: int,
        name: str,
        kind: str,
        rebase: int,
        read: Callable[[int, int], int],
        write: Callable[[int, int, int], None],
    ) -> None:
        acc = self.accesses

        def rd(off: int, sz: int) -> int:
            acc[name] += 1
            try:
                return read(rebase + off, sz)
            except BaseException as exc:
                self._note_fault(exc, base + off, sz, False)
                return 0

        def wr(off: int, sz: int, value: int) -> None:
            acc[name] += 1
            try:
                write(rebase + off, sz, value)
            except BaseException as exc:
                self._note_fault(exc, base + off, sz, True)

        self.memory.add_callbacks(base, size, name, kind, rd, wr)

    def map_memory(self, mappings: Iterable[Mapping]) -> tuple[list[Mapping], list[Mapping]]:
        """Make the engine's RAM, ROM and bus windows what *mappings* say (before a run, or
        on the engine's thread; see :meth:`remap` and :meth:`.memory_map.MemoryMap.take`)."""
        return self.memory.take(mappings, self.add_bus_window)

    @property
    def memory_map(self) -> list[Mapping]:
        """The RAM, ROM and bus windows mapped now, by address."""
        return self.memory.taken

    def remap(self, mappings: Iterable[Mapping]) -> None:
        """:meth:`map_memory` at the next slice boundary (any thread): the bus's flat view
        changed. A remap asked for before the last one took effect replaces it."""
        self._next_memory = list(mappings)
        self.kick()

    def _take_remap(self) -> None:
        mappings, self._next_memory = self._next_memory, None
        if mappings is None:
            return
        try:
            gone, came = self.map_memory(mappings)
        except (ValueError, UcError) as e:
            raise CpuError(f"the CPU cannot follow the bus's new memory map: {e}", self.pc) from e
        if gone or came:
            log.info("the CPU follows the bus's new memory map", cpu=self.name,
                     unmapped=[str(m) for m in gone], mapped=[str(m) for m in came])  # fmt: skip

    def ram_at(self, addr: int, size: int = 1) -> Ram | None:
        return self.memory.ram_at(addr, size)

    def load(self, addr: int, data: bytes) -> None:
        """Copy *data* into RAM at guest address *addr*."""
        ram = self.ram_at(addr, len(data))
        if ram is None:
            raise ValueError(f"{len(data)} bytes at {addr:#x} are not inside one RAM region")
        ram.write(addr, data)

    def is_executable(self, addr: int) -> bool:
        """Whether *addr* is in RAM (the only memory Unicorn executes from)."""
        return self.ram_at(addr) is not None

    # ---- thread-safe control --------------------------------------------------------
    # None of these call emu_stop: Unicorn checks for an exit request after every
    # guest load/store and then restores the pc to *that* instruction, which a
    # resumed run would execute twice. They set a flag that the run loop reads
    # at the end of the slice (or the block hook at the next block).
    def stop(self, reason: ExitReason = ExitReason.STOPPED) -> None:
        """End the current run at the next slice boundary (any thread, a device, Ctrl-C)."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self._notify()

    def kick(self) -> None:
        """Ask the run loop to re-evaluate interrupts soon (any thread)."""
        self._kick_seq += 1
        self._notify()

    def guest_exit(self, code: int, kind: str = "poweroff") -> None:
        """Called by a device when the guest powers off or resets the machine."""
        if self._exit is None:
            self._exit = (code, kind)
        self._notify()

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # ---- callbacks ------------------------------------------------------------------
    def _note_fault(self, fault: BaseException, addr: int, size: int, is_write: bool) -> None:
        # Terminal: stopping right here leaves the pc at the faulting instruction.
        if self._fault is None:
            self._fault = (fault, addr, size, is_write, self.pc)
        self.uc.emu_stop()

    def _on_unmapped(self, uc: Uc, access: int, addr: int, size: int, value: int, _: Any) -> bool:
        if self._unmapped is None:
            self._unmapped = (_UNMAPPED_KIND.get(access, f"access {access}"), addr, size)
        return False

    def _on_block(self, uc: Uc, addr: int, size: int, _: Any) -> None:
        # Called before the block executes, and before Unicorn's exit check: an
        # emu_stop here stops cleanly at the start of this block.
        key = (addr << 16) | size
        n = self._block_len.get(key)
        if n is None:
            n = self._block_len[key] = self.block_instructions(addr, size)
        if self._max_at is not None and self.instructions + n > self._max_at:
            self._stop_reason = self._stop_reason or ExitReason.MAX_INSTRUCTIONS
        if (
            self._stop_reason is not None
            or self._exit is not None
            or self._kick_seq != self._kick_seen
        ):
            uc.emu_stop()
            return
        self.instructions += n
        self._last_block = (addr, size, n)

    def settle_count(self, next_pc: int) -> None:
        """The block entered last stopped before *next_pc* (a slice ended or a trap
        left it): take back its instructions from *next_pc* on."""
        last = self._last_block
        if last is None:
            return
        addr, size, n = last
        if addr < next_pc < addr + size:
            self.instructions -= n - self.block_instructions(addr, next_pc - addr)
        self._last_block = None

    # ---- registers --------------------------------------------------------------------
    @property
    def pc(self) -> int:
        return self.uc.reg_read(self.pc_reg)

    @pc.setter
    def pc(self, value: int) -> None:
        self.uc.reg_write(self.pc_reg, value)

    # ---- run --------------------------------------------------------------------------
    def run(
        self,
        until_pc: int | None = None,
        timeout_seconds: float | None = None,
        max_instructions: int | None = None,
    ) -> RunResult:
        """Run from the current pc until a stop condition; see :class:`ExitReason`.

        *until_pc*: stop when the pc reaches it, before executing it (at once if
        the pc is already there). *max_instructions* needs ``count_instructions``
        and stops at the last block boundary before the limit. Raises a
        :class:`~.results.CpuError` (with ``.result``) if the guest cannot go
        on. Not reentrant; other threads may call :meth:`stop`/:meth:`kick`.
        """
        if max_instructions is not None and not self.count_instructions:
            raise ValueError("max_instructions needs a machine built with count_instructions=True")
        start_insns, start_acc, start_traps = (
            self.instructions,
            self.accesses.copy(),
            self.traps.copy(),
        )
        t0 = time.monotonic()
        self._timeout_at = None if timeout_seconds is None else t0 + timeout_seconds
        self._max_at = None if max_instructions is None else self.instructions + max_instructions
        self._stop_reason = None
        reason: ExitReason | None = None
        error: CpuError | None = None
        self.clock.resume()
        try:
            reason = self._loop(until_pc)
        except CpuError as exc:
            error = exc
        finally:
            self.clock.pause()
            try:
                self.bus.flush()
            except BusFault as fault:  # a posted write failed after the last read
                error = error or BusAccessError(
                    fault, fault.addr, fault.size, True, self.pc, self.pc
                )
        result = RunResult(
            reason or ExitReason.STOPPED,
            self.pc,
            time.monotonic() - t0,
            self.instructions - start_insns if self.count_instructions else None,
            self.accesses - start_acc,
            self.traps - start_traps,
        )
        if self._exit is not None:
            result.exit_code, result.exit_kind = self._exit
        if error is not None:
            error.result = result
            raise error
        return result

    def _loop(self, until_pc: int | None) -> ExitReason:
        until = NEVER if until_pc is None else until_pc
        while True:
            self._kick_seen = self._kick_seq
            reason = self._check_exit()
            if reason is not None:
                return reason
            self._take_remap()
            self._service()
            pc = self.pc
            if pc == until_pc:
                return ExitReason.REACHED
            self._unmapped = self._fault = None
            try:
                # count > 0 makes Unicorn stop cleanly before an instruction after
                # `slice` of them (its own per-instruction hook, in C).
                self.uc.emu_start(pc, until, 0, self.slice)
            except UcError as err:
                self._on_engine_error(err)
            finally:
                if self.count_instructions:
                    self.settle_count(self.pc)
                self._push()
            if self._fault is not None:
                fault, addr, size, is_write, block_pc = self._fault
                if not isinstance(fault, BusFault):  # a device model's own bug or Ctrl-C
                    raise fault
                raise BusAccessError(fault, addr, size, is_write, block_pc, self.pc)
            if (
                self._exit is None
                and self._stop_reason is None
                and self._kick_seen == self._kick_seq
                and self.pc != until_pc
                and self.stopped_in_wfi()
            ):
                self._idle_wait()

    def _check_exit(self) -> ExitReason | None:
        if self._exit is not None:
            return ExitReason.GUEST_EXIT
        if self._stop_reason is not None:
            return self._stop_reason
        if self._timeout_at is not None and time.monotonic() >= self._timeout_at:
            return ExitReason.TIMEOUT
        return None

    def _on_engine_error(self, err: UcError) -> None:
        pc = self.pc
        if (
            self._unmapped is not None
            and self._unmapped[0] == _ROM_WRITE
            and self.memory.in_rom(self._unmapped[1])
        ):
            # A store to ROM: QEMU's TCG discards it; so do we (the store does nothing).
            self.accesses["rom writes discarded"] += 1
            self.pc = pc + self.instruction_length(pc)
            return
        if self._unmapped is not None:
            kind, addr, size = self._unmapped
            raise UnmappedAccess(kind, addr, size, pc) from err
        if not self._handle_engine_error(err):
            raise UnhandledTrap(f"engine error ({err})", pc) from err

    def _idle_wait(self) -> None:
        """The CPU executed ``wfi``: return when an interrupt could wake it or
        the run must end; meanwhile skip or wait guest time per ``idle``."""
        while self._check_exit() is None and not self.wake_pending():
            deadline = self.next_deadline()
            if deadline is not None and self.idle != "sleep":
                self.clock.skip_to(deadline)
                continue
            if deadline is None and self.idle == "return":
                self._stop_reason = ExitReason.IDLE
                return
            with self._cond:
                seq = self._kick_seq
                wait = None if deadline is None else self.clock.seconds_until(deadline)
                if self._timeout_at is not None:
                    left = self._timeout_at - time.monotonic()
                    wait = left if wait is None else min(wait, left)
                if self._kick_seq == seq and self._stop_reason is None and self._exit is None:
                    self._cond.wait(None if wait is None else max(wait, 0.0))
            self._kick_seen = self._kick_seq

    # ---- per-architecture --------------------------------------------------------------
    def block_instructions(self, addr: int, size: int) -> int:
        """How many instructions a translation block of *size* bytes at *addr* holds."""
        raise NotImplementedError

    def _service(self) -> None:
        """Deliver pending, enabled interrupts (the engine is stopped)."""

    def instruction_length(self, pc: int) -> int:
        """The length of the instruction at *pc* (to step over a discarded store)."""
        return 4

    def _handle_engine_error(self, err: UcError) -> bool:
        """Handle an engine error that is not an unmapped access; True to go on."""
        return False

    def stopped_in_wfi(self) -> bool:
        """Whether the slice that just ended ended on a wait-for-interrupt."""
        return False

    def wake_pending(self) -> bool:
        """Whether an interrupt is pending and enabled (what ends a wait-for-interrupt)."""
        return True

    def next_deadline(self) -> int | None:
        """The next future timer deadline, in clock ticks, or None."""
        return None
