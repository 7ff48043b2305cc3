"""The package's shape: its public surface, its layers, and that nothing holds together
only by the order of imports.

The layer rule itself is import-linter's contract in pyproject.toml (run by CI); the
test at the end proves the contract fails when an upward import is added.
"""

from __future__ import annotations

import ast
import os
import pkgutil
import random
import shutil
import subprocess
import sys
import textwrap
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import mona_middleware

PACKAGE = Path(mona_middleware.__file__).parent
ROOT = PACKAGE.parent
# Public modules: the import paths users type. Everything else is private (``_name``).
PUBLIC_MODULES = {
    "mona_middleware.aggregate",
    "mona_middleware.aiohttp",
    "mona_middleware.asgi",
    "mona_middleware.celery",
    "mona_middleware.collector",
    "mona_middleware.compat",
    "mona_middleware.config",
    "mona_middleware.django",
    "mona_middleware.errors",
    "mona_middleware.flask",
    "mona_middleware.logging",
    "mona_middleware.propagation",
    "mona_middleware.gevent",
    "mona_middleware.testing",
    "mona_middleware.transports",
    "mona_middleware.wsgi",
}


def all_modules() -> list[str]:
    names = ["mona_middleware"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="mona_middleware."):
        names.append(info.name)
    return sorted(names)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_all_is_exactly_the_public_names_of_the_namespace():
    loaded = run_python(
        """
        import types, mona_middleware as m
        for name in m.__all__:
            getattr(m, name)  # loads each name from its module
        public = sorted(
            name for name, value in vars(m).items()
            if (not name.startswith("_") or name == "__version__")
            and not isinstance(value, types.ModuleType)
        )
        print(public == sorted(m.__all__), sorted(set(public) ^ set(m.__all__)))
        print(sorted(set(dir(m)) - set(vars(m))))
        """
    )
    assert loaded.returncode == 0, loaded.stderr
    same, listing = loaded.stdout.splitlines()
    assert same.startswith("True"), same
    assert listing == "[]"  # dir() shows nothing that is not really there


def test_every_public_name_is_documented_and_importable():
    for name in mona_middleware.__all__:
        value = getattr(mona_middleware, name)
        assert value is not None
        if name != "__version__":
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"
    with pytest.raises(AttributeError, match="no attribute 'exporter'"):
        mona_middleware.exporter  # noqa: B018 - the old flat modules are not names here


def test_importing_the_package_loads_nothing_and_starts_nothing():
    result = run_python(
        """
        import sys, threading
        before = set(sys.modules)
        import mona_middleware
        loaded = sorted(m for m in set(sys.modules) - before if not m.startswith("mona_middleware"))
        ours = sorted(m for m in sys.modules if m.startswith("mona_middleware"))
        print(loaded)
        print(ours)
        print(threading.active_count())
        """
    )
    assert result.returncode == 0, result.stderr
    third_party, ours, threads = result.stdout.splitlines()
    assert "requests" not in third_party and "flask" not in third_party, third_party
    loaded = ["mona_middleware", "mona_middleware._util", "mona_middleware._util.version"]
    assert ours == str(loaded)
    assert threads == "1"


def test_the_collector_is_standard_library_only():
    result = run_python(
        """
        import sys
        before = set(sys.modules)  # what site's .pth files load (namespace packages...)
        import mona_middleware.collector
        top = {m.split(".")[0] for m in set(sys.modules) - before if not m.startswith("_")}
        third = sorted(top - set(sys.stdlib_module_names))
        print(third)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['mona_middleware']"


def test_first_use_of_the_api_starts_no_thread_until_a_context_closes():
    result = run_python(
        """
        import threading
        import mona_middleware as mona
        mona.configure(transport="memory")
        ctx = mona.context("C").open()
        mona.export({"a": 1})
        print(threading.active_count())
        ctx.close()
        print(threading.active_count() > 1)
        mona.shutdown(2)
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True"]


@pytest.mark.timeout(600)  # one interpreter per module: minutes on a loaded machine
def test_every_module_imports_first_in_a_fresh_interpreter_in_any_order():
    """No module works only because another was imported before it (a cycle held by
    import order fails exactly like this)."""
    modules = all_modules()
    rng = random.Random(len(modules))

    def import_first(first: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        others = [m for m in modules if m != first]
        rng_local = random.Random(first)
        rng_local.shuffle(others)
        # An adapter whose framework is not installed (the tox core env) refuses to
        # import with our install hint; any other failure counts.
        code = (
            "import importlib\n"
            f"for name in {[first, *others]!r}:\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except ImportError as exc:\n"
            '        if "pip install \'mona_middleware[" not in str(exc):\n'
            "            raise\n"
        )
        return first, run_python(code)

    order = list(modules)
    rng.shuffle(order)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(import_first, order))
    failed = {first: result.stderr[-600:] for first, result in results if result.returncode}
    assert not failed, failed


def module_level_imports(path: Path, module: str) -> set[str]:
    """Our modules this file imports when it is imported: module level, outside
    ``if TYPE_CHECKING``, function bodies excluded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("mona_middleware"))
            elif isinstance(node, ast.ImportFrom):
                base = resolve_from(node, package)
                if base.startswith("mona_middleware"):
                    for alias in node.names:
                        candidate = f"{base}.{alias.name}"
                        found.add(candidate if is_module(candidate) else base)

    visit(tree.body)
    return found


def resolve_from(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:])
    return (PACKAGE / relative).with_suffix(".py").is_file() or (PACKAGE / relative).is_dir()


def source_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def test_a_static_scan_of_module_level_imports_finds_no_cycle():
    graph = {name: module_level_imports(path, name) for name, path in source_files().items()}
    # Importing a.b.c imports a and a.b first: parents are edges too.
    for name in list(graph):
        for other in list(graph[name]):
            parts = other.split(".")
            graph[name].update(".".join(parts[:i]) for i in range(1, len(parts)))
    graph = {name: {o for o in deps if o in graph and o != name} for name, deps in graph.items()}
    for name in graph:  # a package's __init__ is imported before its modules: not a cycle
        graph[name] = {o for o in graph[name] if not name.startswith(o + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for other in sorted(graph[node]):
            if state.get(other) == 1:
                cycles.append([*stack[stack.index(other) :], other])
            elif other not in state:
                walk(other)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)
    assert not cycles, cycles


def test_no_module_imports_another_modules_private_name():
    """``from x import _name`` only inside x's own private package (and never by tests)."""
    offences = []
    roots = [PACKAGE, ROOT / "tests", ROOT / "benchmarks", ROOT / "example_apps"]
    for root in roots:
        for path in root.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.ImportFrom):
                    continue
                ours = (node.module or "").startswith("mona_middleware")
                if (node.level and root is PACKAGE) or ours:
                    for alias in node.names:
                        name = alias.name
                        if name.startswith("_") and not name.startswith("__") and node.level != 1:
                            offences.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not offences, offences


def test_private_modules_are_private_and_public_ones_are_the_documented_paths():
    top = {info.name for info in pkgutil.iter_modules([str(PACKAGE)], prefix="mona_middleware.")}
    public = {name for name in top if not name.rpartition(".")[2].startswith("_")}
    assert public == PUBLIC_MODULES
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in sorted(public - {"mona_middleware.aggregate", "mona_middleware.errors"}):
        assert name in readme, f"{name} is public but the README never names it"


def mirror(name: str) -> tuple[Path, Path]:
    """Where ``name``'s tests live: ``tests/<path>/test_<module>.py`` or a folder
    ``tests/<path>/<module>/`` of test modules; leading underscores dropped
    (``mona_middleware._export.spool`` -> ``tests/export/test_spool.py``)."""
    parts = [part.lstrip("_") for part in name.split(".")[1:]]
    folder = ROOT.joinpath("tests", *parts[:-1])
    return folder / f"test_{parts[-1]}.py", folder / parts[-1]


def test_tests_mirror_the_source_tree():
    """One test module per source module with behaviour of its own."""
    missing = []
    for name, path in sorted(source_files().items()):
        if name in MODULES_TESTED_ELSEWHERE or name == "mona_middleware":
            continue
        if path.name == "__init__.py" and not path.read_text(encoding="utf-8").strip():
            continue  # a package marker
        module, folder = mirror(name)
        if not module.is_file() and not any(folder.glob("test_*.py")):
            missing.append(f"{name}: {module.relative_to(ROOT)} or {folder.relative_to(ROOT)}/")
    assert not missing, missing
    for name in MODULES_TESTED_ELSEWHERE:
        assert name in source_files(), f"{name} is listed as tested elsewhere but does not exist"


# Modules whose behaviour is exercised through the module that uses them, each with the
# reason; each is small and has no branch of its own worth a test module.
MODULES_TESTED_ELSEWHERE = {
    "mona_middleware.__main__": "tests/cli/test_main.py runs python -m mona_middleware",
    "mona_middleware._util.version": "a constant",
    "mona_middleware._export.items": "types only, read by tests/export/test_prepare.py",
    "mona_middleware._web.hooks": "types only (the hooks' signatures), checked by mypy in CI",
    "mona_middleware.errors": "three exception classes, raised throughout the tests",
}


def test_the_layer_contract_fails_on_an_upward_import(tmp_path):
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed in this environment")
    shutil.copytree(PACKAGE, tmp_path / "mona_middleware", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def lint_copy() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(lint)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )

    kept = lint_copy()
    assert kept.returncode == 0, kept.stdout[-2000:]
    config = tmp_path / "mona_middleware" / "config.py"
    config.write_text(config.read_text() + "\nfrom ._api import context as _upward  # noqa\n")
    broken = lint_copy()
    assert broken.returncode != 0
    assert "mona_middleware.config is not allowed to import mona_middleware._api" in broken.stdout


def test_a_module_object_is_never_shadowed_by_a_function_of_the_same_name():
    for name in mona_middleware.__all__:
        assert not isinstance(getattr(mona_middleware, name), types.ModuleType), name


def test_classifiers_name_every_python_ci_runs_and_the_frameworks():
    """pyproject's classifiers, .ci/run and tox.ini agree on the Pythons (3.10-3.13)."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    tox = (ROOT / "tox.ini").read_text(encoding="utf-8")
    assert 'requires-python = ">=3.10"' in pyproject
    for minor in (10, 11, 12, 13):
        assert f'"Programming Language :: Python :: 3.{minor}"' in pyproject
    for minor in (10, 12, 13):  # 3.11 runs the whole suite (python3 on these machines)
        assert f"core-py3{minor}" in ci and f"-py3{minor}" in tox
    for classifier in ("Flask", "Django", "FastAPI", "Pytest"):
        assert f'"Framework :: {classifier}"' in pyproject
    assert '"Typing :: Typed"' in pyproject
    assert (PACKAGE / "py.typed").is_file()
