"""The Italian admin is Italian throughout (issue 16, item 7).

Labels built when a module is imported are frozen in the language active at
import (English in a uWSGI worker): "Next runs" and "Spool file" stayed
English on the Italian task page. A static test keeps every eager
``gettext`` inside function bodies; the page test reads the Italian pages
of the real server; the catalogue says "attività", never "task".
"""

import ast
import html
import re
from pathlib import Path

import pytest

from .support.admin import TASK_URL
from .support.adminclient import client_for
from .support.objects import make_report, make_task

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "taskmanager"
PO = PACKAGE / "locale" / "it" / "LC_MESSAGES" / "django.po"
#: The functions of django.utils.translation that translate when called (not lazily).
EAGER = {"gettext", "ngettext", "pgettext", "npgettext"}


def _eager_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names bound to an eager gettext, names bound to django.utils.translation itself)."""
    names, modules = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "django.utils.translation":
            names |= {alias.asname or alias.name for alias in node.names if alias.name in EAGER}
        elif isinstance(node, ast.ImportFrom) and node.module == "django.utils":
            modules |= {alias.asname or alias.name for alias in node.names if alias.name == "translation"}
        elif isinstance(node, ast.Import):
            modules |= {
                alias.asname or alias.name for alias in node.names if alias.name == "django.utils.translation"
            }
    return names, modules


def _import_time_nodes(body):
    """Every node evaluated when the module is imported: module and class bodies, decorators and
    default values included, function and lambda bodies left out."""
    todo = list(body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            arguments = node.args
            todo += arguments.defaults + [d for d in arguments.kw_defaults if d is not None]
            todo += getattr(node, "decorator_list", [])
            continue
        yield node
        todo += list(ast.iter_child_nodes(node))


def frozen_labels(source: str, name: str) -> list[str]:
    """The eager gettext calls of module ``source`` run at import time, as "name:line call"."""
    tree = ast.parse(source, name)
    names, modules = _eager_names(tree)
    found = []
    for node in _import_time_nodes(tree.body):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        eager = (isinstance(func, ast.Name) and func.id in names) or (
            isinstance(func, ast.Attribute)
            and func.attr in EAGER
            and isinstance(func.value, ast.Name)
            and func.value.id in modules
        )
        if eager:
            found.append("%s:%d %s" % (name, node.lineno, ast.unparse(node)[:60]))
    return found


def test_no_label_is_translated_at_import():
    """A label made at import is in the language of the process that imported the module, for every
    request after: at module or class level only gettext_lazy. (admin_schedule's "next runs" and
    "spool file" were eager, and stayed English in Italian.)"""
    found = [
        line
        for path in sorted(PACKAGE.rglob("*.py"))
        for line in frozen_labels(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    ]
    assert found == [], "use gettext_lazy at module or class level: %s" % found


def test_the_static_check_sees_decorators_and_class_bodies():
    source = (
        "from django.utils.translation import gettext as _, gettext_lazy\n"
        "from django.utils import translation\n"
        "LABEL = _('module level')\n"
        "class A:\n"
        "    title = translation.ngettext('a', 'b', 2)\n"
        "    lazy = gettext_lazy('fine')\n"
        "    @decorate(description=_('decorator'))\n"
        "    def method(self, x=_('default')):\n"
        "        return _('fine: at call time')\n"
        "f = lambda: _('fine too')\n"
    )
    assert sorted(frozen_labels(source, "sample.py")) == [
        "sample.py:3 _('module level')",
        "sample.py:5 translation.ngettext('a', 'b', 2)",
        "sample.py:7 _('decorator')",
        "sample.py:8 _('default')",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_italian_task_page_and_lists_are_italian(server, commands, superuser):
    """Every label of the task page in Italian, in a server whose workers imported the admin in
    English: "Next runs" and "Spool file" were not."""
    client = client_for(server.url, "admin", language="it")
    task = make_task(commands, "italiano", repetition_period="hour", repetition_rate=2)
    make_report(task)
    page = html.unescape(client.get(TASK_URL + "%d/change/" % task.pk).text)
    shown = " | ".join(re.findall(r"<label[^>]*>(.*?)</label>", page))
    for italian in ("Prossime esecuzioni", "File di coda", "Prossima esecuzione", "Ultima esecuzione"):
        assert italian + ":" in shown, (italian, shown)
    for english in ("Next runs", "Spool file", "Next execution", "Last execution"):
        assert english not in page, english
    listing = html.unescape(client.get(TASK_URL).text)
    assert "ogni 2 ore" in listing and "Per ripetizione" in listing and "Periodica</a>" in listing
    reports = html.unescape(client.get("/admin/taskmanager/report/").text)
    # The reports list's "started" column (date and duration, issue 16 item 9).
    assert re.search(r"column-started_run[^>]*>.*?Avvio", reports, re.S) and "Started" not in reports


def _msgstrs() -> list[str]:
    text = PO.read_text(encoding="utf-8")
    blocks = re.findall(r"^msgstr(?:\[\d\])? ((?:\".*\"\n?)+)", text, re.M)
    return ["".join(re.findall(r'"(.*)"', block)) for block in blocks]


def test_the_italian_catalogue_says_attivita():
    """The Italian says "attività" for a task, never the English word (identifiers aside)."""
    english = []
    for msgstr in _msgstrs():
        words = re.sub(
            r"%\(\w+\)\w|\{\{ ?\w+ ?\}\}|\w*TASKMANAGER_\w*|\w+_tasks?\b|taskmanager\.\w+|django\.tasks\b", "", msgstr
        )
        if re.search(r"\btasks?\b", words, re.I):
            english.append(msgstr)
    assert english == []


@pytest.mark.django_db(transaction=True)
def test_the_italian_log_page_names_its_filters_in_italian(server, commands, superuser):
    """The log page's level filters said "ALL / WARNING / ERROR" on the Italian page."""
    client = client_for(server.url, "admin", language="it")
    report = make_report(make_task(commands, "registro"))
    page = html.unescape(client.get("/admin/taskmanager/report/%d/log/?level=WARNING" % report.pk).text)
    levels = re.search(r'<ul class="tm-levels">(.*?)</ul>', page, re.S)
    assert levels, page
    names = re.findall(r"<li>(?:<a [^>]*>|<strong>)([^<]*)<", levels.group(1))
    assert names == ["TUTTE", "AVVISI", "ERRORI"], names
    # The links keep the level's identifier, whatever the language.
    assert "level=ALL" in levels.group(1) and "level=ERROR" in levels.group(1)
