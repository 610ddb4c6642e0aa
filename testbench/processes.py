"""The kinds of process a bench runs beside its bus, and the command line of each.

``KINDS`` is the one table: a kind is a model (its fields in a bench file) and an entry saying
how to run it. Adding a kind (a QEMU or RTL adapter, say) is one model and one entry here; the
bench format, its JSON Schema, ``mmiobus up``, ``mmiobus compose`` and the pytest plugin all
read this table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from mmiobus.machine.fields import U64, DurationMs, Size, Strict
from pydantic import Field, WithJsonSchema, field_validator, model_validator

SERVER = "{server}"
"""In a command's arguments and environment: the address of the bus."""


@dataclass(frozen=True)
class Site:
    """Where a command line runs: the bus address it uses, and how a path the bench gives is
    written there (``mmiobus up`` runs processes in the bench's folder, so as it is; Compose
    makes it absolute in the containers' copy of that folder)."""

    server: str
    path: Callable[[str], str] = str


class Secret(Strict):
    """A secret's source: a file (relative to the bench) or an environment variable."""

    file: str | None = None
    env: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Secret:
        if (self.file is None) == (self.env is None):
            raise ValueError("give file: PATH or env: VARIABLE")
        return self


class ProcessBase(Strict):
    """What every process of a bench has besides its kind's own fields."""

    kind: str  # each kind's model narrows it to its name in ``KINDS``

    after: list[str] = Field(
        default_factory=list,
        description="processes that must be started, and ready, before this one (besides the "
        "order of kinds: recorders, then devices, then CPUs, then commands)",
    )
    host: str | None = Field(
        None,
        description="`mmiobus up`: run it in this network namespace (`ip netns exec HOST`, as "
        "root); under Compose every service is a host of its own",
    )
    server: str | None = Field(
        None,
        description="the bus address it connects to (default: where the bus listens; under "
        "Compose bus:PORT)",
    )
    options: list[str] = Field(
        default_factory=list, description="more command-line options, added at the end"
    )
    workdir: str | None = Field(
        None, description="the folder it runs in, relative to the bench's (default: the bench's)"
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="environment variables ({server}: the bus address)"
    )
    compose: dict[str, Any] = Field(
        default_factory=dict,
        description="more keys of its Compose service (ports, profiles, ...), as the Compose "
        "specification writes them",
    )
    token: Secret | None = Field(
        None, description="the token it presents, instead of the bench's credentials.token"
    )


class DeviceProcess(ProcessBase):
    """A device model in a process of its own: `mmiobus device run`."""

    kind: Literal["device"]
    class_: str = Field(alias="class", description="MODULE:CLASS of an mmiobus.devices.Device")
    claim: Annotated[
        list[str],
        WithJsonSchema(
            {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
        ),
    ] = Field(default_factory=list, description="regions of the machine description it serves")
    at: U64 | None = Field(None, description="or: register a region of its own at this address")
    size: Size | None = Field(None, description="the size of that region (default: the class's)")
    name: str | None = Field(None, description="its name on the bus (default: the process's)")
    args: dict[str, Any] = Field(default_factory=dict, description="constructor arguments")

    @field_validator("claim", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class CpuProcess(ProcessBase):
    """A CPU of the machine running firmware: `mmiobus cpu run`. It ends when the guest powers
    off, reaches ``until`` or runs out of ``timeout``."""

    kind: Literal["cpu"]
    cpu: str = Field("cpu0", description="which CPU of the machine")
    firmware: str | None = Field(None, description="the firmware image (default: the machine's)")
    payload: str | None = Field(None, description="an image loaded where the firmware jumps")
    until: U64 | None = Field(None, description="stop when the CPU reaches this address")
    timeout: DurationMs | None = Field(None, description='stop after this long, e.g. "30s"')
    arch: Literal["riscv64", "aarch64"] | None = None


class TraceProcess(ProcessBase):
    """A recorder of the accesses the bus serves: `mmiobus trace`."""

    kind: Literal["trace"]
    out: str | None = Field(None, description="the recording (default: into the log)")
    format: Literal["text", "jsonl", "chrome"] = "jsonl"
    regions: list[str] = Field(default_factory=list, description="region id globs")
    initiators: list[str] = Field(default_factory=list, description="client, client:ID, devices")
    ranges: list[str] = Field(default_factory=list, description="START:END or START+SIZE")
    faults: bool = Field(False, description="faults only")


class CommandProcess(ProcessBase):
    """Any program: a test script, a benchmark client. ``{server}`` in ``args`` and ``env`` is
    the bus's address."""

    kind: Literal["command"]
    program: list[str] = Field(
        min_length=1, description="the program and its first arguments, e.g. [python, test.py]"
    )
    args: list[str] = Field(default_factory=list, description="the rest of its arguments")


def _arg_text(value: Any) -> str:
    """A constructor argument as `device run --arg KEY=VALUE` reads it back (YAML)."""
    return value if isinstance(value, str) else json.dumps(value)


def device_argv(p: DeviceProcess, name: str, site: Site) -> list[str]:
    argv = ["device", "run", p.class_, "--server", site.server, "--name", p.name or name]
    for region in p.claim:
        argv += ["--claim", region]
    if p.at is not None:
        argv += ["--at", hex(p.at)]
    if p.size is not None:
        argv += ["--size", hex(p.size)]
    for key, value in p.args.items():
        argv += ["--arg", f"{key}={_arg_text(value)}"]
    return argv


def cpu_argv(p: CpuProcess, name: str, site: Site) -> list[str]:
    argv = ["cpu", "run", "--server", site.server, "--name", p.cpu]
    for option, value in (("--firmware", p.firmware), ("--payload", p.payload)):
        if value is not None:
            argv += [option, site.path(value)]
    if p.arch is not None:
        argv += ["--arch", p.arch]
    if p.until is not None:
        argv += ["--until", hex(p.until)]
    if p.timeout is not None:
        argv += ["--timeout", f"{p.timeout / 1000:g}"]
    return argv


def trace_argv(p: TraceProcess, name: str, site: Site) -> list[str]:
    argv = ["trace", "--server", site.server, "--format", p.format]
    if p.out is not None:
        argv += ["--out", site.path(p.out)]
    for option, values in (("--region", p.regions), ("--initiator", p.initiators),
                           ("--range", p.ranges)):  # fmt: skip
        for value in values:
            argv += [option, value]
    if p.faults:
        argv.append("--faults")
    return argv


def command_argv(p: CommandProcess, name: str, site: Site) -> list[str]:
    return [*p.program, *(a.replace(SERVER, site.server) for a in p.args)]


@dataclass(frozen=True)
class Kind:
    """How a kind of process runs.

    ``argv(process, name, site)``: its command line (after ``mmiobus`` when ``mmiobus``);
    ``rank``: where it starts unless ``after`` says otherwise (lower first); ``lasting``: it
    serves until stopped, so its ending early fails the bench (else it is a run that ends by
    itself); ``ready``: how ``mmiobus up`` knows it has started — "line" (it prints ``ready_line``
    on standard output), "subscribed" (the bus counts one more trace subscriber) or "started";
    ``logs``: it takes ``--log-format``."""

    model: type[ProcessBase]
    argv: Callable[[Any, str, Site], list[str]]
    rank: int
    lasting: bool
    ready: Literal["line", "subscribed", "started"]
    ready_line: str = ""
    mmiobus: bool = True
    logs: bool = True


KINDS: dict[str, Kind] = {
    "trace": Kind(TraceProcess, trace_argv, 0, True, "subscribed", logs=False),
    "device": Kind(DeviceProcess, device_argv, 1, True, "line", ": serving "),
    "cpu": Kind(CpuProcess, cpu_argv, 2, False, "started"),
    "command": Kind(CommandProcess, command_argv, 3, False, "started", mmiobus=False, logs=False),
}
