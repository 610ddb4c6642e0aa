"""The device domain's bookkeeping: who is attached, which regions they serve, and what those
regions answer while nobody does.

A region is *claimed* (declared in the machine description, served by whoever claims it; it
falls back to its ``absent`` behaviour when its device leaves) or *registered* (created by the
device, mapped where it asked, unmapped when it leaves). Every refusal is a domain error
(``mmiobus.server.errors``) carrying the offending name.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

import structlog
from mmiobus.machine import Machine
from mmiobus.machine.regions import constraints
from mmiobus.machine.schema import InProcessDevice, MmioSpec, RomdSpec
from mmiobus.memory.access import Endianness
from mmiobus.memory.addrspace import AddressSpace
from mmiobus.memory.region import MemoryRegion

from ..config import ServerConfig
from ..errors import (
    AlreadyExists,
    Conflict,
    InvalidRequest,
    LimitExceeded,
    NotFound,
    PermissionDenied,
)
from ..irq import IrqRegistry
from ..names import check_length
from .absent import AbsentDevices
from .remote import Binding, DeviceIdentity, RemoteSession

if TYPE_CHECKING:
    from ..core import BusCore
    from .in_process import InProcessHost

log = structlog.get_logger("mmiobus.devices")

MAX_ENDED = 1024  # device names whose ended sessions' counters are kept
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")  # used with fullmatch


class AttachedDevice(Protocol):
    """What the bus knows of an attached device, remote or in the server."""

    @property
    def name(self) -> str: ...

    @property
    def peer(self) -> str: ...

    @property
    def in_process(self) -> bool: ...

    @property
    def counters(self) -> dict[str, int]:
        """accesses, timeouts, dma"""

    @property
    def region_ids(self) -> list[str]: ...

    async def reset(self, timeout: float) -> None: ...


def check_name(name: str, what: str = "device name") -> None:
    """``InvalidRequest`` unless ``name`` is letters, digits, '_', '.', '-' (not starting with
    the last two) and at most ``MAX_NAME_BYTES`` long."""
    check_length(name, what)
    if not NAME_RE.fullmatch(name):
        raise InvalidRequest(f"{what} {name!r} must be letters, digits, '_', '.', '-'")


class DeviceRegistry:
    """Every attached device and the regions devices serve (see the module docstring)."""

    def __init__(self, machine: Machine, irqs: IrqRegistry, config: ServerConfig) -> None:
        self.machine = machine
        self.irqs = irqs
        self.default_deadline = config.device_deadline_ms / 1000.0
        self.max_queue_bytes = config.limits.max_device_queue_bytes
        self.max_regions = config.limits.max_regions
        self.identities: dict[str, DeviceIdentity] = {}
        self.sessions: dict[str, RemoteSession] = {}
        self.in_process: dict[str, InProcessHost] = {}
        self.cpus: dict[str, AttachedDevice] = {}  # CPUs the server runs
        self.served: dict[MemoryRegion, str] = {}  # region -> device name serving it
        self.absent = AbsentDevices()
        # The counters of sessions that ended, by device name (metrics add the live ones).
        self.ended: dict[str, Counter[str]] = {}
        self.metrics: object = None  # the bus's BusMetrics with `serve --metrics`
        self._handles = 0
        for key, spec in self._declared_device_regions():
            if isinstance(spec.device, str):
                self.absent.apply(machine.regions[key], spec)

    def _declared_device_regions(self) -> Iterator[tuple[str, MmioSpec | RomdSpec]]:
        for key, declared in self.machine.declared.items():
            spec = declared.spec
            if isinstance(spec, (MmioSpec, RomdSpec)) and spec.device is not None:
                yield key, spec

    def identity(self, name: str) -> DeviceIdentity:
        ident = self.identities.get(name)
        if ident is None:
            ident = self.identities[name] = DeviceIdentity(name)
        return ident

    def attached(self) -> list[AttachedDevice]:
        """Every attached device, by name."""
        devices: dict[str, AttachedDevice] = {**self.in_process, **self.cpus, **self.sessions}
        return [devices[name] for name in sorted(devices)]

    def get(self, name: str) -> AttachedDevice:
        device = self.sessions.get(name) or self.in_process.get(name) or self.cpus.get(name)
        if device is None:
            raise NotFound(f"no device named {name!r} is attached")
        return device

    def pipeline_key(self, space: AddressSpace, addr: int, length: int) -> object:
        """The session an access goes to entirely (one range of a region it serves), else
        None: accesses with the same key may be sent before the previous one is answered."""
        fr = space.current_map.lookup(addr)
        if fr is None or addr + length > fr.end:
            return None
        owner = fr.mr.ops.owner
        if type(owner) is DeviceIdentity and owner.session is not None:
            return owner.session
        return None

    # -- sessions -----------------------------------------------------------------------------

    def admit(self, name: str, peer: str, requester_id: int) -> RemoteSession:
        """A device process says hello: its session, unless the name is bad or taken."""
        check_name(name)
        if requester_id > 0xFFFF:
            raise InvalidRequest(f"requester_id {requester_id} does not fit in 16 bits")
        if name in self.sessions or name in self.in_process or name in self.cpus:
            other = self.sessions.get(name)
            where = f" from {other.peer}" if other else " in the server"
            raise AlreadyExists(f"a device named {name!r} is already attached{where}")
        identity = self.identity(name)
        session = RemoteSession(
            name, peer, requester_id, identity, self.release, self.max_queue_bytes
        )
        identity.session = session
        session.metrics = self.metrics
        self.sessions[name] = session
        log.info("device attached", device=name, peer=peer)
        return session

    def release(self, session: RemoteSession) -> None:
        """A session ended: claimed regions go absent, registered ones go away, its interrupt
        lines go low."""
        if self.sessions.get(session.name) is session:
            del self.sessions[session.name]
        session.identity.session = None
        self.ended.setdefault(session.name, Counter()).update(session.counters)
        if len(self.ended) > MAX_ENDED:  # names come and go: forget the oldest
            del self.ended[next(iter(self.ended))]
        with self.machine.system.transaction():
            for b in session.bindings.values():
                self._unbind(b)
        session.bindings.clear()
        self.irqs.forget_device(session.name, [d.name for d in self.attached()])
        if self.identities.get(session.name) is session.identity:
            del self.identities[session.name]  # a name that comes back starts afresh
        log.info("device detached", device=session.name, peer=session.peer)

    # -- regions ------------------------------------------------------------------------------

    def claim(self, session: RemoteSession, region_id: str) -> Binding:
        """Serve a region the machine description declares."""
        declared = self.machine.declared.get(region_id)
        mr = self.machine.regions.get(region_id)
        if declared is None or mr is None:
            raise NotFound(f"no region with id {region_id!r}")
        spec = declared.spec
        if not isinstance(spec, (MmioSpec, RomdSpec)):
            raise Conflict(
                f"region {region_id!r} is {spec.kind}: only mmio and romd regions have devices"
            )
        if isinstance(spec.device, InProcessDevice):
            raise AlreadyExists(f"region {region_id!r} is served by a device running in the server")
        if spec.device is not None and spec.device != session.name:
            raise PermissionDenied(
                f"region {region_id!r} belongs to device {spec.device!r}, not {session.name!r}"
            )
        if mr in self.served:
            raise AlreadyExists(
                f"region {region_id!r} is already served by device {self.served[mr]!r}"
            )
        b = self._bind(session, region_id, mr, spec, claimed=True)
        log.info("region claimed", device=session.name, region=region_id)
        return b

    def register(
        self,
        session: RemoteSession,
        spec: MmioSpec,
        parent: MemoryRegion,
        addr: int,
        priority: int,
    ) -> Binding:
        """Create the region ``spec`` describes, map it in ``parent`` and serve it; all or
        nothing."""
        check_length(spec.key, "id")
        check_length(spec.name, "name")
        m = self.machine
        limit = self.max_regions
        if len(m.regions) + len(m.system.address_spaces) >= limit:
            raise LimitExceeded(
                f"register: the machine has {len(m.regions)} regions and address spaces, the "
                f"limit (--max-regions {limit})"
            )
        with m.system.atomic():
            mr = m.create_region(spec)
            parent.add_subregion(addr, mr, priority)
            b = self._bind(session, spec.key, mr, spec, claimed=False)
        log.info("region registered", device=session.name, region=spec.key, addr=hex(addr))
        return b

    def fresh_region_id(self, device: str) -> str:
        """An unused region id for a region ``device`` registers without naming it."""
        n = 0
        while f"{device}.{n}" in self.machine.regions:
            n += 1
        return f"{device}.{n}"

    def unmap(self, session: RemoteSession, handle: int) -> None:
        """Stop serving a region (claimed: it goes absent; registered: it is unmapped)."""
        b = session.bindings.pop(handle, None)
        if b is None:
            raise NotFound(f"no region with handle {handle}")
        with self.machine.system.transaction():
            self._unbind(b)

    def _bind(
        self,
        session: RemoteSession,
        region_id: str,
        mr: MemoryRegion,
        spec: MmioSpec | RomdSpec,
        *,
        claimed: bool,
    ) -> Binding:
        """Route ``mr``'s ops to ``session`` with the access rules ``spec`` declares."""
        self._handles += 1
        b = Binding(
            self._handles,
            region_id,
            mr,
            session,
            constraints(spec.valid),
            constraints(spec.impl),
            Endianness(spec.endianness),
            spec.posted_writes,
            (spec.deadline / 1000.0) if spec.deadline else self.default_deadline,
            claimed=claimed,
        )
        mr.set_ops(b.ops())
        session.bindings[b.handle] = b
        self.served[mr] = session.name
        return b

    def _unbind(self, b: Binding) -> None:
        self.served.pop(b.mr, None)
        if b.claimed:
            declared = self.machine.declared.get(b.region_id)
            spec = declared.spec if declared is not None else None
            if isinstance(spec, (MmioSpec, RomdSpec)) and spec.device is not None:
                self.absent.apply(b.mr, spec)
            else:  # no device declared (or the region was deleted meanwhile)
                b.mr.set_ops(None)
        elif self.machine.regions.get(b.region_id) is b.mr:  # not a region that took its id
            self.machine.delete_region(b.region_id)
            self.absent.forget(b.mr)

    def forget_deleted(self) -> None:
        """After a topology change: bindings whose region was deleted (by a client) go, so
        that the device list agrees with the topology."""
        regions = self.machine.regions
        for session in self.sessions.values():
            gone = [h for h, b in session.bindings.items() if regions.get(b.region_id) is not b.mr]
            for handle in gone:
                b = session.bindings.pop(handle)
                if self.served.get(b.mr) == session.name:
                    del self.served[b.mr]
                log.info("region deleted while served", device=session.name, region=b.region_id)

    # -- devices running in the server --------------------------------------------------------

    async def start_in_process(self, core: BusCore) -> None:
        """Instantiate and start the devices the machine description runs in the server."""
        from .in_process import InProcessHost

        for key, spec in self._declared_device_regions():
            if isinstance(spec.device, InProcessDevice):
                host = InProcessHost(core, spec.device.name or key, key, spec)
                self.in_process[host.name] = host
                await host.serve_region()

    async def stop_in_process(self) -> None:
        for host in self.in_process.values():
            await host.stop()

    def end_sessions(self) -> None:
        """Shutdown: end every device's stream once what is queued for it has gone (its
        pending accesses fail then)."""
        for session in list(self.sessions.values()):
            session.outbox.ending = True
            session.outbox.wake.set()
