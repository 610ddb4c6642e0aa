"""Where a serial device's bytes go and come from: the line a UART model is plugged into.

``output``: ``stdout`` (default), ``file:PATH`` (appended) or ``none``. ``input``: ``auto``
(default: standard input when it is a terminal, else nothing), ``stdin``, ``none`` or
``tcp:[HOST:]PORT`` — a console socket (``nc HOST PORT``): what clients send is received, and
what the device transmits also goes to them.
"""

from __future__ import annotations

import asyncio
import sys
import termios
import tty
from collections.abc import Callable, Coroutine
from typing import IO, Any

Spawn = Callable[[Coroutine[Any, Any, Any]], Any]


class SerialLine:
    """A UART's outside world; ``receive`` gets what arrives on the line."""

    def __init__(self, output: str, input: str, receive: Callable[[bytes], None]) -> None:
        for spec, allowed in ((output, ("stdout", "none")), (input, ("auto", "stdin", "none"))):
            if spec not in allowed and not spec.startswith(("file:", "tcp:")):
                raise ValueError(f"{spec!r} is not one of {', '.join(allowed)}, file:PATH, "
                                 "tcp:[HOST:]PORT")  # fmt: skip
        if output.startswith("tcp:") or input.startswith("file:"):
            raise ValueError("output is stdout, file:PATH or none; input is auto, stdin, "
                             "tcp:[HOST:]PORT or none")  # fmt: skip
        self.output_spec = output
        self.input_spec = input
        self._receive = receive
        self._out: IO[bytes] | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self._tty: list[Any] | None = None  # the terminal's settings, to restore

    async def open(self, spawn: Spawn) -> None:
        """Start: open the output, listen for input (``spawn`` runs background tasks)."""
        out = self.output_spec
        if out == "stdout":
            self._out = sys.stdout.buffer
        elif out.startswith("file:"):
            self._out = open(out[5:], "ab", buffering=0)  # noqa: SIM115 - open while serving
        inp = self.input_spec
        if inp == "auto":
            inp = "stdin" if sys.stdin is not None and sys.stdin.isatty() else "none"
        if inp == "stdin":
            if sys.stdin.isatty():
                # Keys reach the device as they are typed, and the device echoes them (as a
                # terminal on a real serial line shows what the machine sends back).
                self._tty = termios.tcgetattr(sys.stdin.fileno())
                tty.setcbreak(sys.stdin.fileno())
            spawn(self._read_stdin())
        elif inp.startswith("tcp:"):
            host, _, port = inp[4:].rpartition(":")
            self._server = await asyncio.start_server(self._console, host or "127.0.0.1", int(port))

    async def close(self) -> None:
        if self._tty is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._tty)
            self._tty = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.close()
        if self._out is not None and self._out is not sys.stdout.buffer:
            self._out.close()
        self._out = None

    def transmit(self, data: bytes) -> None:
        """Bytes the device sends on the line."""
        if self._out is not None:
            self._out.write(data)
            self._out.flush()
        for w in list(self._writers):
            w.write(data)

    async def _console(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while data := await reader.read(4096):
                self._receive(data)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while data := await reader.read(4096):
            self._receive(data)
