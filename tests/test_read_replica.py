"""Read replicas (issue 15): every read of the run path goes to the write database, through real uWSGI.

The node's settings route the reads of the task manager's models to the
alias ``replica`` (tests/routers.py), a copy of the database taken before
Start and never updated, as a replica that lags. Start through the node's
admin, then the run: the claim, the run, its end and the report read the
write database, so the run is neither consumed unrun (a stale token) nor
reported wrong.
"""

import pytest

from .support.admin import press
from .support.objects import make_task
from .support.replica import StaleReplica
from .support.waits import finished_report

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.db_sensitive]


@pytest.fixture
def replica():
    made = StaleReplica().create()
    yield made
    made.drop()


def test_start_and_run_with_a_stale_read_replica(replica, uwsgi_node, commands):
    task = make_task(commands, "replica-run", "tm_ok")
    replica.copy()  # the replica stops here: the task is Idle there, with no token
    node = uwsgi_node(settings={"READ_REPLICA": replica.name})

    assert "was started" in press(node.admin, task, "start").text
    report = finished_report(task)
    assert report.result == "OK", [(line.level, line.text) for line in report.log_lines.all()]
    assert report.end_reason == "completed"
    task.refresh_from_db()
    assert task.status == "IDLE" and task.last_result == "OK"
    log = node.log()
    assert "consumed without running" not in log
    assert "Traceback" not in log
