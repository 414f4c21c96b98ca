"""Packaging checks: the wheel maps the root source folders into the ``kbroker`` namespace.

The repository keeps ``actors/``, ``transport/``, ``storage/`` and ``cli/`` at the root and
maps them to ``kbroker.actors`` etc. via ``[tool.setuptools.package-dir]``. These tests build a
real wheel (offline, ``--no-isolation``) from a copy of the sources and check its contents, so a
new module in any of those folders is covered automatically.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# source folder (relative to the repo root) -> package path inside the wheel
PACKAGE_DIRS: dict[str, str] = {
    "kbroker": "kbroker",
    "actors": "kbroker/actors",
    "transport": "kbroker/transport",
    "storage": "kbroker/storage",
    "cli": "kbroker/cli",
}

REQUIRED_DEPS = ("pykka", "pyzmq", "msgpack", "typer", "rich")


def _copy_packaging_inputs(dest: Path) -> None:
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    readme = REPO / "README.md"
    if readme.exists():
        shutil.copy2(readme, dest / "README.md")
    else:
        (dest / "README.md").write_text("# kbroker\n\nStub README for the packaging test.\n")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info")
    for folder in PACKAGE_DIRS:
        shutil.copytree(REPO / folder, dest / folder, ignore=ignore)


def _source_modules() -> set[str]:
    """Every .py file under the source folders, as the path it must have inside the wheel."""
    expected: set[str] = set()
    for folder, target in PACKAGE_DIRS.items():
        root = REPO / folder
        for path in root.rglob("*.py"):
            rel = path.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            expected.add(f"{target}/{rel.as_posix()}")
    return expected


def _build_wheel(src: Path, outdir: Path) -> Path:
    commands = [
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir), str(src)],
        [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
            "--no-index", "--wheel-dir", str(outdir), str(src),
        ],
    ]
    logs: list[str] = []
    for cmd in commands:
        proc = subprocess.run(
            cmd, cwd=src, capture_output=True, text=True, timeout=240,
        )
        logs.append(f"$ {' '.join(cmd)}\n[rc={proc.returncode}]\n{proc.stdout}\n{proc.stderr}")
        wheels = sorted(outdir.glob("kbroker-*.whl"))
        if proc.returncode == 0 and wheels:
            return wheels[-1]
    pytest.fail("could not build a wheel offline:\n\n" + "\n\n".join(logs))


@pytest.mark.timeout(300)
def test_wheel_contents(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    outdir = tmp_path / "dist"
    outdir.mkdir()
    _copy_packaging_inputs(src)

    wheel = _build_wheel(src, outdir)

    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    dist_info = f"kbroker-{version}.dist-info/"

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())

        # 1. every source module is present at its mapped path
        expected = _source_modules()
        assert expected, "no source modules found (walking the wrong folders?)"
        missing = sorted(expected - names)
        assert not missing, f"modules missing from {wheel.name}: {missing}\nwheel has: {sorted(names)}"

        # 2. nothing outside kbroker/ and the dist-info folder (no top-level cli/, storage/, ...)
        stray = sorted(n for n in names if not (n.startswith("kbroker/") or n.startswith(dist_info)))
        assert not stray, f"unexpected entries in {wheel.name}: {stray}"

        # 3. console script
        entry_points = zf.read(dist_info + "entry_points.txt").decode()
        section = entry_points.split("[console_scripts]", 1)
        assert len(section) == 2, f"no [console_scripts] in entry_points.txt:\n{entry_points}"
        scripts = {
            k.strip(): v.strip()
            for line in section[1].split("[", 1)[0].splitlines()
            if "=" in line
            for k, v in [line.split("=", 1)]
        }
        assert scripts.get("kbroker") == "kbroker.cli.main:main", entry_points

        # 4. metadata: Python floor and runtime dependencies
        metadata = zf.read(dist_info + "METADATA").decode()
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert "Requires-Python: >=3.11" in headers, metadata
    requires = [h.split(":", 1)[1].strip() for h in headers if h.startswith("Requires-Dist:")]
    base_names = {
        re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", r).group(0)).lower()
        for r in requires
        if "extra ==" not in r
    }
    for dep in REQUIRED_DEPS:
        assert dep in base_names, f"{dep} not in Requires-Dist: {requires}"


def test_import_namespace_and_purity() -> None:
    import kbroker
    import kbroker.actors
    import kbroker.cli
    import kbroker.storage
    import kbroker.transport

    assert kbroker.storage.__name__ == "kbroker.storage"
    assert kbroker.cli.__name__ == "kbroker.cli"
    assert kbroker.actors.__name__ == "kbroker.actors"
    assert kbroker.transport.__name__ == "kbroker.transport"

    # In a fresh interpreter so other tests' imports don't interfere.
    code = (
        "import sys\n"
        "import kbroker.storage, kbroker.errors\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('zmq', 'pykka'))\n"
        "assert not bad, f'pure modules pulled in: {bad}'\n"
        "print('ok')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr
