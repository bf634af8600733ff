"""What a release ships: build the sdist and the wheel as a release does, and say what is wrong in them.

The rules are plain functions over an archive's member names and texts, so a test can show each one
failing on a doctored list as well as passing on the real archives.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "airflow_provider_aidp"
DIST_NAME = "airflow-provider-aidp"
#: the license texts a user must receive with the code (Apache-2.0, section 4)
LICENSE_FILES = ("LICENSE", "NOTICE")
#: besides the package and its metadata, the sdist carries only what builds the wheel again
SDIST_TOP_LEVEL = {"PKG-INFO", "pyproject.toml", "setup.cfg", "README.md", *LICENSE_FILES}
_SECRET_NAME = re.compile(r"(\.pem|\.key|\.p12|\.pfx|\.jks|(^|/)\.env|(^|/)id_(rsa|ecdsa|ed25519)[^/]*)$")
#: a PEM private key block with key material in it (the error message that names the header is fine)
_PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\s]{40,}")


@dataclass(frozen=True)
class Archive:
    """One built distribution: its path and every member (directories left out) with its text."""

    path: Path
    members: dict[str, str]

    @property
    def names(self) -> set[str]:
        return set(self.members)


def source_version() -> str:
    """``__version__`` read from the source file's syntax tree (what setuptools reads at build time)."""
    tree = ast.parse((REPO_ROOT / PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise AssertionError(f"{PACKAGE}/__init__.py has no literal __version__")


def build(out_dir: Path) -> tuple[Path, Path]:
    """``python -m build`` (sdist, then the wheel built from that sdist): (sdist, wheel)."""
    done = subprocess.run(
        [sys.executable, "-m", "build", "--installer", "uv", "--outdir", str(out_dir), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"python -m build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    (sdist,) = out_dir.glob("*.tar.gz")
    (wheel,) = out_dir.glob("*.whl")
    return sdist, wheel


def read_wheel(path: Path) -> Archive:
    with zipfile.ZipFile(path) as zf:
        return Archive(path, {n: _text(zf.read(n)) for n in zf.namelist() if not n.endswith("/")})


def read_sdist(path: Path) -> Archive:
    """Member names without the ``<name>-<version>/`` root every sdist member sits under."""
    members: dict[str, str] = {}
    with tarfile.open(path) as tf:
        for info in tf.getmembers():
            if info.isfile():
                _, _, name = info.name.partition("/")
                handle = tf.extractfile(info)
                members[name] = _text(handle.read() if handle else b"")
    return Archive(path, members)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def package_files() -> set[str]:
    """What the package must ship, read from the checkout: its modules and the ``py.typed`` marker.

    A module that a stale ``build/`` copy or a generated file adds to an archive shows up as extra,
    one that the build leaves out as missing.
    """
    root = REPO_ROOT / PACKAGE
    return {
        path.relative_to(REPO_ROOT).as_posix()
        for path in root.rglob("*")
        if path.is_file()
        and "__pycache__" not in path.parts
        and (path.suffix == ".py" or path.name == "py.typed")
    }


def wheel_problems(archive: Archive, expected_package: set[str], version: str) -> list[str]:
    """Everything wrong with a wheel's contents, each naming the file and why it matters."""
    dist_info = f"{PACKAGE}-{version}.dist-info"
    required = {f"{PACKAGE}/py.typed", *(f"{dist_info}/licenses/{name}" for name in LICENSE_FILES)}
    problems = [f"{name} is missing from the wheel{_why(name)}" for name in sorted(required - archive.names)]
    package = {n for n in archive.names if n.startswith(f"{PACKAGE}/")}
    problems += _package_problems(package, expected_package, "wheel")
    for name in sorted(archive.names - package):
        if not name.startswith(f"{dist_info}/"):
            problems.append(f"{name} is in the wheel but is neither the package nor its metadata")
    return problems + _leftover_problems(archive)


def sdist_problems(archive: Archive, expected_package: set[str]) -> list[str]:
    """Everything wrong with an sdist's contents (it must build the same wheel again)."""
    required = {f"{PACKAGE}/py.typed", "pyproject.toml", "PKG-INFO", *LICENSE_FILES}
    problems = [f"{name} is missing from the sdist{_why(name)}" for name in sorted(required - archive.names)]
    package = {n for n in archive.names if n.startswith(f"{PACKAGE}/")}
    problems += _package_problems(package, expected_package, "sdist")
    for name in sorted(archive.names - package):
        if name not in SDIST_TOP_LEVEL and not name.startswith(f"{PACKAGE}.egg-info/"):
            problems.append(f"{name} is in the sdist but is neither the package nor what builds it")
    return problems + _leftover_problems(archive)


def _why(name: str) -> str:
    if name.endswith("py.typed"):
        return " (PEP 561: without it a DAG author's mypy and IDE treat the provider as untyped)"
    if name.rpartition("/")[2] in LICENSE_FILES:
        return " (Apache-2.0 requires the license and notices to travel with the code)"
    return ""


def _package_problems(shipped: set[str], expected: set[str], kind: str) -> list[str]:
    missing = [f"{n} is in the checkout but not in the {kind}" for n in sorted(expected - shipped)]
    extra = [
        f"{n} is in the {kind} but is no module of the checkout (a stale build/ copy, a generated file?)"
        for n in sorted(shipped - expected)
    ]
    return missing + extra


def _leftover_problems(archive: Archive) -> list[str]:
    problems = []
    for name in sorted(archive.names):
        if name.startswith("tests/") or "/tests/" in name:
            problems.append(f"{name}: tests are not shipped")
        if name.endswith((".pyc", ".pyo")) or "__pycache__/" in name:
            problems.append(f"{name}: a bytecode cache is a build leftover")
        if _SECRET_NAME.search(name):
            problems.append(f"{name}: a key or secrets file must never be shipped")
        elif _PEM_KEY.search(archive.members[name]):
            problems.append(f"{name}: contains a PEM private key")
    return problems
