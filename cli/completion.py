"""``mmiobus completion bash|zsh``: the shell's completion script for every command and option.

The script comes from shtab, which reads the parser once and writes a static script: pressing
Tab then costs the shell nothing (argcomplete, the alternative, starts Python on every Tab to
ask the parser, and its shell hook must be installed separately).
"""

from __future__ import annotations

import argparse
from typing import Any

from .console import out

SHELLS = ("bash", "zsh")

# Arguments that name files, by their dest: completed with file names.
_FILE_ARGUMENTS = {"file", "dump", "config", "out", "output", "firmware", "payload"}

_INSTALL = {
    "bash": "mmiobus completion bash > ~/.local/share/bash-completion/completions/mmiobus",
    "zsh": 'mmiobus completion zsh > "${fpath[1]}/_mmiobus"',
}


def register(sub: Any) -> None:
    """Add ``completion`` to the ``mmiobus`` subcommands."""
    p = sub.add_parser(
        "completion",
        help="print the shell completion script (bash or zsh)",
        description="Print the Tab-completion script for SHELL. Install it with, for bash: "
        f'`{_INSTALL["bash"]}`; for zsh: `{_INSTALL["zsh"]}` (or `eval "$(mmiobus completion '
        "bash)\"` in your shell's startup file).",
    )
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash or zsh")
    p.set_defaults(func=cmd_completion)


def _mark_files(parser: argparse.ArgumentParser) -> None:
    import shtab

    for action in parser._actions:
        if action.dest in _FILE_ARGUMENTS:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _mark_files(child)


def cmd_completion(args: argparse.Namespace) -> int:
    """``mmiobus completion SHELL``: print the script."""
    import shtab

    from .main import build_parser

    parser = build_parser()
    _mark_files(parser)
    out(shtab.complete(parser, shell=args.shell))
    return 0
