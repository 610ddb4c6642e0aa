"""What the RTL tests need: Icarus Verilog and cocotb, or a skip that says how to install them."""

from __future__ import annotations

import shutil

import pytest


def need_rtl() -> None:
    """Skip unless Icarus Verilog and cocotb are installed, saying how to install them."""
    if shutil.which("iverilog") is None or shutil.which("vvp") is None:
        pytest.skip("iverilog is missing: apt-get install iverilog "
                    "(python3 dev.py test installs it when run as root)")  # fmt: skip
    try:
        import cocotb  # noqa: F401
    except ImportError:
        pytest.skip("cocotb is missing: pip install 'mmiobus[rtl]' (python3 dev.py test "
                    "installs it)")  # fmt: skip
