"""docs/deploying.md shows only what the production profile really ran.

Every command in the guide's ``bash`` blocks must be one this deployment ran (its services, its
``airflow`` CLI calls and components, recorded as they start), with the run's ports and paths
written as the guide's ``$PLACEHOLDERS``; every ``export`` must be the environment the components
got; the ``pip install`` line must name the requirements of ``pyproject.toml``'s ``test`` extra
that the suite installs, each satisfied by what it runs with. The file sorts last in this folder,
so it sees what the other tests started; run alone, it starts whatever is missing first.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
from collections.abc import Iterable
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement

from ..deployment import REPO_ROOT
from ..services import TEST_ONLY_PG_SETTINGS
from .deployment import WORKERS, ProductionDeployment

pytestmark = [pytest.mark.e2e, pytest.mark.production]

GUIDE = REPO_ROOT / "docs" / "deploying.md"
#: names the guide gives the run's values (the JWT secret is random; the rest are ports and paths)
PLACEHOLDERS = (
    "PGDATA",
    "PGSOCKETS",
    "PGPORT",
    "REDIS_PORT",
    "REDIS_DIR",
    "AIRFLOW_HOME",
    "API_PORT",
    "SECRETS_DIR",
    "JWT_SECRET",
)


def guide_commands(text: str) -> list[list[str]]:
    """The commands of the guide's ``bash`` blocks, as argv (comments and blank lines dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [
        argv for block in blocks for line in block.splitlines() if (argv := shlex.split(line, comments=True))
    ]


def values(d: ProductionDeployment, production_dir: Path) -> dict[str, str]:
    """Placeholder -> the value it stands for in this run."""
    return {
        "PGDATA": str(d.postgres.data),
        "PGSOCKETS": str(d.postgres.dir),
        "PGPORT": str(d.postgres.port),
        "REDIS_PORT": str(d.redis.port),
        "REDIS_DIR": str(d.redis.dir),
        "AIRFLOW_HOME": str(d.home),
        "API_PORT": str(d.port),
        "SECRETS_DIR": str(production_dir / "secrets"),
        "JWT_SECRET": d.env["AIRFLOW__API_AUTH__JWT_SECRET"],
    }


def generalize(token: str, known: dict[str, str]) -> str:
    """A token of a command the run executed, with its values written as ``$PLACEHOLDERS``."""
    for name in sorted(known, key=lambda n: -len(known[n])):  # a path before the paths inside it
        value = known[name]
        if name.endswith("PORT"):
            token = f"${name}" if token == value else re.sub(rf":{value}(?=/)", f":${name}", token)
        else:
            token = token.replace(value, f"${name}")
    return token


def as_documented(argv: list[str], known: dict[str, str]) -> list[str]:
    """A command as the guide writes it: ``airflow`` for ``python -m airflow``, programs by name,
    no ``runuser`` prefix (the guide explains it), no test-only PostgreSQL settings."""
    if argv[:2] == ["runuser", "-u"] and "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if argv[1:3] == ["-m", "airflow"]:
        argv = ["airflow", *argv[3:]]
    out = [Path(argv[0]).name]
    rest = iter(argv[1:])
    for token in rest:
        if token == "-c" and (setting := next(rest, "")) in TEST_ONLY_PG_SETTINGS:
            continue
        out += ["-c", setting] if token == "-c" else [token]
    return [generalize(t, known) for t in out]


def ran(d: ProductionDeployment, known: dict[str, str]) -> set[tuple[str, ...]]:
    commands: Iterable[list[str]] = [*d.postgres.ran, *d.redis.ran, *d.ran]
    return {tuple(as_documented(argv, known)) for argv in commands}


def test_every_command_of_the_guide_was_run_by_the_production_profile(
    production_deployment: ProductionDeployment, production_dir: Path
) -> None:
    d = production_deployment
    known = values(d, production_dir)
    commands = guide_commands(GUIDE.read_text())
    runnable = [c for c in commands if c[0] not in ("export", "pip")]
    assert len(runnable) >= 10, commands
    missing = [c for c in runnable if tuple(c) not in ran(d, known)]
    if missing:  # run alone: start what the other tests would have started (the triggerers)
        d.restore()
        d.stop_component("triggerer-1")
        d.start_component("triggerer-1", "--capacity", "6")
        d.wait_ready("triggerer-1")
        missing = [c for c in runnable if tuple(c) not in ran(d, known)]
    assert not missing, (missing, sorted(ran(d, known)))


def test_every_export_of_the_guide_is_what_the_components_got(
    production_deployment: ProductionDeployment, production_dir: Path
) -> None:
    d = production_deployment
    known = values(d, production_dir)
    env = d.component_env(WORKERS[0])
    exports = [c for c in guide_commands(GUIDE.read_text()) if c[0] == "export"]
    assert len(exports) >= 10, exports
    for _, assignment in exports:
        name, _, value = assignment.partition("=")
        assert generalize(env.get(name, "<unset>"), known) == value, name


def test_the_install_line_is_the_test_extra_the_suite_runs_with() -> None:
    (pip,) = [c for c in guide_commands(GUIDE.read_text()) if c[0] == "pip"]
    assert pip[:2] == ["pip", "install"]
    documented = [Requirement(r) for r in pip[2:]]
    for req in documented:
        installed = importlib.metadata.version(req.name)
        assert req.specifier.contains(installed, prereleases=True), (str(req), installed)
    extra = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "test"
    ]
    production = {str(Requirement(r).name): Requirement(r) for r in extra if "python_version >= '3.11'" in r}
    assert production, extra
    for name, req in production.items():
        (doc,) = [r for r in documented if r.name == name]
        assert (doc.specifier, doc.extras) == (req.specifier, req.extras), (str(doc), str(req))
    assert {r.name for r in documented} == {*production, "apache-airflow", "airflow-provider-aidp"}
