"""`make lock`: regenerate requirements.txt and requirements-dev.txt from the .in files.

pip resolves each .in without installing anything (`pip install --dry-run --ignore-installed --report`)
and the result is written pinned exactly. Existing pins are kept where they still fit (they are passed as
constraints), so adding one package does not upgrade everything else; `--upgrade` resolves afresh.
requirements-dev.txt lists only what the dev tools add on top of requirements.txt, which it includes.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")
HEADERS = {
    "requirements.txt": [
        "# Generated from requirements.in: every runtime dependency, pinned exactly.",
        "# Regenerate: make lock",
    ],
    "requirements-dev.txt": [
        "# Generated from requirements-dev.in: requirements.txt plus the test and lint tools, pinned exactly.",
        "# Regenerate: make lock",
        "-r requirements.txt",
    ],
}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """name -> `name==version` line, from a pinned requirements file (if it exists)."""
    pins = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if match := PIN.match(line.strip()):
                pins[normalise(match[1])] = f"{match[1]}=={match[2]}"
    return pins


def resolve(requirements: Path, constraints: list[str]) -> dict[str, str]:
    """What pip would install for `requirements` into an empty environment: name -> `name==version`."""
    with tempfile.TemporaryDirectory() as tmp:
        constraint_file = Path(tmp) / "constraints.txt"
        constraint_file.write_text("\n".join(constraints) + "\n")
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet"]
        cmd += ["--disable-pip-version-check", "--report", str(report), "-r", str(requirements)]
        cmd += ["-c", str(constraint_file)]
        subprocess.run(cmd, cwd=ROOT, check=True)
        installs = json.loads(report.read_text())["install"]
    return {
        normalise(item["metadata"]["name"]): f"{item['metadata']['name']}=={item['metadata']['version']}"
        for item in installs
    }


def resolve_preferring(
    requirements: Path, required: list[str], preferred: dict[str, str], upgrade: bool
) -> dict[str, str]:
    """Resolve with `required` pins as hard constraints, keeping the `preferred` pins too if they still fit."""
    if preferred and not upgrade:
        try:
            return resolve(requirements, required + list(preferred.values()))
        except subprocess.CalledProcessError:
            print(f"lock: the current pins no longer fit {requirements.name}; resolving it afresh", file=sys.stderr)
    return resolve(requirements, required)


def write(name: str, pins: list[str]) -> None:
    lines = HEADERS[name] + sorted(pins, key=lambda pin: pin.split("==")[0].lower())
    (ROOT / name).write_text("\n".join(lines) + "\n")
    print(f"lock: wrote {name} ({len(pins)} pins)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upgrade", action="store_true", help="ignore the current pins: newest versions that fit")
    upgrade = parser.parse_args().upgrade
    try:
        runtime = resolve_preferring(ROOT / "requirements.in", [], read_pins(ROOT / "requirements.txt"), upgrade)
        # The dev tools must fit next to the runtime pins just chosen: those are hard constraints.
        dev = resolve_preferring(
            ROOT / "requirements-dev.in", list(runtime.values()), read_pins(ROOT / "requirements-dev.txt"), upgrade
        )
    except subprocess.CalledProcessError as exc:
        print(f"lock: pip could not resolve the requirements (exit {exc.returncode})", file=sys.stderr)
        return 1
    write("requirements.txt", list(runtime.values()))
    write("requirements-dev.txt", [pin for name, pin in dev.items() if name not in runtime])
    return 0


if __name__ == "__main__":
    sys.exit(main())
