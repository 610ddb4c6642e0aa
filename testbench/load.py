"""Reading a bench file into a checked ``Bench``: every problem is one line that names the file,
line and column and the field (``bench.yaml:7:5: processes.uart0.clas: unknown field``), from
the format itself (unknown fields, kinds, values) and from what the file refers to (processes
that do not exist, dependency cycles, machines, regions to claim)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmiobus.machine.errors import DescriptionError, Path_
from mmiobus.machine.problems import problem_message
from mmiobus.machine.yamlio import load_yaml
from pydantic import ValidationError

from .processes import KINDS, DeviceProcess, ProcessBase, QemuProcess, RtlProcess
from .schema import RESERVED, BenchSpec

Problems = list[tuple[Path_, str]]


class BenchError(DescriptionError):
    """A bench file is wrong: one line per problem, ``file:line:col: field: message``."""


@dataclass
class Bench:
    """A checked bench: its spec, where it came from (paths in it are relative to ``folder``)
    and the order its processes start in (``waves``: each starts once the one before is
    ready)."""

    spec: BenchSpec
    path: Path
    locate: Callable[[Path_], tuple[int, int] | None] | None = None
    waves: list[list[str]] = field(default_factory=list)
    source: str = ""  # the file as it was named, for messages

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def name(self) -> str:
        return self.spec.name or self.path.stem

    @property
    def processes(self) -> Mapping[str, Any]:
        return self.spec.processes

    def where(self, path: Path_) -> str:
        """``file:line:col: field`` for a message about ``path`` in the file."""
        source = self.source or str(self.path)
        return str(BenchError([(path, "")], source, self.locate)).removesuffix(": ")

    def resolve(self, relative: str) -> Path:
        """A path the bench gives, from its folder."""
        return (self.folder / relative).resolve()


def load_bench(path: str | Path) -> Bench:
    """The bench in the YAML file at ``path``, checked; ``BenchError`` otherwise."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise BenchError([((), f"cannot read the bench: {e.strerror or e}")], str(path)) from None
    except UnicodeDecodeError:
        raise BenchError(
            [((), "cannot read the bench: it is not text (UTF-8)")], str(path)
        ) from None
    return parse_bench(text, path)


def parse_bench(text: str, path: Path) -> Bench:
    """The bench YAML ``text`` says (``path``: where it is, for errors and relative paths)."""
    source = str(path)
    data, locate = load_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise BenchError([((), "a bench is a mapping (bus:, processes:, expect:, ...)")], source,
                         locate)  # fmt: skip
    try:
        spec = BenchSpec.model_validate(data)
    except ValidationError as e:
        raise BenchError([_problem(err) for err in e.errors()], source, locate) from None
    bench = Bench(spec, path.resolve(), locate, source=source)
    problems = _references(bench)
    if not problems:
        waves, cycle = _waves(spec.processes)
        problems += cycle
        bench.waves = waves
    if not problems:
        problems += _machine(bench)
    if problems:
        raise BenchError(problems, source, locate)
    return bench


def _problem(err: Mapping[str, Any]) -> tuple[Path_, str]:
    """One pydantic error, worded for benches and placed at its field."""
    loc = list(err["loc"])
    # pydantic puts the kind it chose after the process name: processes.NAME.device.claim
    if len(loc) > 2 and loc[0] == "processes" and loc[2] in KINDS:
        del loc[2]
    kind = err["type"]
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        return (*loc, "kind"), f"kind {tag!r} is not one of {', '.join(KINDS)}"
    if kind == "union_tag_not_found":
        return (*loc, "kind"), f"kind is missing (one of {', '.join(KINDS)})"
    if loc[-1:] == ["[key]"]:
        return tuple(loc[:-1]), (
            "a process name is letters, digits, '_', '.' and '-', starting with a letter or digit"
        )
    return tuple(loc), problem_message(err)


def _references(bench: Bench) -> Problems:
    """Names the bench uses that it does not define."""
    spec = bench.spec
    names = set(spec.processes)
    problems: Problems = []
    for name in spec.processes:
        if name in RESERVED:
            problems.append(
                (("processes", name), f"{name!r} is the bus's own name: choose another")
            )
    for name, p in spec.processes.items():
        for i, other in enumerate(p.after):
            if other not in names:
                problems.append(
                    (("processes", name, "after", i), _unknown(other, names, "process"))
                )
    for what in ("console", "exit"):
        for i, expectation in enumerate(getattr(spec.expect, what)):
            other = expectation.process
            if other is not None and other not in names:
                problems.append((("expect", what, i, "process"), _unknown(other, names, "process")))
    if spec.bus.config is not None and not bench.resolve(spec.bus.config).is_file():
        problems.append((("bus", "config"), f"there is no file {bench.resolve(spec.bus.config)}"))
    return problems


def _unknown(name: str, names: set[str], what: str) -> str:
    known = ", ".join(sorted(names)) or "none"
    return f"there is no {what} {name!r} (the bench's: {known})"


def _waves(processes: Mapping[str, ProcessBase]) -> tuple[list[list[str]], Problems]:
    """The start order: the processes whose ``after`` have all started, lowest kind rank first,
    a wave of equals at a time; a dependency cycle is a problem at its first ``after``."""
    rank = {name: KINDS[p.kind].rank for name, p in processes.items()}
    started: set[str] = set()
    waves: list[list[str]] = []
    left = dict(processes)
    while left:
        ready = [n for n, p in left.items() if set(p.after) <= started]
        if not ready:
            name = sorted(left)[0]
            cycle = _cycle(processes, name)
            where = ("processes", cycle[0], "after", processes[cycle[0]].after.index(cycle[1]))
            return waves, [(where, "the processes wait for each other: " + " -> ".join(cycle))]
        low = min(rank[n] for n in ready)
        wave = sorted(n for n in ready if rank[n] == low)
        waves.append(wave)
        started.update(wave)
        for n in wave:
            del left[n]
    return waves, []


def _cycle(processes: Mapping[str, ProcessBase], start: str) -> list[str]:
    """A chain of ``after`` from ``start`` until a process repeats (the cycle, closed)."""
    path = [start]
    while True:
        following = [a for a in processes[path[-1]].after if a in processes]
        nxt = following[0]
        if nxt in path:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)


def _machine(bench: Bench) -> Problems:
    """The machine loads, and what the bench names in it exists: regions to claim, regions
    whose device runs in the server, the CPU the server runs."""
    from mmiobus.machine import Machine
    from mmiobus.machine.builtin import MachineNotFoundError
    from mmiobus.machine.schema import MmioSpec, RomdSpec

    bus = bench.spec.bus
    try:
        if bus.config is not None:
            machine = Machine.from_file(bench.resolve(bus.config))
        else:
            machine = Machine.builtin(bus.machine or "default")
    except MachineNotFoundError as e:
        return [(("bus", "machine"), str(e))]
    except DescriptionError as e:
        return [(("bus", "config"), f"the machine description is wrong: {e}".splitlines()[0])]
    problems: Problems = []

    def region(path: Path_, rid: str, device: str | None) -> None:
        declared = machine.declared.get(rid)
        if declared is None:
            problems.append((path, _unknown(rid, set(machine.declared), "region")))
            return
        spec = declared.spec
        if not isinstance(spec, (MmioSpec, RomdSpec)):
            problems.append((path, f"region {rid!r} is {spec.kind}: only mmio and romd regions "
                                   "have devices"))  # fmt: skip
        elif device is not None and isinstance(spec.device, str) and spec.device != device:
            problems.append((path, f"region {rid!r} belongs to device {spec.device!r}, not "
                                   f"{device!r}: name the process {spec.device}, or give it "
                                   f"name: {spec.device}"))  # fmt: skip

    for name, p in bench.spec.processes.items():
        if isinstance(p, (DeviceProcess, QemuProcess)):
            for i, claim in enumerate(p.claim):  # QEMU's: REGION[=QADDR]
                region(("processes", name, "claim", i), claim.split("=")[0], p.name or name)
        elif isinstance(p, RtlProcess) and p.claim is not None:
            region(("processes", name, "claim"), p.claim.split("=")[0], p.name or name)
    for rid in bus.devices:
        region(("bus", "devices", rid), rid, None)
    if bus.cpu is not None and bus.cpu.name not in machine.cpus:
        known = ", ".join(machine.cpus) or "none"
        problems.append((("bus", "cpu", "name"),
                         f"the machine has no CPU {bus.cpu.name!r} (its CPUs: {known})"))  # fmt: skip
    return problems
