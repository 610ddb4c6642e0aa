"""Harness for the device tests: machine descriptions, a server with its device processes,
polling, and the ``mmiobus`` command line."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import yaml
from mmiobus.client import Bus
from support.devices import DeviceProcess, start_device
from support.servers import MMIOBUS, ServerProcess, start_server

HERE = Path(__file__).resolve().parent
# Device processes and servers import the classes of sdk_helpers.py by name.
ENV = {"PYTHONPATH": os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH")) if p)}
RAM_SIZE = 16 << 20
HOLE = 0x30000000  # nothing is mapped there

DMA_ENGINE = "mmiobus.devices.models.dma:DmaEngine"
TIMER = "mmiobus.devices.models.timer:Timer"
UART = "mmiobus.devices.models.uart16550:Uart16550"
SCRATCH = "mmiobus.devices.models.scratch:ScratchRam"


def helper(cls: str) -> str:
    """MODULE:CLASS of a class in sdk_helpers.py."""
    return f"sdk_helpers:{cls}"


def mmio(
    name: str,
    addr: int,
    size: int,
    device: str | dict[str, Any],
    *,
    valid: tuple[int, int] = (1, 8),
    impl: tuple[int, int] = (1, 8),
    **extra: Any,
) -> dict[str, Any]:
    """An mmio region served by ``device``: a device name, or ``in_server(...)``."""
    return {
        "name": name,
        "kind": "mmio",
        "addr": addr,
        "size": size,
        "valid": {"min": valid[0], "max": valid[1]},
        "impl": {"min": impl[0], "max": impl[1]},
        "endianness": "little",
        "device": device,
        **extra,
    }


def in_server(target: str, **args: Any) -> dict[str, Any]:
    """``device: {class: ..., args: ...}``: the server runs the device itself."""
    return {"class": target, "args": args}


# A second address space: DMA_WINDOW bytes whose address 0 is RAM byte DMA_OFFSET.
DMA_SPACE, DMA_OFFSET, DMA_WINDOW = "dma", 0x800000, 0x100000


def machine_yaml(regions: list[dict[str, Any]]) -> str:
    """A little-endian machine: RAM at 0 and the given regions in the system container (address
    space `memory`), and an address space DMA_SPACE that windows part of the RAM."""
    return yaml.safe_dump(
        {
            "endianness": "little",
            "address_spaces": [
                {"name": "memory", "root": "system"},
                {"name": DMA_SPACE, "root": "dma-root"},
            ],
            "regions": [
                {
                    "name": "system",
                    "kind": "container",
                    "size": "2**64",
                    "subregions": [
                        {"name": "ram", "kind": "ram", "addr": 0, "size": RAM_SIZE},
                        *regions,
                    ],
                },
                {
                    "name": "dma-root",
                    "kind": "container",
                    "size": 1 << 32,
                    "subregions": [
                        {
                            "name": "dma-window",
                            "kind": "alias",
                            "target": "ram",
                            "offset": DMA_OFFSET,
                            "size": DMA_WINDOW,
                        }
                    ],
                },
            ],
        },
        sort_keys=False,
    )


@dataclass
class Rig:
    """A server, its device processes (by name), and a blocking client."""

    server: ServerProcess
    devices: dict[str, DeviceProcess]
    bus: Bus
    workdir: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return self.server.tcp

    def start(self, target: str, region: str, *args: str, name: str | None = None) -> Any:
        """One more device process claiming ``region`` (stopped with the rig)."""
        dev = start_device(target, self.server.tcp, "--claim", region, *args, name=name, env=ENV)
        self.devices[name or region] = dev
        return dev

    def logs(self) -> str:
        parts = [f"--- server\n{self.server.log()}"]
        parts += [f"--- device {n}\n{d.log()}" for n, d in self.devices.items()]
        return "\n".join(parts)


@contextmanager
def rig(
    workdir: Path,
    regions: list[dict[str, Any]],
    devices: list[tuple[str, str, list[str]]],
    *server_args: str,
) -> Iterator[Rig]:
    """Start a server on ``regions`` and one device process per ``(target, region, args)``
    (each claims its region under the region's name), all at once; stop them at the end."""
    config = workdir / "machine.yaml"
    config.write_text(machine_yaml(regions))
    server = start_server(*server_args, config=config, env=ENV)
    procs: dict[str, DeviceProcess] = {}
    bus: Bus | None = None
    try:
        for target, region, args in devices:
            procs[region] = start_device(
                target, server.tcp, "--claim", region, *args, wait=False, env=ENV
            )
        for proc in procs.values():
            proc.wait_serving()
        bus = Bus(server.tcp)
        yield Rig(server, procs, bus, workdir)
    finally:
        if bus is not None:
            bus.close()
        for proc in procs.values():
            proc.stop()
        status = server.stop()
    assert status == 0, server.log()


def wait_for(
    what: Callable[[], Any], timeout: float = 20.0, interval: float = 0.01, message: str = ""
) -> Any:
    """Poll ``what()`` until it is truthy and return that value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(message or f"condition not met within {timeout}s: {what}")
        time.sleep(interval)


def _environ() -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k != "MMIOBUS_SERVER"}, **ENV}


def mmiobus(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the installed ``mmiobus`` script (text output; sdk_helpers importable)."""
    return subprocess.run(
        [MMIOBUS, *args], capture_output=True, text=True, timeout=timeout, env=_environ()
    )


class Background:
    """``mmiobus ARGS`` running in the background, its output lines read as they come."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [MMIOBUS, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_environ(),
        )
        self.lines: Queue[str] = Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, timeout: float = 20.0) -> str:
        """The next line it printed (fails after ``timeout`` seconds without one)."""
        try:
            return self.lines.get(timeout=timeout)
        except Empty:
            raise AssertionError(f"`mmiobus` printed nothing within {timeout}s") from None

    def close(self) -> str:
        """Stop it; its standard error."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)
        assert self.proc.stderr is not None
        err = self.proc.stderr.read()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return err


def free_port() -> int:
    """A TCP port nothing listens on now (for a device's console socket)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def u32(value: int) -> bytes:
    return value.to_bytes(4, "little")


def u64(value: int) -> bytes:
    return value.to_bytes(8, "little")


def le(data: bytes) -> int:
    return int.from_bytes(data, "little")
