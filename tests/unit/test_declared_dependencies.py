"""Every third-party module the code imports comes from a distribution pyproject.toml
declares: the platform's packages from the main dependencies, tests also from the
``test`` extra, benchmarks also from ``bench``. An import that only works because some
other package happened to pull its distribution in breaks a fresh install."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCAL = {
    *PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"],
    "tests",
    "benchmarks",
}
# Imported only by an opt-in flag, which says how to install it when it is missing.
OPTIONAL = {"benchmarks": {"pyinstrument"}}
EXTRAS = {"tests": ("test",), "benchmarks": ("bench",)}


def distribution_name(requirement: str) -> str:
    """``"uvicorn[standard]>=0.30"`` -> ``"uvicorn"`` (normalized as PEP 503 does)."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group(0)).lower()


def declared(extras: tuple[str, ...]) -> set[str]:
    requirements = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        requirements += PYPROJECT["project"]["optional-dependencies"][extra]
    return {distribution_name(r) for r in requirements}


def imported_modules(package: str) -> dict[str, Path]:
    """Top-level modules imported anywhere in ``package`` -> one file importing each."""
    found: dict[str, Path] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], path)
    return found


@pytest.mark.parametrize("package", sorted(LOCAL))
def test_imports_come_from_declared_distributions(package: str) -> None:
    allowed = declared(EXTRAS.get(package, ()))
    providers = packages_distributions()
    undeclared = []
    for module, path in sorted(imported_modules(package).items()):
        if (
            module in sys.stdlib_module_names
            or module in LOCAL
            or module in OPTIONAL.get(package, set())
        ):
            continue
        dists = {distribution_name(d) for d in providers.get(module, [])}
        if not dists & allowed:
            undeclared.append(
                f"{module} ({path.relative_to(ROOT)}; "
                f"from {', '.join(sorted(dists)) or 'nothing installed'})"
            )
    assert not undeclared, f"imported but not declared for {package}: {undeclared}"
