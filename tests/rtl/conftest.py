"""RTL devices for the tests: `mmiobus device rtl` processes running Icarus Verilog under
cocotb, and skips that say how to install what is missing."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from support.devices import DeviceProcess
from support.servers import MMIOBUS, process_env

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rtl" / "regblock.v"


def start_rtl_device(server: str, *args: str, wait: bool = True) -> DeviceProcess:
    """`mmiobus device rtl ARGS... --server SERVER`; by default wait until it serves."""
    log_path = Path(tempfile.mkstemp(prefix="mmiobus-rtl-", suffix=".log")[1])
    log = open(log_path, "w")  # noqa: SIM115 - the device keeps writing after we return
    proc = subprocess.Popen([MMIOBUS, "device", "rtl", *args, "--server", server],
                            stdout=subprocess.PIPE, stderr=log, text=True, env=process_env())  # fmt: skip
    log.close()
    dev = DeviceProcess(proc, "", log_path)
    if wait:
        dev.wait_serving(60)
    return dev
