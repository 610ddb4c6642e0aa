"""What the command line accepts before it does anything: bus addresses (`--server`,
`--listen`, `$MMIOBUS_SERVER`), log levels, numbers with units, and `device run --arg` values.
A malformed argument is a usage error (exit 2) with one error line that names it and says what
to write; nothing here needs a server."""

from __future__ import annotations

from typing import Any

import mmiobus.endpoints
import pytest
from mmiobus.cli import args as cli_args
from mmiobus.cli.device_run import device_arguments
from mmiobus.cli.errors import CommandError
from mmiobus.cli.main import build_parser
from mmiobus.devices import Device
from mmiobus.server import logs

# (bad address, a word of the hint that must come with it)
BAD_ADDRESSES = [
    ("127.0.0.1:99999", "0-65535"),
    ("127.0.0.1:-1", "0-65535"),
    ("localhost:port", "0-65535"),
    ("http://127.0.0.1:7170", "HOST:PORT"),
    ("grpc://bus.example", "HOST:PORT"),
    ("::1", "[::1]:7170"),
    ("fe80::1:7170", "[fe80::1:7170]:7170"),
    ("[::1", "]"),
    ("bus example:7170", "HOST:PORT"),
]


def _parse(*argv: str) -> Any:
    return build_parser().parse_args(list(argv))


# -- --server and $MMIOBUS_SERVER --------------------------------------------------------------


@pytest.mark.parametrize("address, hint", BAD_ADDRESSES)
def test_a_malformed_server_address_is_a_usage_error_with_a_hint(mmiobus, address, hint):
    out = mmiobus("read", "0", "--server", address)
    assert out.returncode == 2
    [line] = out.error_lines()
    assert "--server" in line and address in line and hint in line, line


@pytest.mark.parametrize(
    "address, normalised",
    [
        ("127.0.0.1", "127.0.0.1:7170"),
        ("localhost", "localhost:7170"),
        ("bus.example:9000", "bus.example:9000"),
        ("[::1]", "[::1]:7170"),
        ("[::1]:7171", "[::1]:7171"),
    ],
)
def test_a_server_address_without_a_port_means_port_7170(address, normalised):
    assert _parse("read", "0", "--server", address).server == normalised


def test_a_relative_unix_socket_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _parse("info", "-s", "unix:bus.sock").server == f"unix:{tmp_path / 'bus.sock'}"


def test_port_0_is_refused_for_a_server_to_reach(mmiobus):
    """Port 0 means "any free port" to `--listen`; no bus can be reached there."""
    out = mmiobus("info", "--server", "127.0.0.1:0")
    assert out.returncode == 2
    [line] = out.error_lines()
    assert "port 0" in line and "--listen" in line


@pytest.mark.parametrize(
    "argv",
    [
        ["mtree", "--server"],
        ["device", "run", "mmiobus.devices.models.timer:Timer", "--at", "0", "--server"],
        ["trace", "--server"],
        ["irqs", "--server"],
    ],
    ids=["mtree", "device-run", "trace", "irqs"],
)
def test_every_command_that_takes_a_server_checks_it(mmiobus, argv):
    out = mmiobus(*argv, "127.0.0.1:99999")
    assert out.returncode == 2
    [line] = out.error_lines()
    assert "99999" in line and "0-65535" in line


def test_a_malformed_mmiobus_server_variable_is_a_usage_error_naming_it(mmiobus):
    out = mmiobus("read", "0", env={"MMIOBUS_SERVER": "https://bus.example:7170"})
    assert out.returncode == 2
    line = out.one_error_line()
    assert "$MMIOBUS_SERVER" in line and "https://" in line


def test_the_default_port_is_the_servers(monkeypatch):
    """The command line's default port (kept beside it so `--help` need not load grpc) is the
    one `mmiobus.endpoints` dials and `serve` listens on."""
    assert cli_args.DEFAULT_PORT == mmiobus.endpoints.DEFAULT_PORT
    monkeypatch.delenv("MMIOBUS_SERVER", raising=False)
    assert cli_args.resolve_server(None) == mmiobus.endpoints.DEFAULT_SERVER


# -- --listen ----------------------------------------------------------------------------------


@pytest.mark.parametrize("address, hint", BAD_ADDRESSES)
def test_a_malformed_listen_address_is_a_usage_error_with_a_hint(mmiobus, address, hint):
    out = mmiobus("serve", "--listen", address)
    assert out.returncode == 2
    [line] = out.error_lines()
    assert "--listen" in line and address in line and hint in line, line


@pytest.mark.parametrize(
    "address, normalised",
    [
        ("localhost", "localhost:7170"),
        ("127.0.0.1:0", "127.0.0.1:0"),
        ("0.0.0.0:7170", "0.0.0.0:7170"),
        ("[::1]:0", "[::1]:0"),
    ],
)
def test_listen_takes_port_0_and_defaults_to_7170(address, normalised):
    assert _parse("serve", "--listen", address).listen == [normalised]


# -- log levels --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["serve"], ["device", "run", "mmiobus.devices.models.timer:Timer", "--at", "0"]],
    ids=["serve", "device-run"],
)
def test_a_log_level_typo_is_a_usage_error_listing_the_levels(mmiobus, argv):
    out = mmiobus(*argv, "--log-level", "infoo")
    assert out.returncode == 2
    [line] = out.error_lines()
    assert "--log-level" in line and "'infoo'" in line
    assert all(level in line for level in ("debug", "info", "warning", "error"))


def test_log_levels_are_not_case_sensitive():
    assert _parse("serve", "--log-level", "WARNING").log_level == "warning"


# -- numbers -----------------------------------------------------------------------------------


def test_device_run_size_takes_units():
    args = _parse("device", "run", "m:C", "--at", "0x1000", "--size", "4K")
    assert (args.at, args.size) == (0x1000, 4096)


def test_trace_ranges_take_units():
    args = _parse("trace", "--range", "1M+4K", "--range", "0x1000:8K")
    assert args.range == [(1 << 20, (1 << 20) + 4096), (0x1000, 0x2000)]


def test_serve_byte_limits_take_units():
    args = _parse("serve", "--max-access-bytes", "2M", "--max-message-bytes", "64M")
    assert (args.max_access_bytes, args.max_message_bytes) == (2 << 20, 64 << 20)


def test_help_is_exit_status_0(mmiobus):
    out = mmiobus("read", "--help")
    assert out.returncode == 0
    assert "ADDR" in out.output


# -- device run --arg --------------------------------------------------------------------------


class Probe(Device):
    """A device whose constructor takes each kind of argument."""

    size = 0x10

    def __init__(self, count: int = 0, rate: float = 1.0, name: str = "", on: bool = False,
                 anything: Any = None) -> None:  # fmt: skip
        super().__init__()


class Needs(Device):
    size = 0x10

    def __init__(self, period: int) -> None:
        super().__init__()


def test_arg_values_are_yaml_1_2():
    """`--arg` values are read as YAML 1.2, as descriptions are: `off` stays a string, only
    true/false are booleans, numbers are numbers."""
    assert device_arguments(Probe, ["anything=off"]) == {"anything": "off"}
    assert device_arguments(Probe, ["anything=false"]) == {"anything": False}
    assert device_arguments(Probe, ["anything=0x10"]) == {"anything": 16}
    assert device_arguments(Probe, ["anything="]) == {"anything": ""}


def test_arg_values_fit_the_constructors_annotations():
    """An int parameter takes sizes with units; a str parameter takes what was written."""
    assert device_arguments(Probe, ["count=4K", "rate=2", "name=123", "on=true"]) == {
        "count": 4096,
        "rate": 2,
        "name": "123",
        "on": True,
    }


@pytest.mark.parametrize(
    "cls, item, words",
    [
        (Probe, "count=abc", ["--arg count=abc", "integer"]),
        (Probe, "rate=fast", ["--arg rate=fast", "number"]),
        (Probe, "on=yes", ["--arg on=yes", "true or false"]),
        (Probe, "colour=red", ["--arg colour", "'colour'", "count, rate, name, on, anything"]),
        (Probe, "count", ["'count'", "KEY=VALUE"]),
        (Needs, "", ["Needs", "--arg period=VALUE"]),
        (Probe, "anything=[1, 2", ["--arg anything:1:", "not valid YAML"]),
    ],
)
def test_a_bad_arg_is_one_line_in_the_command_lines_words(cls, item, words):
    """A wrong name, a missing argument or a value of the wrong kind is refused before the
    device is built, naming the --arg, without Python's words for it."""
    with pytest.raises(ValueError if "YAML" in words[-1] else CommandError) as info:
        device_arguments(cls, [item] if item else [])
    message = str(info.value)
    assert len(message.splitlines()) == 1
    for word in words:
        assert word in message
    assert "object" not in message and "positional" not in message


def test_device_run_reports_a_bad_arg_as_one_error_line(mmiobus, monkeypatch):
    """End to end: exit 1 and one line, before anything connects (no server is running)."""
    monkeypatch.setattr(logs, "configure", lambda *a: None)  # keep this process's logging
    out = mmiobus(
        "device", "run", "mmiobus.devices.models.timer:Timer", "--at", "0x1000",
        "--arg", "period_us=soon", "--server", "127.0.0.1:1",
    )  # fmt: skip
    assert out.returncode == 1
    line = out.one_error_line()
    assert "--arg period_us=soon" in line and "integer" in line
