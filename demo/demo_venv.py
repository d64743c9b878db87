#!/usr/bin/env python3
"""Create or update the demo's virtualenv: Django 6.1 where the machine's Python allows it.

Usage::

    python3 demo/demo_venv.py VENV [--with PACKAGE ...] [--require-django6]

``make demo`` runs it for ``.venv-demo`` (any Python 3 runs this file: it
uses the standard library only); ``tests/test_demo.py`` runs it to serve the
demo on Django 6, and ``bench/bench_tasks.py`` for a Django 6 virtualenv of
its own (``--with django-tasks-db``).

* **The interpreter.** Django 6.x needs Python 3.12 or later. The first
  Python >= 3.12 among: the one running this file (``make demo
  PYTHON=python3.13``), ``python3.12``, ``python3.13``, ``python3.14`` on
  PATH (a pyenv shim of a version that is not active fails and is skipped),
  and pyenv's ``~/.pyenv/versions/3.12*`` then ``3.13*`` and later (newest
  patch first). 3.12 comes first: it is the interpreter CI runs Django 6.1
  on (``.ci/run``). With it the virtualenv gets Django 6.1, whose
  ``django.tasks`` the demo's functions use. Without one: the Python
  running this file, Django 5.2 and the ``django-tasks`` backport (the same
  API under ``django_tasks``, which the backend supports on 5.2), and a
  message saying so (``--require-django6``: exit 3 instead, for the test and
  the bench, which then say why they skipped).
* **A virtualenv made for another Python is made again**, saying so (the
  pip installs of a virtualenv are tied to its interpreter). ``demo/var/``
  is kept: ``migrate`` brings its database to the new Django (Django 6.x
  adds no migration to the contrib apps the demo uses, so the database
  still opens on 5.2 too).
* **The stamp** ``VENV/.demo-venv.json`` records the interpreter, the Django
  requirement, the extra packages and a digest of ``setup.cfg`` and
  ``pyproject.toml``: when they all match, nothing is installed and the
  demo starts at once; when only the package metadata changed, the app is
  installed again in place.
* **A lock** (``VENV.lock``): ``make demo`` and a test may build the same
  virtualenv at the same time; the second waits and finds it made.
"""

import argparse
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAMP = ".demo-venv.json"
DJANGO6 = "Django>=6.1,<6.2"
#: Django 5.2 with the django-tasks backport (the django.tasks API under ``django_tasks``).
DJANGO52 = "Django>=5.2,<6.0"
BACKPORT = "django-tasks>=0.12"
#: Exit status of --require-django6 when no Python >= 3.12 is found.
NO_DJANGO6 = 3
PROBE = "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"


def say(message: str) -> None:
    print("demo_venv: " + message, file=sys.stderr, flush=True)


def probe(python: str) -> tuple[tuple[int, int], str] | None:
    """((major, minor), executable) of ``python``, or None if it does not run (a pyenv shim of an inactive version)."""
    try:
        done = subprocess.run([python, "-c", PROBE], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    version, executable = done.stdout.split()
    major, minor = version.split(".")
    return (int(major), int(minor)), executable


def candidates() -> list[str]:
    """The interpreters to try, in order (see the module's docstring)."""
    found = [sys.executable, "python3.12", "python3.13", "python3.14"]
    pyenv = os.path.expanduser("~/.pyenv/versions")

    def key(path):
        parts = [int(p) if p.isdigit() else 0 for p in os.path.basename(path).split(".")]
        return (parts[:2] != [3, 12], [-p for p in parts])

    for version in sorted(glob.glob(os.path.join(pyenv, "3.1[2-9]*")), key=key):
        found.append(os.path.join(version, "bin", "python3"))
    return found


def choose() -> tuple[str, str, str]:
    """(interpreter, its "major.minor", Django requirement): the first Python >= 3.12, else this one."""
    for python in candidates():
        found = probe(python)
        if found and found[0] >= (3, 12):
            return found[1], "%d.%d" % found[0], DJANGO6
    return sys.executable, "%d.%d" % sys.version_info[:2], DJANGO52


def requirements(django: str) -> list[str]:
    """What to install beside the app: Django, and on 5.2 the django-tasks backport."""
    return [django] if django == DJANGO6 else [django, BACKPORT]


def metadata_digest() -> str:
    digest = hashlib.sha256()
    for name in ("setup.cfg", "pyproject.toml"):
        path = ROOT / name
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()


def venv_version(venv: Path) -> str | None:
    """The "major.minor" of an existing virtualenv's interpreter (from pyvenv.cfg), or None."""
    try:
        lines = (venv / "pyvenv.cfg").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return ".".join(value.strip().split(".")[:2])
    return None


def build(venv: Path, extras: list[str]) -> dict:
    """Make ``venv`` what the stamp says it should be; return the stamp."""
    python, version, django = choose()
    wanted = {
        "python": python,
        "django": django,
        "requirements": requirements(django),
        "with": sorted(extras),
        "metadata": metadata_digest(),
    }
    stamp_path = venv / STAMP
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        stamp = None
    if stamp == wanted:
        return stamp
    existing = venv_version(venv)
    if existing is not None and (existing != version or (stamp and stamp["python"] != python)):
        say(
            "%s was made with Python %s; making it again with Python %s for %s (demo/var/ is kept: "
            "migrate brings its database along)." % (venv, existing, version, django)
        )
        shutil.rmtree(venv)
        existing = None
    if existing is None:
        say("creating %s with Python %s (%s)" % (venv, version, python))
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin/python"), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True
        )
    say(
        "installing the app, %s into %s (compiling uWSGI takes ~20 s the first time)"
        % (", ".join(requirements(django) + extras), venv)
    )
    subprocess.run(
        [
            str(venv / "bin/python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-e",
            str(ROOT),
            *requirements(django),
            *extras,
        ],
        check=True,
    )
    stamp_path.write_text(json.dumps(wanted, indent=1))
    return wanted


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("venv", type=Path)
    parser.add_argument("--with", dest="extras", action="append", default=[], metavar="PACKAGE")
    parser.add_argument(
        "--require-django6", action="store_true", help="exit %d without Python >= 3.12" % NO_DJANGO6
    )
    args = parser.parse_args(argv)
    venv = args.venv.resolve()
    if args.require_django6 and choose()[2] != DJANGO6:
        say(
            "no Python >= 3.12 found (looked on PATH and in ~/.pyenv/versions): Django 6 cannot be installed."
        )
        return NO_DJANGO6
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(str(venv) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = build(venv, args.extras)
    if stamp["django"] != DJANGO6:
        say(
            "no Python >= 3.12 found (looked for python3.12+ on PATH and in ~/.pyenv/versions): the demo "
            "runs Django 5.2, its django.tasks part on the django-tasks backport. Install Python 3.12 or "
            "later and run make demo again for Django 6.1."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
