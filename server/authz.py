"""Who may do what: which role each RPC needs (``RULES``, the one table), the gate that checks
it before a handler runs, and the checks handlers make within a call (a device's name, claims,
registrations and DMA; a topology operation on a region a device serves).

A bus with no policy (loopback, mutual TLS without an ``--auth`` file, or ``--insecure``) has no
gate at all: every caller is ``EVERYONE``, with every role, and the handlers' checks pass.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc

from .auth import CALLER, EVERYONE, NOBODY, Identity, Policy, Role
from .errors import PermissionDenied, Unauthenticated

if TYPE_CHECKING:
    from mmiobus.v1 import bus_pb2

    from .core import BusCore


class Need(enum.Enum):
    """Requirements that are not a single role."""

    KNOWN = "credentials the bus knows"  # any identity with a role (GetInfo: what clients need)
    ACCESSES = "the read role for reads and the write role for writes"
    HELLO = "the device role, checked at hello (a device may present its token there)"


RULES: dict[str, Role | Need] = {
    "/mmiobus.v1.Bus/Rw": Need.ACCESSES,
    "/mmiobus.v1.Bus/RwStream": Need.ACCESSES,
    "/mmiobus.v1.Bus/RwBatch": Need.ACCESSES,
    "/mmiobus.v1.Bus/ApplyTopology": Role.TOPOLOGY,  # + admin to change a region a device serves
    "/mmiobus.v1.Bus/GetTopology": Role.READ,
    "/mmiobus.v1.Bus/Mtree": Role.READ,
    "/mmiobus.v1.Bus/GetInfo": Need.KNOWN,
    "/mmiobus.v1.Bus/Trace": Role.TRACE,  # events carry data
    "/mmiobus.v1.Bus/WatchTopology": Role.READ,  # what GetTopology shows, as it changes
    "/mmiobus.v1.Devices/Attach": Need.HELLO,  # DMA reads need read, DMA writes write
    "/mmiobus.v1.Devices/ListDevices": Role.READ,  # peers' addresses only for admin
    "/mmiobus.v1.Devices/ResetDevice": Role.ADMIN,
    "/mmiobus.v1.Devices/GetIrqs": Role.READ,
    "/mmiobus.v1.Devices/WatchIrqs": Role.READ,
}
"""The role each RPC needs. Health checks and server reflection need none."""

Refusal = tuple[grpc.StatusCode, str]
UnaryCheck = Callable[[Any, grpc.aio.ServicerContext], Refusal | None]
MessageCheck = Callable[[Any], Refusal | None]
StreamCheck = Callable[[grpc.aio.ServicerContext], tuple[Refusal | None, MessageCheck | None]]

_CREDENTIALS = "a token (--token-file or $MMIOBUS_TOKEN) or a client certificate"


def _short(method: str) -> str:
    return method.rsplit(".", 1)[-1].replace("/", ".")  # /mmiobus.v1.Bus/Rw -> Bus.Rw


def _missing(who: Identity, what: str, needs: str) -> Refusal:
    if not who.authenticated:
        return (
            grpc.StatusCode.UNAUTHENTICATED,
            f"{what} needs {needs}, and this bus gives callers without credentials "
            f"{who.describe_roles()}: present {_CREDENTIALS}",
        )
    return (
        grpc.StatusCode.PERMISSION_DENIED,
        f"{what} needs {needs}; identity {who.name!r} has {who.describe_roles()}",
    )


class Gate:
    """Authenticates each call against ``policy`` and checks ``RULES`` before the handler
    runs; the handler finds the caller in ``auth.CALLER``."""

    RECENT = 8  # accepted headers remembered

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        # The last headers accepted, with whom they named: a client sends the same one on every
        # call, and comparing it with these (each in constant time, all of them every time)
        # costs less than hashing it and comparing the digest with every identity's.
        self._recent: tuple[tuple[bytes, Identity], ...] = ()

    def identify(self, context: grpc.aio.ServicerContext) -> Identity | Refusal:
        """The caller's identity, or UNAUTHENTICATED for credentials the policy refuses."""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                return self._bearer(str(value).encode())
        if self.policy.certificates:
            who = self.policy.by_certificate(context.auth_context())
            if who is not None:
                return who
        return self.policy.anonymous

    def _bearer(self, header: bytes) -> Identity | Refusal:
        found = None
        for known, ident in self._recent:
            if hmac.compare_digest(known, header):
                found = ident
        if found is not None:
            return found
        token = header[7:].strip()
        if header[:7].lower() != b"bearer " or not token:
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                "the authorization metadata must be 'Bearer TOKEN'",
            )
        who = self.policy.by_token(token.decode(errors="replace"))
        if who is None:
            return (
                grpc.StatusCode.UNAUTHENTICATED,
                "the token matches no identity of this bus: check --token-file or "
                "$MMIOBUS_TOKEN against the bus's --auth file",
            )
        self._recent = ((header, who), *self._recent[: self.RECENT - 1])
        return who

    def unary(self, method: str) -> UnaryCheck:
        """The check for a call with one request (which it may look at: Rw, RwBatch)."""
        rule = RULES[method]
        name = _short(method)
        identify = self.identify

        if rule is Need.ACCESSES:

            def check(request: Any, context: grpc.aio.ServicerContext) -> Refusal | None:
                who = identify(context)
                if type(who) is tuple:
                    return who
                assert isinstance(who, Identity)
                roles = who.roles
                if Role.READ not in roles or Role.WRITE not in roles:
                    return _access_check(who, name)(request)
                return None  # accesses read nothing of the caller: CALLER stays unset

            return check

        def check_role(request: Any, context: grpc.aio.ServicerContext) -> Refusal | None:
            who = identify(context)
            if type(who) is tuple:
                return who
            assert isinstance(who, Identity)
            refusal = _role_refusal(who, rule, name)
            if refusal is None:
                CALLER.set(who)
            return refusal

        return check_role

    def stream(self, method: str) -> StreamCheck:
        """The check at the start of a call whose requests stream in, and the check for each
        request (``None`` when requests need none)."""
        rule = RULES[method]
        name = _short(method)

        def check(context: grpc.aio.ServicerContext) -> tuple[Refusal | None, MessageCheck | None]:
            who = self.identify(context)
            if type(who) is tuple:
                return who, None
            assert isinstance(who, Identity)
            if rule is Need.HELLO:
                CALLER.set(who)  # the device role is checked at hello
                return None, None
            if rule is Need.ACCESSES:  # each message's accesses say which roles they need
                return None, _stream_access_check(who, name)
            refusal = _role_refusal(who, rule, name)
            if refusal is None:
                CALLER.set(who)
            return refusal, None

        return check


def _role_refusal(who: Identity, rule: Role | Need, name: str) -> Refusal | None:
    if rule is Need.KNOWN:
        if who.authenticated or who.roles:
            return None
        return (
            grpc.StatusCode.UNAUTHENTICATED,
            f"{name}: this bus requires credentials: present {_CREDENTIALS}",
        )
    assert isinstance(rule, Role)
    return None if rule in who.roles else _missing(who, name, f"the {rule} role")


def _access_check(who: Identity, name: str) -> MessageCheck:
    """The check of an Rw or RwBatch request's accesses against ``who``'s roles."""
    reads, writes = who.has(Role.READ), who.has(Role.WRITE)
    if reads and writes:
        return lambda request: None

    def check(request: Any) -> Refusal | None:
        accesses = request.accesses if hasattr(request, "accesses") else (request,)
        for access in accesses:
            write = access.WhichOneof("op") == "write"
            if not (writes if write else reads):
                role = Role.WRITE if write else Role.READ
                what = f"{'writing' if write else 'reading'} memory ({name})"
                return _missing(who, what, f"the {role} role")
        return None

    return check


def _stream_access_check(who: Identity, name: str) -> MessageCheck | None:
    if who.has(Role.READ) and who.has(Role.WRITE):
        return None
    return _access_check(who, name)


# -- within a call ---------------------------------------------------------------------------


def caller(core: BusCore) -> Identity:
    """The identity of the call being served: ``EVERYONE`` on a bus without a policy."""
    policy = core.config.security.policy
    if policy is None:
        return EVERYONE
    return CALLER.get() or NOBODY


def require(who: Identity, role: Role, what: str) -> None:
    """Raise ``PermissionDenied`` (or ``Unauthenticated`` for a caller without credentials)
    unless ``who`` has ``role``."""
    if role not in who.roles:
        code, message = _missing(who, what, f"the {role} role")
        raise (Unauthenticated if code == grpc.StatusCode.UNAUTHENTICATED else PermissionDenied)(
            message
        )


def device_identity(core: BusCore, hello_token: str) -> Identity:
    """Who a device is: the caller, or, for a caller without credentials on the call, the
    identity of the token in its hello. Raises unless it has the device role."""
    policy = core.config.security.policy
    who = caller(core)
    if policy is not None and hello_token and not who.authenticated:
        found = policy.by_token(hello_token)
        if found is None:
            raise Unauthenticated(
                "the token in hello matches no identity of this bus: check --token-file or "
                "$MMIOBUS_TOKEN against the bus's --auth file"
            )
        who = found
    require(who, Role.DEVICE, "attaching as a device")
    return who


def check_device_name(who: Identity, name: str) -> None:
    """A device may use only the names its identity allows."""
    if not who.device.may_be(name):
        raise PermissionDenied(
            f"identity {who.name!r} may not attach as device {name!r} (it may be: "
            f"{', '.join(who.device.names) or 'no device'})"
        )


def check_claim(who: Identity, region: str) -> None:
    """A device may claim only the regions its identity allows."""
    if not who.device.may_claim(region):
        raise PermissionDenied(
            f"identity {who.name!r} may not claim region {region!r} (it may claim: "
            f"{', '.join(who.device.claims) or 'nothing'})"
        )


def check_register(
    who: Identity, space: str, container: str, addr: int, size: int, region: str
) -> None:
    """A device may register regions only inside the areas its identity allows."""
    if not who.device.may_register(space, container, addr, size):
        where = f"container {container!r}" if container else f"address space {space!r}"
        areas = ", ".join(
            f"{a.container or a.space}:{a.start:#x}-{a.end:#x}" for a in who.device.register
        )
        raise PermissionDenied(
            f"identity {who.name!r} may not register region {region!r} at {addr:#x} (size "
            f"{size:#x}) in {where} (it may register in: {areas or 'nowhere'})"
        )


def check_topology_op(core: BusCore, op: bus_pb2.TopologyOp, where: str) -> None:
    """Refuse, unless the caller has the admin role, an operation that would delete, unmap,
    disable, move, resize or overlay (at a higher priority) a region a device serves."""
    if not core.devices.served:
        return
    who = caller(core)
    if who.has(Role.ADMIN):
        return
    from .auth_regions import protected_change

    change = protected_change(core.machine, core.devices.served, op)
    if change is not None:
        raise PermissionDenied(
            f"{where}: {change}: that needs the admin role (identity {who.name!r} has "
            f"{who.describe_roles()})"
        )
