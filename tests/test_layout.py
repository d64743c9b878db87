"""The shape of the code: the import graph of ``taskmanager/`` and of the test modules.

Parsed with :mod:`ast`, never imported. The layers and arrows are described in
``docs/layout.rst``; these tests keep them: no import cycle, pure modules
without the ORM, models without the admin, a run path without the admin,
recovery without the runner and the backends, every deferred import saying
why, no run-path module over 300 lines, and no test module importing another.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "taskmanager"

#: Modules that hold rules or formats only: no ORM, nothing of the package but each other.
PURE = {
    "taskmanager.arguments",
    "taskmanager.callargs",
    "taskmanager.conf",
    "taskmanager.datetimes",
    "taskmanager.exceptions",
    "taskmanager.fencing",
    "taskmanager.logcapture",
    "taskmanager.processes",
    "taskmanager.progress",
    "taskmanager.redaction",
    "taskmanager.schedule",
    "taskmanager.spoolaside",
    "taskmanager.spoolfiles",
    "taskmanager.uwsgi_runtime",
}
#: The admin's pages, forms, actions and templates' helpers.
ADMIN = {
    "taskmanager.actions",
    "taskmanager.admin",
    "taskmanager.admin_results",
    "taskmanager.admin_runwith",
    "taskmanager.admin_schedule",
    "taskmanager.audit_display",
    "taskmanager.bulkstart",
    "taskmanager.display",
    "taskmanager.forms",
    "taskmanager.logviews",
    "taskmanager.templatetags",
    "taskmanager.templatetags.taskmanager_health",
}
#: What runs a task: the runner, recovery and the spooler backends.
RUN_PATH = ("taskmanager.runner", "taskmanager.recovery", "taskmanager.spooler", "taskmanager.djangotasks")
#: Modules whose every line counts towards the 300-line limit.
SMALL = ("taskmanager.runner", "taskmanager.recovery", "taskmanager.spooler", "taskmanager.djangotasks")
SMALL_MODULES = {"taskmanager.prepared", "taskmanager.spoolaside", "taskmanager.spoolfiles", "taskmanager.uwsgi_runtime"}
MAX_LINES = 300

#: (importer, imported): test modules allowed to import another test module.
#: None: shared helpers live in tests/support/, fixtures in conftest.py.
TEST_IMPORTS_ALLOWED: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {
        module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if "migrations" not in path.parts
    }


MODULES = package_modules()


def _type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imports(path: Path):
    """Yield (imported module, line, deferred) for each import of ``path``, outside ``if TYPE_CHECKING``.

    ``from X import name`` gives ``X.name`` when that is a module of the package, else ``X``.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def walk(node, deferred):
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno, deferred
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module
                for alias in child.names:
                    candidate = "%s.%s" % (source, alias.name)
                    yield (candidate if candidate in MODULES else source), child.lineno, deferred
            else:
                inner = deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                yield from walk(child, inner)

    yield from walk(ast.parse(path.read_text(encoding="utf-8")), False)


def graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (a package's ``__init__`` included for its submodules)."""
    edges = {}
    for name, path in MODULES.items():
        targets = set()
        for target, _line, _deferred in imports(path):
            if not target.startswith("taskmanager"):
                continue
            # Importing a.b.c runs a/__init__ and a/b/__init__ first.
            parts = target.split(".")
            for end in range(2, len(parts) + 1):
                prefix = ".".join(parts[:end])
                if prefix in MODULES and prefix != name and not name.startswith(prefix + "."):
                    targets.add(prefix)
        edges[name] = targets
    return edges


GRAPH = graph()


def reachable(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for target in GRAPH.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def in_group(name: str, group) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in group)


def test_graph_is_read():
    assert "taskmanager.runner.claim" in GRAPH
    assert "taskmanager.models" in GRAPH["taskmanager.runner.claim"]
    assert "taskmanager.spooler" in GRAPH["taskmanager.runner.claim"]


def test_no_import_cycle():
    """No cycle, deferred imports included: a function-level import hides a cycle, it does not break it."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def connect(node):  # Tarjan's strongly connected components
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(GRAPH.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            connect(node)
    assert cycles == []


@pytest.mark.parametrize("module", sorted(PURE))
def test_pure_modules_use_no_orm(module):
    path = MODULES[module]
    orm = [
        (target, line)
        for target, line, _deferred in imports(path)
        if target == "django.db" or target.startswith("django.db.") or target == "django.contrib.auth"
    ]
    assert orm == []
    assert {name for name in reachable(module)} <= PURE


def test_models_know_no_admin():
    assert [name for name in reachable("taskmanager.models") if in_group(name, ADMIN)] == []


@pytest.mark.parametrize("module", sorted(name for name in MODULES if in_group(name, RUN_PATH)))
def test_run_path_knows_no_admin(module):
    assert [name for name in reachable(module) if in_group(name, ADMIN)] == []


@pytest.mark.parametrize(
    "module", sorted(name for name in MODULES if in_group(name, ["taskmanager.recovery"]))
)
def test_recovery_imports_neither_runner_nor_backend(module):
    forbidden = ("taskmanager.runner", "taskmanager.spooler")
    assert [name for name in reachable(module) if in_group(name, forbidden)] == []


def test_deferred_imports_say_why():
    """A function-level import has a comment on its line or on the line above its block of imports."""
    silent = []
    for path in MODULES.values():
        lines = path.read_text(encoding="utf-8").split("\n")
        for _target, line, deferred in imports(path):
            if not deferred:
                continue
            above = line - 1  # 0-based index of the import's own line
            while above >= 0 and (
                not lines[above].strip()
                or lines[above].strip().startswith(("import ", "from ", ")"))
                or lines[above].rstrip().endswith(",")
            ):
                if "#" in lines[above]:
                    break
                above -= 1
            if above < 0 or "#" not in lines[above]:
                silent.append("%s:%d" % (path.relative_to(ROOT), line))
    assert sorted(set(silent)) == []


@pytest.mark.parametrize(
    "module", sorted(name for name in MODULES if in_group(name, SMALL) or name in SMALL_MODULES)
)
def test_run_path_modules_are_small_and_say_their_job(module):
    path = MODULES[module]
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_LINES
    assert ast.get_docstring(ast.parse(text)), "%s has no module docstring" % module


def test_no_test_module_imports_another():
    found = set()
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                source = node.module or ""
                name = source.rpartition(".")[2] if source else ""
                if name.startswith("test_") and (node.level or source.startswith("tests.")):
                    found.add((path.stem, name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    name = alias.name.rpartition(".")[2]
                    if alias.name.startswith("tests.test_"):
                        found.add((path.stem, name))
    assert found - TEST_IMPORTS_ALLOWED == set(), "a test module imports another: use tests/support/"


#: The one module of the tests that may sleep: its polls wait on a condition, with a deadline.
WAITS = ROOT / "tests" / "support" / "waits.py"
#: Calls that wait a fixed time (Playwright's ``page.wait_for_timeout`` included).
FIXED_WAITS = {"time.sleep", "sleep", "asyncio.sleep"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return "%s.%s" % (_dotted(node.value), node.attr)
    return node.id if isinstance(node, ast.Name) else ""


def test_tests_wait_on_conditions_not_on_time():
    """A fixed sleep in a test is a bet on the machine's speed (issue 13, item 10: a test failed
    on a loaded machine). Tests wait with tests/support/waits.py, on an event that proves the
    system went past the point. tests/testapp/ is left out: its commands sleep on purpose, as
    the commands under test."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path == WAITS or "testapp" in path.relative_to(ROOT).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            name = _dotted(node.func) if isinstance(node, ast.Call) else ""
            if name in FIXED_WAITS or name.endswith(".wait_for_timeout"):
                found.append("%s:%d %s()" % (path.relative_to(ROOT), node.lineno, name))
            elif isinstance(node, ast.ImportFrom) and node.module in ("time", "asyncio"):
                found += [
                    "%s:%d from %s import sleep" % (path.relative_to(ROOT), node.lineno, node.module)
                    for alias in node.names
                    if alias.name == "sleep"
                ]
    assert not found, found
