"""The client is a package of its own: pip builds it from clients/python, typed (py.typed), with
its runtime dependency pinned to the version the console is tested with."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

CLIENT = Path(__file__).resolve().parents[1]
REPO = CLIENT.parents[1]


def _pin(requirements: Path, name: str) -> str:
    found = re.search(rf"^{re.escape(name)}==(\S+)", requirements.read_text(), re.MULTILINE)
    assert found, f"{name} is not pinned in {requirements.name}"
    return found[1]


def test_pip_builds_a_typed_wheel_with_the_repositorys_pins(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(tmp_path), str(CLIENT)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert built.returncode == 0, built.stderr

    (wheel,) = tmp_path.glob("aoc_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert {"aoc_client/__init__.py", "aoc_client/py.typed", "aoc_client/otel.py"} <= names
    assert not any(n.startswith("tests/") for n in names)
    requires = re.findall(r"^Requires-Dist: (.+)$", metadata, re.MULTILINE)
    httpx = _pin(REPO / "requirements.txt", "httpx")
    sdk = _pin(REPO / "requirements-dev.txt", "opentelemetry-sdk")
    exporter = _pin(REPO / "requirements-dev.txt", "opentelemetry-exporter-otlp-proto-http")
    assert f"httpx=={httpx}" in requires
    assert f"opentelemetry-sdk=={sdk}; extra == 'otel'" in requires
    assert f"opentelemetry-exporter-otlp-proto-http=={exporter}; extra == 'otel'" in requires
