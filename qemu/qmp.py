"""A QMP client (QEMU's JSON machine protocol) for the few things the adapters ask: the
machine's object tree (``qom-list``), monitor commands (``info mtree -f``) and a machine reset
(``system_reset``, done when QEMU says so with its ``RESET`` event)."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class QmpError(Exception):
    """QEMU answered a QMP command with an error; carries QEMU's description."""


class Qmp:
    """One QMP connection, capabilities negotiated; one command at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._lock = asyncio.Lock()

    async def handshake(self) -> None:
        """Read QEMU's greeting and leave capabilities negotiation mode."""
        await self._reader.readline()
        await self.execute("qmp_capabilities")

    async def execute(self, command: str, *, until_event: str = "", **arguments: Any) -> Any:
        """Run ``command``; its ``return`` value, or ``QmpError``. With ``until_event``, return
        only once QEMU has also sent that event (a command QEMU carries out later, such as
        ``system_reset``). Other events are skipped."""
        async with self._lock:
            msg: dict[str, Any] = {"execute": command}
            if arguments:
                msg["arguments"] = arguments
            self._writer.write(json.dumps(msg).encode() + b"\n")
            returned, value = False, None
            while True:
                raw = await self._reader.readline()
                if not raw:
                    raise QmpError("QEMU closed its QMP connection")
                answer = json.loads(raw)
                if "return" in answer:
                    returned, value = True, answer["return"]
                elif "error" in answer:
                    raise QmpError(answer["error"].get("desc", str(answer["error"])))
                elif until_event and answer.get("event") == until_event:
                    until_event = ""
                if returned and not until_event:
                    return value

    async def system_reset(self) -> None:
        """Reset the whole machine, as its reset button would; returns once it is done."""
        await self.execute("system_reset", until_event="RESET")

    async def hmp(self, command_line: str) -> str:
        """A human monitor command's text (``info mtree -f``)."""
        text = await self.execute("human-monitor-command", **{"command-line": command_line})
        return str(text)

    async def qom_list(self, path: str) -> list[dict[str, str]]:
        """The properties of the object at ``path`` (``name``, ``type``)."""
        return list(await self.execute("qom-list", path=path))

    def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()
