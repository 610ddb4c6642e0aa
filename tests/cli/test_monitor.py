"""`mmiobus monitor`: QEMU monitor habits on a bus. The commands are fed to the monitor's loop
in this process, as lines (no terminal): `x`/`xp` dump memory exactly as QEMU's
``memory_dump`` prints it, `info mtree` is the bus's `Mtree`, and mistakes are one line that
keeps the session going. The command itself reads lines from a pipe.
"""

from __future__ import annotations

import pytest
from mmiobus.cli.monitor import Monitor, run
from mmiobus.client import Bus

SPOT = 0x3000  # RAM of conftest.MACHINE that only these tests write
DATA = bytes.fromhex("41420a27ff000102030405060708090a0b0c") + b"\x80" * 14


@pytest.fixture(scope="module")
def monitor_bus(cli_server):
    with Bus(cli_server.tcp) as b:
        b.write(SPOT, DATA)
        yield b


def session(bus: Bus, *lines: str) -> str:
    """What the monitor prints for ``lines``."""
    printed: list[str] = []
    run(Monitor(bus, printed.append), lines)
    return "".join(printed)


@pytest.mark.parametrize(
    "command, expected",
    [
        ("xp /4xw 0x3000",
         "0000000000003000: 0x270a4241 0x020100ff 0x06050403 0x0a090807\n"),
        ("xp /2xg 0x3000", "0000000000003000: 0x020100ff270a4241 0x0a09080706050403\n"),
        ("xp /10xb 0x3000",
         "0000000000003000: 0x41 0x42 0x0a 0x27 0xff 0x00 0x01 0x02\n"
         "0000000000003008: 0x03 0x04\n"),
        ("xp /3dh 0x3000", "0000000000003000: 16961  9994   255\n"),
        ("xp /2uw 0x3000", "0000000000003000:  654983745   33620223\n"),
        ("xp /2ob 0x3000", "0000000000003000: 0101 0102\n"),
        ("xp /6cb 0x3000", "0000000000003000: 'A' 'B' '\\n' '\\'' '\\xff' '\\x00'\n"),
        ("xp /1dg 0x3018", "0000000000003018: -9187201950435737472\n"),
        ("x /2xw 0x3000", "0000000000003000: 0x270a4241 0x020100ff\n"),
    ],
)  # fmt: skip
def test_x_and_xp_print_as_qemus_monitor_does(monitor_bus, command, expected):
    assert session(monitor_bus, command) == expected


def test_format_and_size_carry_over_as_in_qemu(monitor_bus):
    """A later `x ADDR` (or `/N`) reuses the last format and size; 'c' reads the size given
    (default a word) as that many characters, 16 a line."""
    out = session(monitor_bus, "xp /1xb 0x3000", "xp 0x3001", "xp /3 0x3002", "xp /2c 0x3000")
    assert out.splitlines() == [
        "0000000000003000: 0x41",
        "0000000000003001: 0x42",
        "0000000000003002: 0x0a 0x27 0xff",
        "0000000000003000: 'A' 'B'",
    ]


def test_a_fault_is_cannot_access_memory_with_the_result(monitor_bus):
    assert session(monitor_bus, "xp /4xw 0x30000000") == (
        "0000000030000000: Cannot access memory (DECODE_ERROR)\n"
    )


def test_info_mtree_is_the_buses(monitor_bus):
    assert session(monitor_bus, "info mtree") == monitor_bus.mtree()
    assert session(monitor_bus, "info mtree -f -D") == monitor_bus.mtree(flat=True, disabled=True)


def test_info_irqs_devices_regions_version(monitor_bus):
    assert session(monitor_bus, "info irqs") == "no interrupt line yet\n"
    assert session(monitor_bus, "info devices") == "no device is attached\n"
    regions = session(monitor_bus, "info regions")
    assert regions.startswith("REGION") and "dma-window" in regions
    assert session(monitor_bus, "info version").startswith(f"mmiobus {monitor_bus.info.version}")


def test_help_lists_the_commands_and_info_its_subcommands(monitor_bus):
    text = session(monitor_bus, "help")
    for command in ("info", "x /fmt addr", "xp /fmt addr", "quit"):
        assert command in text
    listing = session(monitor_bus, "info")
    for sub in ("info mtree", "info irqs", "info devices", "info regions"):
        assert sub in listing
    assert "/{count}{format}{size}" in session(monitor_bus, "help xp")


@pytest.mark.parametrize(
    "line, words",
    [
        ("frobnicate", ["unknown command: 'frobnicate'", "help"]),
        ("info bogus", ["unknown info subcommand: 'bogus'"]),
        ("info mtree -z", ["unknown flag '-z'"]),
        ("x /4xz 0x3000", ["invalid char in format: 'z'"]),
        ("x /4i 0x3000", ["'i'", "CPU"]),
        ("x /4xw", ["give one address"]),
        ("x /4xw nowhere", ["'nowhere'"]),
    ],
)
def test_mistakes_are_one_line_and_the_session_goes_on(monitor_bus, line, words):
    out = session(monitor_bus, line, "xp /1xb 0x3000")
    first, after = out.splitlines()
    for word in words:
        assert word in first
    assert after == "0000000000003000: 0x41"


def test_quit_ends_the_session(monitor_bus):
    assert session(monitor_bus, "xp /1xb 0x3000", "quit", "xp /1xb 0x3001").count("\n") == 1
    assert session(monitor_bus, "q", "info version") == ""


def test_the_command_reads_commands_from_a_pipe(mmiobus, srv, monitor_bus):
    out = mmiobus("monitor", "-s", srv, stdin=b"xp /2xw 0x3000\n\ninfo irqs\nquit\n").text()
    assert out == "0000000000003000: 0x270a4241 0x020100ff\nno interrupt line yet\n"


def test_the_monitor_uses_the_address_space_option(mmiobus, srv, monitor_bus):
    """`-a dma` reads the dma address space, whose 0 is RAM byte 0x80000."""
    monitor_bus.write(0x80000, b"\x5a")
    out = mmiobus("monitor", "-s", srv, "-a", "dma", stdin=b"xp /1xb 0\n").text()
    assert out == "0000000000000000: 0x5a\n"


def test_at_a_terminal_lines_are_kept_in_the_history(monitor_bus, tmp_path, monkeypatch):
    """The interactive prompt (prompt_toolkit, fed keys through a pipe here): each line is
    returned, Ctrl-D ends the session, and the lines are kept in the history file for the next
    session."""
    from mmiobus.cli.monitor import _interactive, history_path
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    with create_pipe_input() as keys, create_app_session(input=keys, output=DummyOutput()):
        keys.send_text("info mtree\r")
        keys.send_text("xp /1xb 0x3000\r")
        keys.send_text("\x04")  # Ctrl-D
        lines = list(_interactive(monitor_bus))
    assert lines == ["info mtree", "xp /1xb 0x3000"]
    assert history_path().is_relative_to(tmp_path)
    history = history_path().read_text()
    assert "+info mtree" in history and "+xp /1xb 0x3000" in history


@pytest.mark.parametrize(
    "typed, offered",
    [("in", {"info"}), ("info m", {"mtree"}), ("info mtree -", {"-f", "-D"}),
     ("x", {"x", "xp"}), ("help i", {"info"})],
)  # fmt: skip
def test_tab_completes_commands_subcommands_and_flags(typed, offered):
    from mmiobus.cli.monitor import completer
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    found = completer().get_completions(Document(typed), CompleteEvent(completion_requested=True))
    assert {c.text for c in found} == offered
