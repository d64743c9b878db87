"""The code blocks of reStructuredText files (README.rst, docs/), to run what they show."""

from pathlib import Path


def code_blocks(path: Path, language: str) -> list[str]:
    """Return the ``.. code-block:: <language>`` blocks of an reST file, dedented."""
    lines = Path(path).read_text().splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != ".. code-block:: %s" % language:
            continue
        directive_indent = len(line) - len(line.lstrip())
        body = []
        # The block is every following line that is blank or indented deeper than the directive.
        for following in lines[number + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= directive_indent:
                break
            body.append(following)
        indent = min(len(b) - len(b.lstrip()) for b in body if b.strip())
        blocks.append("\n".join(b[indent:] for b in body).strip("\n"))
    return blocks
