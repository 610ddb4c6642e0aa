"""Compiling a Verilog design with Icarus Verilog and the command that simulates it under
cocotb (the simulator loads cocotb's VPI library, which imports ``mmiobus.rtl.simulation``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


class SimulatorMissing(Exception):
    """Icarus Verilog or cocotb is not installed; says what to install."""


class BuildError(Exception):
    """The design does not compile; carries the compiler's first error line."""


def check_tools() -> None:
    """``SimulatorMissing`` unless iverilog, vvp and cocotb are all there."""
    for program in ("iverilog", "vvp"):
        if shutil.which(program) is None:
            raise SimulatorMissing(f"{program} is not installed: apt-get install iverilog")
    try:
        import cocotb  # noqa: F401
        import cocotb_tools.config  # noqa: F401
    except ImportError:
        raise SimulatorMissing("cocotb is not installed: pip install 'mmiobus[rtl]'") from None


def compile_design(sources: list[str], top: str, out: Path) -> Path:
    """Compile ``sources`` with ``top`` as the top module into ``out``/sim.vvp."""
    for source in sources:
        if not Path(source).is_file():
            raise BuildError(f"{source}: no such file")
    out.mkdir(parents=True, exist_ok=True)
    timescale = out / "timescale.f"
    timescale.write_text("+timescale+1ns/1ps\n")  # for designs that give none
    sim = out / "sim.vvp"
    done = subprocess.run(
        ["iverilog", "-g2012", "-o", str(sim), "-s", top, "-f", str(timescale), *sources],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        lines = [ln for ln in (done.stderr + done.stdout).splitlines() if ln.strip()]
        raise BuildError(lines[0] if lines else f"iverilog exited with {done.returncode}")
    return sim


def simulator_command(sim: Path, top: str, config_json: str) -> tuple[list[str], dict[str, str]]:
    """``vvp`` with cocotb's VPI library, and its environment (cocotb finds Python, the top
    module and ``mmiobus.rtl.simulation``; ``MMIOBUS_RTL`` carries ``config_json``)."""
    import cocotb_tools.config as cfg
    import find_libpython

    libpython = find_libpython.find_libpython()
    if libpython is None:
        raise SimulatorMissing("cocotb cannot find libpython: install the python3-dev package")
    env = dict(os.environ)
    env.update(
        {
            "GPI_USERS": ";".join([libpython, cfg.pygpi_entry_point()]),
            "PATH": env.get("PATH", "") + os.pathsep + str(cfg.libs_dir),
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "PYGPI_PYTHON_BIN": sys.executable,
            "COCOTB_TOPLEVEL": top,
            "COCOTB_TEST_MODULES": "mmiobus.rtl.simulation",
            "TOPLEVEL_LANG": "verilog",
            "COCOTB_RESULTS_FILE": os.devnull,
            "MMIOBUS_RTL": config_json,
        }
    )
    env.setdefault("COCOTB_LOG_LEVEL", "WARNING")
    return ["vvp", "-m", cfg.lib_entry("vpi", "icarus"), str(sim), "-none"], env
