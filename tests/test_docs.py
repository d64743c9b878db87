"""What the README and the docs show works as shown: the uwsgi.ini and the example command.

The README's uwsgi.ini runs for real in tests/test_packaging.py (a new
project, uWSGI started with it, a task run over HTTP); here the
installation guide is held to the same file, and the command of
docs/commands.rst is run as the page describes.
"""

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from taskmanager import checks

from .support.rst import code_blocks

ROOT = Path(__file__).resolve().parent.parent


def uwsgi_ini(path: Path) -> str:
    (ini,) = [block for block in code_blocks(path, "ini") if "http-socket" in block]
    return ini


def test_installation_guide_shows_the_readme_uwsgi_ini():
    readme = uwsgi_ini(ROOT / "README.rst")
    assert uwsgi_ini(ROOT / "docs" / "installation.rst") == readme
    # Complete: an application, a socket, the static files, the spooler.
    for option in ("module", "http-socket", "master", "static-map", "spooler", "spooler-chdir"):
        assert re.search(r"^%s = " % option, readme, re.M), option


INSTALL_PAGES = [ROOT / "README.rst", *sorted((ROOT / "docs").glob("*.rst"))]


def test_install_commands_install_a_clone_or_a_wheel_not_a_name_from_pypi():
    # The distribution is not published (issue 16): a bare
    # "pip install django-spooler-taskmanager" finds nothing.
    for page in INSTALL_PAGES:
        for line in page.read_text().splitlines():
            command = line.strip().strip("`").removeprefix("$ ").strip()
            if command.startswith("pip install") and "django-spooler-taskmanager" in command:
                raise AssertionError("%s installs by name from PyPI: %s" % (page.name, line))
    for page in (ROOT / "README.rst", ROOT / "docs" / "installation.rst"):
        text = " ".join(page.read_text().split())
        assert "not on PyPI yet" in text, page
        assert "pip install /path/to/the/clone" in text and "respool_tasks" in text, page


def test_the_healthy_start_line_the_install_steps_quote_is_the_one_uwsgi_logs():
    # The line that tells a user the checks passed (README step 4 and the
    # installation guide) is quoted as taskmanager/checks.py writes it.
    healthy = checks.start_summary([], "worker 1")
    for page in (ROOT / "README.rst", ROOT / "docs" / "installation.rst"):
        text = " ".join(page.read_text().split())
        quoted = re.findall(r"``(taskmanager: [^`]*\(worker 1\)[^`]*)``", text)
        assert quoted, "%s does not quote the healthy start line" % page.name
        assert set(quoted) == {healthy}, (page.name, quoted)


@pytest.fixture
def example_command():
    """The Command class of the example in docs/commands.rst."""
    blocks = code_blocks(ROOT / "docs" / "commands.rst", "python")
    source = next(block for block in blocks if "CommandError" in block)
    namespace = {"__name__": "shop.management.commands.import_customers"}
    exec(compile(source, "docs/commands.rst", "exec"), namespace)  # noqa: S102 - the page's own example
    return namespace["Command"]


def test_the_example_command_runs_as_described(example_command, tmp_path, caplog):
    path = tmp_path / "customers.csv"
    path.write_text("name,email\nAda,ada@example.com\nBob,\nCarol,carol-at-example\nDan,dan@example.com\n")
    out = StringIO()
    call_command(example_command(), str(path), "--dry-run", stdout=out, no_color=False)
    lines = out.getvalue().splitlines()
    assert lines[0] == "Importing 4 customers"
    assert "Bob: no e-mail, skipped" in lines[1]
    assert "Imported 2 of 4 customers." in lines[-1]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("ERROR", "Carol: invalid e-mail 'carol-at-example'")
    ]
    with pytest.raises(CommandError, match="cannot read"):
        call_command(example_command(), str(tmp_path / "missing.csv"), stdout=StringIO())
