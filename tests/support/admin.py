"""Driving the task admin over HTTP as a user would: the add and change forms, the buttons, the actions."""

import html
import json
from html.parser import HTMLParser

from taskmanager.models import Task

from .adminclient import form_errors
from .waits import finished_report, running_report

TASK_URL = "/admin/taskmanager/task/"


def task_form(commands, name, command="tm_ok", arguments="", **fields) -> dict:
    """The add form of a task as the admin posts it; ``command`` is a name in ``commands`` or a pk.

    ``fields`` are more form fields (e.g. ``timeout``, ``notify``, ``scheduling_0``).
    """
    return {
        "name": name,
        "command": commands[command].pk if isinstance(command, str) else command,
        "arguments": arguments,
        "note": "",
        "reports-TOTAL_FORMS": "0",
        "reports-INITIAL_FORMS": "0",
        "_save": "Save",
        **fields,
    }


def add_task(client, commands, name, command="tm_ok", arguments="", **fields) -> Task:
    """Create a task through the admin add form; return the Task (fail with the form's errors)."""
    resp = client.post(TASK_URL + "add/", task_form(commands, name, command, arguments, **fields))
    assert resp.status == 200, resp.text[:2000]
    task = Task.objects.filter(name=name).first()
    assert task is not None, form_errors(resp)
    return task


def run_to_end(client, commands, name, command="tm_ok", arguments="", timeout=30):
    """Add a task, press its Start and wait for the run's end; return (task, report)."""
    task = add_task(client, commands, name, command, arguments)
    press(client, task, "start")
    return task, finished_report(task, timeout=timeout)


def start_running(
    client, commands, name, command="tm_sleep", arguments="--seconds 120, --tick 0.2", **fields
):
    """Add a task (a two-minute ``tm_sleep`` by default), press Start and wait until its command runs.

    Returns (task, running report).
    """
    task = add_task(client, commands, name, command, arguments, **fields)
    press(client, task, "start")
    return task, running_report(task)


class _FormFields(HTMLParser):
    """The fields a browser would submit from the form with id ``form_id``."""

    def __init__(self, form_id):
        super().__init__()
        self.form_id, self.inside, self.data = form_id, False, []
        self._select = self._textarea = None
        self._options, self._multiple = [], False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file", "image", "reset"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.append((a["name"], a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and a.get("name"):
            self._select, self._options, self._multiple = a["name"], [], "multiple" in a
        elif tag == "option" and self._select:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea" and a.get("name"):
            self._textarea = [a["name"], ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select:
            chosen = [v for v, sel in self._options if sel]
            if not chosen and not self._multiple:  # a browser submits a single select's first option
                chosen = [v for v, _ in self._options[:1]]
            self.data.extend((self._select, v) for v in chosen)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self.data.append((self._textarea[0], self._textarea[1].removeprefix("\n")))
            self._textarea = None


def page_fields(text: str, form_id: str) -> dict:
    """The fields a browser would submit from the form ``form_id`` of the page ``text``.

    A field given several times (a multiple select) is a list.
    """
    parser = _FormFields(form_id)
    parser.feed(text)
    data = {}
    for name, value in parser.data:
        value = html.unescape(value)
        if name in data:
            data[name] = [*(data[name] if isinstance(data[name], list) else [data[name]]), value]
        else:
            data[name] = value
    return data


def change_page(client, task) -> dict:
    """Open the task's admin page; return its form's fields as a browser would submit them."""
    page = client.get(TASK_URL + "%d/change/" % task.pk)
    assert page.status == 200, page.text[:1000]
    return page_fields(page.text, "task_form")


def save_change_page(client, task, data, **changes):
    """Save the task's form from a page opened earlier (``change_page``), with ``changes``; return the answer."""
    data = {**data, **changes, "_save": "Save"}
    resp = client.post(TASK_URL + "%d/change/" % task.pk, data)
    assert resp.status == 200, resp.text[:2000]
    return resp


def edit_task(client, task, **changes):
    """Change fields on the task's admin page and save it, as a browser would; fail on form errors."""
    resp = save_change_page(client, task, change_page(client, task), **changes)
    assert "/change/" not in resp.url, form_errors(resp)
    return resp


def press(client, task, button, status=200):
    """Press a task's button (``start``, ``stop``, ``run-now``); check the answer's ``status`` unless None."""
    resp = client.post(TASK_URL + "%d/%s/" % (task.pk, button))
    if status is not None:
        assert resp.status == status, (button, resp.status, resp.text[:1000])
    return resp


def bulk_action(client, action, *tasks, chunk=200):
    """Run an action of the task list on ``tasks``; return the last answer.

    In chunks of ``chunk`` tasks: Django caps a POST at 1,000 fields.
    """
    ids = [t.pk for t in tasks]
    for i in range(0, len(ids), chunk):
        resp = client.post(
            TASK_URL,
            {"action": action, "index": "0", "select_across": "0", "_selected_action": ids[i : i + chunk]},
        )
        assert resp.status == 200, resp.text[:1000]
    return resp


def status_json(client, *tasks) -> dict:
    """The live status the task pages poll: {task id as str: {...}}."""
    resp = client.get(TASK_URL + "status/?ids=" + ",".join(str(t.pk) for t in tasks))
    assert resp.status == 200, resp.text[:500]
    return json.loads(resp.text)["tasks"]
