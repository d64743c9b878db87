"""Reading a report the ways the admin serves it: its page, the log viewer, live follow, the download."""

import json

REPORTS = "/admin/taskmanager/report/"


def report_urls(report) -> dict[str, str]:
    """The URLs that serve ``report`` or its log, by name."""
    base = "%s%d/" % (REPORTS, report.pk)
    return {
        "page": base + "change/",
        "log": base + "log/",
        "follow": base + "log/follow/?after=0",
        "download": base + "log/download/",
    }


def read_report(client, report) -> dict:
    """GET every URL of ``report``; return {name: Response}."""
    return {name: client.get(url) for name, url in report_urls(report).items()}


def download(client, report) -> str:
    """The report's downloaded log (the request must succeed)."""
    resp = client.get(report_urls(report)["download"])
    assert resp.status == 200, resp.status
    return resp.text


def task_status(client, *tasks) -> dict:
    """The task list's status JSON for ``tasks``: {task pk (str): entry}."""
    resp = client.get("/admin/taskmanager/task/status/?ids=%s" % ",".join(str(t.pk) for t in tasks))
    assert resp.status == 200, resp.status
    return json.loads(resp.text)["tasks"]
