"""The command line explains itself: every argument of every command has help text, with its
default where it has one; `--version`; `apply --help` lists every topology operation with its
fields and an example; `completion` prints scripts the shells accept.
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import subprocess
from collections.abc import Iterator

import pytest
from mmiobus import __version__
from mmiobus.cli import topology as cli_topology
from mmiobus.cli.main import build_parser
from mmiobus.client.topology import OPERATIONS, Transaction


def parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser and subcommand parser, named by its command line."""
    yield " ".join(("mmiobus", *path)), parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, (*path, name))


def arguments() -> Iterator[tuple[str, argparse.Action]]:
    for command, parser in parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            yield f"{command} {'/'.join(action.option_strings) or action.dest}", action


ARGUMENTS = dict(arguments())


@pytest.mark.parametrize("name", sorted(ARGUMENTS))
def test_every_argument_has_help_with_its_default(name):
    """Help text on every option and positional argument; an option with a default (other than
    off) says it, as "default: ..." (argparse fills in %(default)s)."""
    action = ARGUMENTS[name]
    assert action.help and action.help != argparse.SUPPRESS, f"{name} has no help"
    has_default = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
    if has_default and not isinstance(action, argparse._VersionAction):
        assert "default" in action.help, f"{name}: its help does not show its default"
        assert not action.help.rstrip(")").endswith("(default"), name


def test_trace_queue_help_shows_its_value(mmiobus):
    text = " ".join(mmiobus("serve", "--help").text().split())
    assert "before it starts losing them (default: 10000)" in text


def test_version(mmiobus):
    out = mmiobus("--version")
    assert out.returncode == 0
    assert out.output == f"mmiobus {__version__}\n"


def test_apply_help_lists_every_operation_with_its_fields(mmiobus):
    """`apply --help` names all of Transaction's operations, each with its required and
    optional fields (as YAML writes them: `file` for contents), and shows an example."""
    assert sorted(name for name, *_ in cli_topology.OPERATIONS) == sorted(OPERATIONS)
    for name, required, optional, _what in cli_topology.OPERATIONS:
        params = list(inspect.signature(getattr(Transaction, name)).parameters.values())[1:]
        # YAML gives create_region's contents as `file: PATH`.
        yaml_name = {"contents": "file"}
        assert required.split(", ") == [p.name for p in params if p.default is p.empty], name
        assert {f for f in optional.split(", ") if f} == {
            yaml_name.get(p.name, p.name) for p in params if p.default is not p.empty
        }, name
    text = mmiobus("apply", "--help").text()
    for name in OPERATIONS:
        assert f"  {name} " in text
    assert "- create_region: {id: scratch, kind: ram, size: 64K}" in text


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_prints_a_script_for_the_shell(mmiobus, shell):
    """`completion bash|zsh` prints a script naming every command; the shell parses it."""
    script = mmiobus("completion", shell).text()
    for command in ("serve", "read", "load", "regions", "monitor", "completion"):
        assert command in script
    if shutil.which(shell) is None:
        pytest.skip(
            f"{shell} is not installed here to check the script's syntax: apt-get install "
            f"{shell} (python3 dev.py test installs it when run as root)"
        )
    checked = subprocess.run([shell, "-n"], input=script, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_completion_of_an_unknown_shell_is_a_usage_error(mmiobus):
    out = mmiobus("completion", "fish")
    assert out.returncode == 2
    assert "bash" in out.error_lines()[0]
