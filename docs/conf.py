"""Sphinx configuration of the taskmanager documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (``make docs``);
warnings are errors. The pages are plain reStructuredText: nothing here
imports Django.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Read the version without importing the package (no Django needed here).
release = re.search(
    r'__version__\s*=\s*"([^"]+)"', (ROOT / "taskmanager" / "__init__.py").read_text()
).group(1)
version = ".".join(release.split(".")[:2])

project = "django-spooler-taskmanager"
author = "The django-spooler-taskmanager authors"
copyright = "the django-spooler-taskmanager authors"

extensions = []
templates_path = []
exclude_patterns = ["_build"]
root_doc = "index"
language = "en"
highlight_language = "none"

html_theme = "alabaster"
html_static_path = ["_static"]
html_title = "django-spooler-taskmanager %s" % release
html_theme_options = {
    "description": "Django management commands as background tasks, run by the uWSGI spooler",
    "fixed_sidebar": True,
    "page_width": "1100px",
}
