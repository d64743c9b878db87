"""The package as other projects get it: sdist and wheel contents, metadata, and a fresh install.

The ``packaging`` tests build the sdist and the wheel with ``python -m build``
(an isolated build, as a release would be made), check them with
``twine check --strict``, and install the wheel into a new virtualenv where a
new ``django-admin startproject`` follows the README's installation steps.
They need the ``build`` and ``twine`` packages (the ``test`` extra) and the
package index for the build and runtime dependencies.
"""

import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from django.core.management import call_command

from .support.adminclient import AdminClient
from .support.procs import free_port
from .support.rst import code_blocks
from .support.waits import wait_for

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "taskmanager"
# Package data a deployment needs beside the Python modules.
DATA_DIRS = ("templates", "static", "locale", "migrations")


def clean_env(**extra) -> dict:
    """Return the environment for a subprocess that must not see this test run's settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
        and not key.startswith("TM_")
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def run(args, cwd, env=None, timeout=600) -> str:
    """Run ``args``; return its output, or fail the test showing it."""
    proc = subprocess.run(
        [str(a) for a in args],
        cwd=str(cwd),
        env=env or clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        pytest.fail(
            "%s exited with %s:\n%s" % (" ".join(map(str, args)), proc.returncode, proc.stdout[-8000:])
        )
    return proc.stdout


def source_data_files() -> set[str]:
    """Return the package data files of the source tree, as paths relative to ROOT."""
    found = set()
    for sub in DATA_DIRS:
        for path in (PACKAGE / sub).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found.add(path.relative_to(ROOT).as_posix())
    return found


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """Build the sdist and the wheel once for this module; return {"sdist": Path, "wheel": Path}."""
    outdir = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", outdir, ROOT], cwd=ROOT)
    sdists = list(outdir.glob("*.tar.gz"))
    wheels = list(outdir.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, list(outdir.iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0]}


@pytest.mark.django_db
def test_no_missing_migrations():
    # Exits with SystemExit(1) and names the changes when a model changed
    # without its migration.
    call_command("makemigrations", "taskmanager", "--check", "--dry-run", verbosity=1)


def test_every_translation_is_compiled():
    po_files = sorted((PACKAGE / "locale").rglob("*.po"))
    missing = [str(p.relative_to(ROOT)) for p in po_files if not p.with_suffix(".mo").exists()]
    assert not missing, "compile and commit these (manage.py compilemessages): %s" % missing


@pytest.mark.packaging
def test_wheel_holds_the_package_and_its_data_but_no_tests(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(dist_info + "/METADATA").decode())

    missing = source_data_files() - names
    assert not missing, "package data missing from the wheel: %s" % sorted(missing)
    assert any(n.startswith("taskmanager/locale/") and n.endswith(".mo") for n in names)
    assert "taskmanager/management/commands/collect_commands.py" in names
    tops = {n.split("/")[0] for n in names}
    assert tops == {"taskmanager", dist_info}, "unexpected top-level entries: %s" % sorted(tops)
    assert not [n for n in names if "/tests/" in n or n.startswith("tests/") or "/testapp/" in n]

    assert metadata["Name"] == "django-spooler-taskmanager"
    assert metadata["Requires-Python"] == ">=3.11"
    requires = metadata.get_all("Requires-Dist")
    assert any(re.match(r"Django\s*>=\s*5\.2", r, re.I) for r in requires), requires
    assert any(r.lower().startswith("uwsgi") for r in requires), requires
    # uwsgidecorators ships with uWSGI; the standalone package collides with it.
    assert not any(r.lower().startswith("uwsgidecorators") for r in requires), requires


@pytest.mark.packaging
def test_sdist_holds_the_package_data_docs_and_license_but_no_tests(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        names = {m.name.split("/", 1)[1] for m in sdist.getmembers() if "/" in m.name}
    missing = source_data_files() - names
    assert not missing, "package data missing from the sdist: %s" % sorted(missing)
    for name in ("README.rst", "LICENSE", "setup.cfg", "pyproject.toml", "taskmanager/__init__.py"):
        assert name in names
    assert not [n for n in names if n.startswith(("tests/", "demo/", "bench/"))]


@pytest.mark.packaging
def test_twine_check_strict_passes(dists):
    output = run(
        [sys.executable, "-m", "twine", "check", "--strict", dists["sdist"], dists["wheel"]], cwd=ROOT
    )
    assert output.count("PASSED") == 2, output


def readme_python_block(containing: str, language: str = "python") -> str:
    """Return the README's ``.. code-block:: <language>`` block that contains ``containing``, dedented."""
    for block in code_blocks(ROOT / "README.rst", language):
        if containing in block:
            return block
    raise AssertionError("README.rst has no %s block containing %r" % (language, containing))


@pytest.mark.packaging
def test_wheel_installs_into_a_new_project_with_the_readme_steps(dists, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # The test's pip installs into the new virtualenv (``pip --python``, pip >= 22.3): the
    # install its own pip would make, without the 5-6 s of ensurepip bootstrapping that pip.
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", dists["wheel"]], cwd=tmp_path)

    run([env_dir / "bin" / "django-admin", "startproject", "mysite"], cwd=tmp_path)
    project = tmp_path / "mysite"
    settings = project / "mysite" / "settings.py"
    text = settings.read_text()
    # README step 2: add the app and the static files directory, and give
    # SQLite the options it recommends.
    installed = readme_python_block("INSTALLED_APPS")
    assert '"taskmanager",' in installed
    text, count = re.subn(r"(INSTALLED_APPS = \[\n(?:.*\n)*?)\]", r'\1    "taskmanager",\n]', text, count=1)
    assert count == 1
    static = [line for line in installed.splitlines() if line.startswith("STATIC_")]
    assert static, installed
    text += "\n" + "\n".join(static) + "\n" + readme_python_block("DATABASES") + "\n"
    settings.write_text(text)

    env = clean_env()
    manage = [python, "manage.py"]
    # README step 3.
    run(manage + ["migrate", "--noinput"], cwd=project, env=env)
    run(
        manage + ["createsuperuser", "--noinput", "--username", "admin", "--email", "admin@example.com"],
        cwd=project,
        env={**env, "DJANGO_SUPERUSER_PASSWORD": "readme-Password-1"},
    )
    run(manage + ["collectstatic", "--noinput"], cwd=project, env=env)
    output = run(manage + ["collect_commands", "--excludecore", "-v2"], cwd=project, env=env)
    assert "collect_commands" in output and "migrate" not in output, output
    again = run(manage + ["collect_commands", "--excludecore", "-v2"], cwd=project, env=env)
    assert "0 command(s) added" in again, again
    run(manage + ["check", "--fail-level", "ERROR"], cwd=project, env=env)
    unapplied = run(manage + ["showmigrations", "taskmanager", "--plan"], cwd=project, env=env)
    assert "[ ]" not in unapplied and "[X]" in unapplied, unapplied

    # The installed copy is used (not the source tree), and its templates and
    # static files are found: the admin pages of the app render.
    probe = (
        "import taskmanager, sys\n"
        "from django.contrib.auth.models import User\n"
        "from django.contrib.staticfiles import finders\n"
        "from django.test import Client\n"
        "from django.test.utils import setup_test_environment\n"
        "setup_test_environment()  # allows the test client's host name\n"
        "assert 'site-packages' in taskmanager.__file__, taskmanager.__file__\n"
        "assert finders.find('taskmanager/taskmanager.css')\n"
        "user = User.objects.create_superuser('probe', 'probe@example.com', 'x')\n"
        "client = Client()\n"
        "client.force_login(user)\n"
        "for url in ('/admin/taskmanager/', '/admin/taskmanager/task/', '/admin/taskmanager/task/add/',\n"
        "            '/admin/taskmanager/command/', '/admin/taskmanager/report/'):\n"
        "    status = client.get(url).status_code\n"
        "    assert status == 200, (url, status)\n"
        "print('probe ok')\n"
    )
    output = run(manage + ["shell", "-c", probe], cwd=project, env=env)
    assert "probe ok" in output, output

    # README step 4: the uwsgi.ini as printed, next to manage.py, with the
    # project's name and a free port; started with the virtualenv's uwsgi.
    ini = readme_python_block("[uwsgi]", language="ini")
    port = free_port()
    assert "http-socket = 127.0.0.1:8000" in ini and "myproject.wsgi" in ini, ini
    ini = ini.replace("myproject", "mysite").replace("127.0.0.1:8000", "127.0.0.1:%d" % port)
    (project / "uwsgi.ini").write_text(ini + "\n")
    with open(tmp_path / "uwsgi.log", "wb") as log:
        server = subprocess.Popen(
            [str(env_dir / "bin" / "uwsgi"), "--ini", "uwsgi.ini"],
            cwd=str(project),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        check_readme_server("http://127.0.0.1:%d" % port, tmp_path / "uwsgi.log")
    finally:
        server.terminate()  # die-on-term: SIGTERM stops it
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
            server.wait()


def check_readme_server(base: str, log_path: Path) -> None:
    """Log in to the admin over HTTP, fetch the static files, run collect_commands as a task."""
    import html
    import urllib.error
    import urllib.request

    def log():
        return log_path.read_text(errors="replace")

    def answers():
        try:
            with urllib.request.urlopen(base + "/admin/login/", timeout=5) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    wait_for(answers, timeout=120, message="the README's uWSGI to answer")
    # The README's configuration raises no check, except W014 where this runs
    # as root (CI does): uWSGI then warns that every command runs as root.
    # Worker 1 and the spoolers log their checks after they start: another
    # worker may answer first (seen under load), so wait for the expected line.
    expected = {"taskmanager.W014"} if os.geteuid() == 0 else set()

    def problems():
        return set(re.findall(r"taskmanager\.[EW]\d{3}", log()))

    # Worker 1 sums the checks up in one line (the README's project has no LOGGING).
    summary = "taskmanager: system checks ran at uWSGI start (worker 1): "
    wait_for(lambda: summary in log(), message="the checks' line of the uWSGI start in its log")
    wait_for(lambda: expected <= problems(), message="the checks of the uWSGI start in its log")
    assert problems() == expected, log()
    found = "1 warning: taskmanager.W014 (each logged with its hint)" if expected else "no problem found"
    assert log().count(summary) == 1 and summary + found + "." in log(), log()
    for path in ("/static/admin/css/base.css", "/static/taskmanager/taskmanager.css"):
        with urllib.request.urlopen(base + path, timeout=10) as resp:
            assert resp.status == 200 and "text/css" in resp.headers["Content-Type"], path
    client = AdminClient(base)
    assert client.login("admin", "readme-Password-1").url.endswith("/admin/"), log()
    add = client.get("/admin/taskmanager/task/add/").text
    command = re.search(r'<option value="(\d+)">collect_commands \(taskmanager\)</option>', add).group(1)
    resp = client.post(
        "/admin/taskmanager/task/add/",
        {
            "name": "collect",
            "command": command,
            "arguments": "--excludecore",
            "note": "",
            "_continue": "Save",
        },
    )
    task = re.search(r"/admin/taskmanager/task/(\d+)/change/", resp.url).group(1)
    page = client.post("/admin/taskmanager/task/%s/start/" % task, {}).text
    assert "“collect” was started." in html.unescape(page), page[-3000:]

    def result():
        page = client.get("/admin/taskmanager/task/%s/change/" % task).text
        found = re.search(
            r'class="tm-live-result" data-task="\d+"><span class="tm-badge tm-\w+">(\w+)<', page
        )
        return found.group(1) if found else None

    assert wait_for(result, timeout=120, message="the task's result") == "OK", log()
