"""Guest time: the host's monotonic clock scaled to a timebase frequency.

Why the host clock and not an instruction count: Unicorn has no cheap exact
instruction counter (a per-block Python hook costs ~20x on OpenSBI), and guest
time must advance while the CPU waits in a device callback or a remote bus
round trip, as it does on QEMU without -icount. Two rules keep tests
deterministic in *outcome*:

* the clock only runs while the machine runs (paused between ``run`` calls);
* when the CPU idles (``wfi``) with a timer armed, the machine may *skip*
  time straight to the deadline instead of sleeping (see ``CpuEngine.idle``).

``ticks()`` is monotonic and never goes back, also across pause and skip.
"""

from __future__ import annotations

import time


class VirtualClock:
    """A tick counter at *freq_hz*, running only between :meth:`resume` and :meth:`pause`."""

    def __init__(self, freq_hz: int) -> None:
        if freq_hz <= 0:
            raise ValueError("the frequency must be positive")
        self.freq_hz = freq_hz
        # (running, host ns when base_ticks was valid, ticks at that time)
        self._state: tuple[bool, int, int] = (False, time.monotonic_ns(), 0)

    @property
    def running(self) -> bool:
        return self._state[0]

    def ticks(self) -> int:
        """The current count."""
        running, base_ns, base_ticks = self._state
        if not running:
            return base_ticks
        return base_ticks + (time.monotonic_ns() - base_ns) * self.freq_hz // 1_000_000_000

    def resume(self) -> None:
        """Start counting from the current value (no-op if running)."""
        if not self.running:
            self._state = (True, time.monotonic_ns(), self._state[2])

    def pause(self) -> None:
        """Freeze the count (no-op if paused)."""
        if self.running:
            self._state = (False, 0, self.ticks())

    def skip_to(self, target: int) -> None:
        """Jump forward to *target* ticks (never backward)."""
        now = self.ticks()
        if target > now:
            self._state = (self.running, time.monotonic_ns(), target)

    def seconds_until(self, target: int) -> float:
        """Host seconds until the count reaches *target* if the clock keeps running
        (0 if already there; infinity for a paused clock that is not there)."""
        delta = target - self.ticks()
        if delta <= 0:
            return 0.0
        if not self.running:
            return float("inf")
        return delta / self.freq_hz
