"""Local YAML: a `file:` in `mmiobus apply`'s operations reads at most the region's size, as
machine descriptions do (tests/machine/test_yaml_bounds.py covers those, with nesting, anchors
and size expressions), and every failure is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmiobus.client.topology import from_yaml
from support.command_line import mmiobus


def op(file: str, size: str = "16") -> str:
    return f"- create_region: {{id: r, kind: ram, size: {size}, file: {file}}}\n"


def test_a_file_bigger_than_its_region_is_refused_before_it_is_read(tmp_path: Path):
    (tmp_path / "big.bin").write_bytes(bytes(100))
    with pytest.raises(ValueError) as info:
        from_yaml(op("big.bin"), tmp_path)
    assert str(info.value) == (
        f"ops[0].create_region: file: '{tmp_path / 'big.bin'}' has 100 bytes, more than the "
        "region's 16"
    )


def test_an_endless_file_is_refused():
    with pytest.raises(ValueError, match="'/dev/zero' is not a regular file"):
        from_yaml(op("/dev/zero", "1M"))


def test_a_file_that_fits_gives_the_region_its_contents(tmp_path: Path):
    (tmp_path / "fits.bin").write_bytes(b"\x2a" * 16)
    [created] = from_yaml(op("fits.bin"), tmp_path).ops
    assert created.create_region.contents == b"\x2a" * 16


@pytest.mark.parametrize(
    "file, expected",
    [("missing.bin", "cannot be read"), ("/dev/zero", "is not a regular file")],
)
def test_mmiobus_apply_says_what_is_wrong_with_a_file_in_one_line(
    tmp_path: Path, file: str, expected: str
):
    ops = tmp_path / "ops.yaml"
    ops.write_text(op(file))
    out = mmiobus("apply", str(ops), "--server", "127.0.0.1:1")
    assert out.returncode == 1
    assert len(out.stderr.strip().splitlines()) == 1 and expected in out.stderr
