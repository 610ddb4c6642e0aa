"""The bench format: pydantic models and its JSON Schema (``mmiobus schema bench``).

::

    bus: {machine: riscv-virt}              # or {config: machine.yaml}
    processes:
      uart0:
        kind: device
        class: mmiobus.devices.models.uart16550:Uart16550
        claim: uart0
        args: {output: "file:console.txt", input: none}
      cpu0:
        kind: cpu
        firmware: /usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin
        until: 0x80200000
    expect:
      timeout: 60s
      console: [{file: console.txt, text: "OpenSBI v"}]
      exit: [{process: cpu0}]

Paths are relative to the bench file. The kinds of process are ``processes.KINDS``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from mmiobus.machine.fields import U64, DurationMs, Strict
from pydantic import Field, model_validator

from .processes import KINDS, ProcessBase, Secret

NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$"  # a Compose service name, too
RESERVED = ("bus",)  # the bus's own name, in logs and as a Compose service

if TYPE_CHECKING:
    Process = ProcessBase
else:  # any kind's model, told apart by `kind`: the union of the one table's models
    Process = Annotated[
        Union[tuple(k.model for k in KINDS.values())],  # noqa: UP007
        Field(discriminator="kind"),
    ]


class InServerDevice(Strict):
    """A device model the server runs for a region of the machine (as the machine description's
    ``device: {class: ...}`` would)."""

    class_: str = Field(alias="class", description="MODULE:CLASS of an mmiobus.devices.Device")
    name: str | None = Field(None, description="device name; defaults to the region id")
    args: dict[str, Any] = Field(default_factory=dict, description="constructor arguments")


class ServerCpu(Strict):
    """A CPU the server runs itself (`mmiobus serve --cpu`)."""

    name: str = "cpu0"
    firmware: str | None = None
    payload: str | None = None
    until: U64 | None = None


class BusSpec(Strict):
    """The bus: its machine and how `mmiobus serve` runs."""

    machine: str | None = Field(None, description="a built-in machine (`mmiobus machines`)")
    config: str | None = Field(None, description="or: a machine description file")
    listen: list[str] = Field(
        default_factory=lambda: ["127.0.0.1:7170"],
        description="where it listens (`mmiobus up`; port 0: any free port); the processes "
        "connect to the first",
    )
    metrics: list[str] = Field(
        default_factory=list, description="serve Prometheus metrics here too (HOST:PORT)"
    )
    devices: dict[str, InServerDevice] = Field(
        default_factory=dict,
        description="regions of the machine whose device runs in the server, by region id",
    )
    cpu: ServerCpu | None = Field(None, description="a CPU the server runs itself")
    host: str | None = Field(None, description="`mmiobus up`: its network namespace")
    options: list[str] = Field(default_factory=list, description="more `mmiobus serve` options")
    env: dict[str, str] = Field(default_factory=dict)
    compose: dict[str, Any] = Field(
        default_factory=dict, description="more keys of its Compose service (ports, ...)"
    )

    @model_validator(mode="after")
    def _one_machine(self) -> BusSpec:
        if self.machine and self.config:
            raise ValueError("give machine (a built-in one) or config (a file), not both")
        return self


class Credentials(Strict):
    """What the processes present to the bus, and what the bus requires."""

    token: Secret | None = Field(
        None,
        description="the token every process presents ($MMIOBUS_TOKEN_FILE); without auth, "
        "the bus requires it of every caller (serve --token-file)",
    )
    auth: str | None = Field(None, description="the bus's identities and roles (serve --auth FILE)")


class ConsoleExpectation(Strict):
    """Text that must appear on a console: a process's output, or a file a device writes
    (`output: file:PATH`)."""

    text: str = Field(min_length=1)
    process: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one_place(self) -> ConsoleExpectation:
        if (self.process is None) == (self.file is None):
            raise ValueError("say where to look: process: NAME or file: PATH")
        return self


class MemoryExpectation(Strict):
    """An address that must come to hold a value (read through the bus)."""

    addr: U64
    value: U64 | None = Field(None, description="an unsigned value of `size` bytes")
    data: str | None = Field(None, description='or: bytes in hex, e.g. "de ad be ef"')
    size: Literal[1, 2, 4, 8] = 4
    address_space: str = ""

    @model_validator(mode="after")
    def _one_value(self) -> MemoryExpectation:
        if (self.value is None) == (self.data is None):
            raise ValueError("give value: N (with size) or data: HEX")
        if self.data is not None:
            try:
                bytes.fromhex(self.data)
            except ValueError:
                raise ValueError(f"data {self.data!r} is not hex bytes") from None
        elif self.value is not None and self.value >> (8 * self.size):
            raise ValueError(f"value {self.value:#x} does not fit in {self.size} bytes")
        return self


class ExitExpectation(Strict):
    """A process that must end: a CPU whose guest exits with ``code`` (its summary line says
    ``guest_exit exit_code=N``), or any process whose exit status is ``code``; with ``reason``,
    a CPU whose run ends that way (``reached`` for ``until``)."""

    process: str
    code: int = 0
    reason: Literal["guest_exit", "reached", "timeout", "max_instructions"] | None = None


class Expectations(Strict):
    """What must happen, all of it, within ``timeout``."""

    timeout: DurationMs = Field(60_000.0, description='e.g. "30s" (default: 60 s)')
    console: list[ConsoleExpectation] = Field(default_factory=list)
    memory: list[MemoryExpectation] = Field(default_factory=list)
    exit: list[ExitExpectation] = Field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.console) + len(self.memory) + len(self.exit)


class ComposeSettings(Strict):
    """How `mmiobus compose` lays the bench out as containers."""

    name: str | None = Field(None, description="the Compose project name")
    image: str = Field("mmiobus:latest", description="the one image every service runs")
    build: str | None = Field(
        None, description="its build context, relative to the bench (none: the image exists)"
    )
    workdir: str = Field("/bench", description="where the bench's folder is in the containers")
    mount: bool = Field(True, description="bind-mount the bench's folder there")
    port: int = Field(7170, ge=1, le=65535, description="the port the bus listens on")
    comment: str | None = Field(None, description="a comment for the top of the file")


class BenchSpec(Strict):
    """A whole bench."""

    name: str | None = Field(None, description="default: the file's name")
    bus: BusSpec = Field(default_factory=BusSpec)
    processes: dict[Annotated[str, Field(pattern=NAME_PATTERN)], Process] = Field(
        default_factory=dict
    )
    credentials: Credentials = Field(default_factory=Credentials)
    expect: Expectations = Field(default_factory=Expectations)
    compose: ComposeSettings = Field(default_factory=ComposeSettings)


def json_schema() -> str:
    """The JSON Schema of bench files, for editors (``mmiobus schema bench``)."""
    schema = BenchSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mmiobus bench"
    return json.dumps(schema, indent=2) + "\n"
