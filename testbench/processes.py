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

# Debian's package of each QEMU target `device qemu` may run.
QEMU_PACKAGES = {"riscv64": "qemu-system-misc", "riscv32": "qemu-system-misc",
                 "aarch64": "qemu-system-arm", "arm": "qemu-system-arm",
                 "x86_64": "qemu-system-x86", "i386": "qemu-system-x86"}  # fmt: skip

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


def _listed(cls: Any, value: Any) -> Any:
    """One string or a list of them, as a list."""
    return [value] if isinstance(value, str) else value


OneOrMany = Annotated[
    list[str],
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


class DeviceProcess(ProcessBase):
    """A device model in a process of its own: `mmiobus device run`."""

    kind: Literal["device"]
    class_: str = Field(alias="class", description="MODULE:CLASS of an mmiobus.devices.Device")
    claim: OneOrMany = Field(
        default_factory=list, description="regions of the machine description it serves"
    )
    at: U64 | None = Field(None, description="or: register a region of its own at this address")
    size: Size | None = Field(None, description="the size of that region (default: the class's)")
    name: str | None = Field(None, description="its name on the bus (default: the process's)")
    args: dict[str, Any] = Field(default_factory=dict, description="constructor arguments")

    _one_or_many = field_validator("claim", mode="before")(_listed)


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


class QemuProcess(ProcessBase):
    """QEMU's device models serving bus regions: `mmiobus device qemu` (docs/peers.md)."""

    kind: Literal["qemu"]
    arch: str = Field("riscv64", description="QEMU's target: riscv64, aarch64, arm, x86_64, ...")
    machine: str | None = Field(None, description="QEMU's -machine, e.g. virt")
    claim: OneOrMany = Field(
        default_factory=list,
        description="REGION[=QADDR]: a region of the description, served from its own address "
        "in QEMU or from QADDR",
    )
    at: OneOrMany = Field(
        default_factory=list, description="ADDR:SIZE=QADDR: a region of its own, from QADDR"
    )
    irq_controller: str | None = Field(
        None, description="a QOM path or type whose interrupt inputs become bus lines"
    )
    irqs: dict[int, str] = Field(
        default_factory=dict, description="controller input -> bus line name (NAME.LINE)"
    )
    serial: OneOrMany = Field(
        default_factory=list,
        description="where QEMU's serial ports go, in order: stdout, file:PATH, tcp:HOST:PORT, "
        "unix:PATH, none",
    )
    name: str | None = Field(None, description="its name on the bus")
    qemu_args: list[str] = Field(default_factory=list, description="more QEMU options")

    _one_or_many = field_validator("claim", "at", "serial", mode="before")(_listed)

    @model_validator(mode="after")
    def _serves(self) -> QemuProcess:
        if not self.claim and not self.at:
            raise ValueError("give claim: REGION or at: ADDR:SIZE=QADDR (the windows it serves)")
        return self


class RtlProcess(ProcessBase):
    """A Verilog module serving a bus region over APB: `mmiobus device rtl` (needs Icarus
    Verilog and mmiobus[rtl])."""

    kind: Literal["rtl"]
    sources: list[str] = Field(min_length=1, description="Verilog files, relative to the bench")
    top: str = Field(description="the top module (the APB completer)")
    claim: str | None = Field(None, description="REGION[=APBADDR]: a region it serves")
    at: str | None = Field(None, description="or ADDR:SIZE[=APBADDR]: a region of its own")
    irqs: list[str] = Field(default_factory=list, description="PORT[=LINE]: interrupt outputs")
    name: str | None = Field(None, description="its name on the bus")
    prefix: str | None = Field(None, description="prefix of the APB port names")
    clock: str | None = None
    reset: str | None = None
    period_ns: int | None = Field(None, gt=0, description="the clock period")

    @model_validator(mode="after")
    def _serves(self) -> RtlProcess:
        if (self.claim is None) == (self.at is None):
            raise ValueError("give claim: REGION or at: ADDR:SIZE (the window it serves)")
        return self


class PciProxyProcess(ProcessBase):
    """A QEMU PC guest whose PCI function's BARs are windows onto the bus: `mmiobus pci-proxy`.
    It ends when QEMU does."""

    kind: Literal["pci-proxy"]
    bars: list[str] = Field(min_length=1, description="N=ADDR:SIZE[:io]: BAR N onto the bus")
    vendor: U64 | None = None
    device_id: U64 | None = None
    class_code: U64 | None = None
    pci_addr: str | None = Field(None, description="SLOT[.FN]")
    name: str | None = Field(None, description="its name on the bus")
    qemu_args: list[str] = Field(min_length=1, description="QEMU's command line")


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


def qemu_argv(p: QemuProcess, name: str, site: Site) -> list[str]:
    argv = ["device", "qemu", "--server", site.server, "--arch", p.arch, "--name", p.name or name]
    if p.machine is not None:
        argv += ["--machine", p.machine]
    for option, values in (("--claim", p.claim), ("--at", p.at)):
        for value in values:
            argv += [option, value]
    for where in p.serial:  # a file is relative to the bench, as every path it gives
        argv += ["--serial", "file:" + site.path(where[5:]) if where.startswith("file:") else where]
    if p.irq_controller is not None:
        argv += ["--irq-controller", p.irq_controller]
    for number, line in p.irqs.items():
        argv += ["--irq", f"{number}={line}"]
    return argv


def rtl_argv(p: RtlProcess, name: str, site: Site) -> list[str]:
    argv = ["device", "rtl", *(site.path(f) for f in p.sources), "--top", p.top, "--server",
            site.server, "--name", p.name or name]  # fmt: skip
    for option, value in (("--claim", p.claim), ("--at", p.at), ("--prefix", p.prefix),
                          ("--clock", p.clock), ("--reset", p.reset)):  # fmt: skip
        if value is not None:
            argv += [option, value]
    if p.period_ns is not None:
        argv += ["--period", str(p.period_ns)]
    for irq in p.irqs:
        argv += ["--irq", irq]
    return argv


def pci_proxy_argv(p: PciProxyProcess, name: str, site: Site) -> list[str]:
    argv = ["pci-proxy", "--server", site.server, "--name", p.name or name]
    for bar in p.bars:
        argv += ["--bar", bar]
    for option, value in (("--vendor", p.vendor), ("--device-id", p.device_id),
                          ("--class", p.class_code)):  # fmt: skip
        if value is not None:
            argv += [option, hex(value)]
    if p.pci_addr is not None:
        argv += ["--pci-addr", p.pci_addr]
    return argv


def qemu_args(p: QemuProcess | PciProxyProcess) -> list[str]:
    return ["--", *p.qemu_args] if p.qemu_args else []


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
    ``logs``: it takes ``--log-format``; ``tail(process)``: arguments that go last, after
    ``options`` (QEMU's own); ``packages``: the Debian packages its image needs, and ``extras``
    the mmiobus extras (``mmiobus compose`` builds the image with them)."""

    model: type[ProcessBase]
    argv: Callable[[Any, str, Site], list[str]]
    rank: int
    lasting: bool
    ready: Literal["line", "subscribed", "started"]
    ready_line: str = ""
    mmiobus: bool = True
    logs: bool = True
    tail: Callable[[Any], list[str]] | None = None
    packages: Callable[[Any], tuple[str, ...]] = lambda p: ()
    extras: tuple[str, ...] = ()


KINDS: dict[str, Kind] = {
    "trace": Kind(TraceProcess, trace_argv, 0, True, "subscribed", logs=False),
    "device": Kind(DeviceProcess, device_argv, 1, True, "line", ": serving "),
    "qemu": Kind(
        QemuProcess,
        qemu_argv,
        1,
        True,
        "line",
        ": serving ",
        tail=qemu_args,
        packages=lambda p: (QEMU_PACKAGES.get(p.arch, "qemu-system-misc"),),
    ),
    "rtl": Kind(
        RtlProcess,
        rtl_argv,
        1,
        True,
        "line",
        ": serving ",
        packages=lambda p: ("iverilog",),
        extras=("rtl",),
    ),
    "cpu": Kind(CpuProcess, cpu_argv, 2, False, "started"),
    "pci-proxy": Kind(
        PciProxyProcess,
        pci_proxy_argv,
        2,
        False,
        "line",
        "starting QEMU",
        tail=qemu_args,
        packages=lambda p: ("qemu-system-x86",),
    ),
    "command": Kind(CommandProcess, command_argv, 3, False, "started", mmiobus=False, logs=False),
}
