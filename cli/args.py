"""Arguments every command group shares: numbers, addresses and sizes as machine descriptions
write them (``4096``, ``0x1000``, ``4K``, ``2**12``), bus addresses (``HOST:PORT``,
``[IPV6]:PORT``, ``unix:PATH``), and the option groups for reaching a bus and for logging.

A malformed argument is a usage error (exit status 2) that names it and says what to write.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from mmiobus.units import MASK64, TWO64, parse_size

from .errors import CommandError, UsageError

if TYPE_CHECKING:
    from mmiobus.client import Bus
    from mmiobus.credentials import Credentials

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("console", "json")
DEFAULT_TIMEOUT = 30.0


# -- numbers ---------------------------------------------------------------------------------


def _integer(text: str, what: str) -> int:
    """``text`` as an integer (a leading ``-`` allowed), or a usage error naming ``what``."""
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    try:
        return sign * parse_size(body.removeprefix("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not {what} (write 4096, 0x1000, 0b1000, 4K or 2**12; use 0x... for hex)"
        ) from None


def number(text: str) -> int:
    """A non-negative integer: decimal, 0x hex, 0o octal, 0b binary, underscores, units."""
    value = _integer(text, "a number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative (values are unsigned)")
    return value


MAX_POLL_US = 100_000


def poll_us(text: str) -> int:
    """A polling window in microseconds: 0 (never poll) to ``MAX_POLL_US``."""
    value = number(text)
    if value > MAX_POLL_US:
        raise argparse.ArgumentTypeError(
            f"{text} us is longer than {MAX_POLL_US} us (0 turns polling off)"
        )
    return value


POLL_HELP = (
    "wait for each answer to a CPU's read by polling for up to this many microseconds before "
    "sleeping, as QEMU's event loop (poll-max-ns) and KVM's halted vCPUs do (default: 1000, "
    "or 0 with --no-pin; the window adapts to how long answers take; 0: never poll, which "
    "spends no CPU time waiting but makes every access to a device process slower on virtual "
    "machines)"
)


def poll_max_ns(args: argparse.Namespace) -> int | None:
    """``--poll-max-us`` in ns; None when not given (``mmiobus.cpu.remote_bus.poll_max``)."""
    return None if args.poll_max_us is None else int(args.poll_max_us) * 1000


def address(text: str) -> int:
    """A bus address in 0..2**64-1."""
    value = _integer(text, "an address")
    if not 0 <= value <= MASK64:
        raise argparse.ArgumentTypeError(f"address {text} is outside 0..0xffffffffffffffff")
    return value


def length(text: str) -> int:
    """A byte count (0 or more)."""
    value = _integer(text, "a length")
    if value < 0:
        raise argparse.ArgumentTypeError(f"length {text} is negative")
    return value


def transfer_length(text: str) -> int:
    """A byte count of 1 or more: a transfer of 0 bytes would do nothing, silently."""
    value = length(text)
    if value == 0:
        raise argparse.ArgumentTypeError(
            f"length {text} moves no bytes: give 1 or more (e.g. 4, 0x100 or 4K)"
        )
    return value


def requester_id(text: str) -> int:
    """A requester id (MemTxAttrs.requester_id): 0..65535."""
    value = _integer(text, "a requester id")
    if not 0 <= value <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"requester id {text} is outside 0..65535 (16 bits)")
    return value


def region_size(text: str) -> int:
    """A region size in 0..2**64 (``4K``, ``0x1000``, ``2**64``)."""
    value = _integer(text, "a size")
    if not 0 <= value <= TWO64:
        raise argparse.ArgumentTypeError(f"size {text} is outside 0..2**64")
    return value


def address_range(text: str) -> tuple[int, int]:
    """START:END (end exclusive) or START+SIZE, each a number as above."""
    try:
        if "+" in text:
            start, size = text.split("+", 1)
            a = _integer(start, "an address")
            return a, a + _integer(size, "a size")
        start, end = text.split(":", 1)
        return _integer(start, "an address"), _integer(end, "an address")
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not START:END or START+SIZE (e.g. 0x1000:0x2000 or 0x1000+4K)"
        ) from None


def seconds(text: str) -> float:
    """A positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} seconds: give a time above 0")
    return value


def seconds_or_zero(text: str) -> float:
    """A number of seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} seconds: give 0 or more")
    return value


# -- bus addresses ---------------------------------------------------------------------------

# mmiobus.endpoints loads grpc: imported where an address is checked, so that
# `mmiobus --help` stays quick.
DEFAULT_PORT = 7170
_FORMS = f"HOST:PORT, [IPV6]:PORT or unix:PATH; the port defaults to {DEFAULT_PORT}"


def _checked_address(text: str) -> str:
    from mmiobus.endpoints import AddressError, parse_address

    try:
        return parse_address(text)
    except AddressError as e:
        message = str(e)
        # Most messages already show what to write; give the others the forms.
        if not any(hint in message for hint in ("HOST:PORT", "[::1]", "unix:/", "e.g.")):
            message = f"{message} ({_FORMS})"
        raise argparse.ArgumentTypeError(message) from None


def server_address(text: str) -> str:
    """Where a bus listens, normalised (``127.0.0.1`` becomes ``127.0.0.1:7170``)."""
    checked = _checked_address(text)
    if not checked.startswith("unix:") and checked.endswith(":0"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: port 0 is for --listen (any free port); give the port the bus "
            f"listens on, e.g. 127.0.0.1:{DEFAULT_PORT}"
        )
    return checked


def listen_address(text: str) -> str:
    """Where to listen, normalised; port 0 picks a free port."""
    return _checked_address(text)


def resolve_server(server: str | None) -> str:
    """``--server`` if given, else ``$MMIOBUS_SERVER`` (checked), else 127.0.0.1:7170."""
    from mmiobus.endpoints import AddressError, default_server, parse_address

    if server:
        return server
    try:
        return parse_address(default_server())
    except AddressError as e:
        raise UsageError(f"$MMIOBUS_SERVER: {e}") from None


# -- option groups ---------------------------------------------------------------------------


def add_server_option(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """``--server/-s ADDR`` and the credentials to present there."""
    parser.add_argument(
        "--server",
        "-s",
        type=server_address,
        metavar="ADDR",
        help=help
        or "HOST:PORT or unix:PATH of the bus (default: $MMIOBUS_SERVER or 127.0.0.1:7170)",
    )
    add_credential_options(parser)


def add_credential_options(parser: argparse.ArgumentParser) -> None:
    """``--token-file``, ``--tls-ca``, ``--tls-cert``, ``--tls-key``, ``--tls-server-name``:
    what to present to a bus that asks for credentials (each defaults to its variable)."""
    g = parser.add_argument_group(
        "credentials",
        "For a bus that asks for them (`serve --auth`, TLS). Secrets come from files or the "
        "environment, never the command line: $MMIOBUS_TOKEN holds a token itself.",
    )
    g.add_argument(
        "--token-file",
        metavar="FILE",
        help="a file holding the token to present (default: $MMIOBUS_TOKEN, else "
        "$MMIOBUS_TOKEN_FILE)",
    )
    g.add_argument(
        "--tls-ca",
        metavar="FILE",
        help="connect with TLS, trusting the bus's certificate if this CA (PEM) signed it "
        "(default: $MMIOBUS_TLS_CA)",
    )
    g.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="a client certificate (PEM) for mutual TLS, with --tls-key (default: "
        "$MMIOBUS_TLS_CERT)",
    )
    g.add_argument(
        "--tls-key",
        metavar="FILE",
        help="the client certificate's private key (default: $MMIOBUS_TLS_KEY)",
    )
    g.add_argument(
        "--tls-server-name",
        metavar="NAME",
        help="the name the bus's certificate must carry, when the address does not (default: "
        "$MMIOBUS_TLS_SERVER_NAME, else the address's host)",
    )


def credentials(args: argparse.Namespace) -> Credentials:
    """The credentials the command's options and the environment give."""
    from mmiobus.credentials import Credentials, CredentialsError

    try:
        loaded = Credentials.load(
            token_file=getattr(args, "token_file", None),
            tls_ca=getattr(args, "tls_ca", None),
            tls_cert=getattr(args, "tls_cert", None),
            tls_key=getattr(args, "tls_key", None),
            server_name=getattr(args, "tls_server_name", None),
        )
    except CredentialsError as e:
        raise CommandError(str(e)) from None
    token = getattr(args, "token", None)  # `device run` and `cpu run` still take --token
    if not token:
        return loaded
    try:
        return loaded.with_token(token)
    except CredentialsError as e:
        raise CommandError(f"--token: {e}") from None


def add_timeout_option(parser: argparse.ArgumentParser) -> None:
    """``--timeout SECONDS``: how long each call may take."""
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long each call to the bus may take (default: %(default)g)",
    )


def add_client_options(parser: argparse.ArgumentParser, spaces: bool = True) -> None:
    """``--server``, ``--timeout`` and (with ``spaces``) the options of commands that access
    the bus: ``--address-space`` and ``--requester-id``."""
    add_server_option(parser)
    add_timeout_option(parser)
    if spaces:
        parser.add_argument(
            "--address-space",
            "-a",
            metavar="ID",
            help="the address space to access (default: the bus's first, e.g. memory)",
        )
        parser.add_argument(
            "--requester-id",
            type=requester_id,
            default=0,
            metavar="N",
            help="MemTxAttrs.requester_id of the accesses, 0..65535; traces show them as "
            "client:N (default: 0)",
        )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json``: print for machines instead of people."""
    parser.add_argument(
        "--json", action="store_true", help="print JSON for machines instead of text for people"
    )


def add_log_options(parser: argparse.ArgumentParser) -> None:
    """``--log-format`` and ``--log-level``, for the commands that run until stopped."""
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="console",
        help="console for people, json for machines (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        type=str.lower,
        choices=LOG_LEVELS,
        default="info",
        help="debug, info, warning, error or critical (default: %(default)s)",
    )


def connect(args: argparse.Namespace) -> Bus:
    """A blocking client for the bus the command's options name."""
    from mmiobus.client import Bus, MemTxAttrs

    rid = getattr(args, "requester_id", 0)
    bus = Bus(
        resolve_server(args.server),
        address_space=getattr(args, "address_space", "") or "",
        attrs=MemTxAttrs(requester_id=rid) if rid else None,
        timeout=args.timeout,
        credentials=credentials(args),
    )
    space = getattr(args, "address_space", "")
    spaces = [s.id for s in bus.info.address_spaces]
    if space and space not in spaces:
        bus.close()
        raise CommandError(
            f"--address-space {space}: the bus has no address space {space!r} "
            f"(it has {', '.join(spaces)})"
        )
    return bus


def add_session_options(
    parser: argparse.ArgumentParser,
    no_reconnect: str = "exit when the bus goes away, or cannot be reached, instead of trying again",
) -> None:
    """``--token`` (a bus's --device-token, shown to every local user) and ``--no-reconnect``:
    the options of every command that attaches to the bus as a device."""
    parser.add_argument(
        "--token",
        help="the token itself, for a bus started with --device-token; other local users can "
        "read it (`ps`): prefer --token-file or $MMIOBUS_TOKEN",
    )
    parser.add_argument("--no-reconnect", action="store_true", help=no_reconnect)
