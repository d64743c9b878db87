"""How long the tests wait before they give up: ``TM_TEST_TIMEOUT_SCALE`` times a generous limit."""

import os


def scaled(seconds: float) -> float:
    """``seconds`` multiplied by ``TM_TEST_TIMEOUT_SCALE`` (a number, default 1).

    A deadline is only a failure's limit (waiting on a condition costs what
    the condition takes): a slow or loaded machine sets the variable above 1.
    """
    return seconds * float(os.environ.get("TM_TEST_TIMEOUT_SCALE") or 1)
