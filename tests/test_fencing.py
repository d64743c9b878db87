"""Holder-side fencing (issue 15), through real uWSGI nodes.

A node reaches the database through a TCP proxy of the test
(``tests/support/tcpproxy.py``); while its command runs the proxy is cut. Its
supervisor cannot renew the run's heartbeat, and kills the command once
``HEARTBEAT_TIMEOUT - FENCE_MARGIN`` seconds passed on its monotonic clock;
another node closes the run as interrupted only when the heartbeat is older
than ``HEARTBEAT_TIMEOUT + FENCE_MARGIN``, by the database's clock: never
while the command still runs.

SQLite has no connection to cut: PostgreSQL and MariaDB only.
"""

import pytest
from django.db import connection

from taskmanager import fencing, processes
from taskmanager.models import Report

from .support.admin import run_to_end, start_running
from .support.tcpproxy import TcpProxy
from .support.waits import wait_for

pytestmark = pytest.mark.db_sensitive

SETTINGS = {
    "TASKMANAGER_RECOVERY_SECONDS": 1,
    "TASKMANAGER_HEARTBEAT_SECONDS": 0.5,
    "TASKMANAGER_HEARTBEAT_TIMEOUT": 8,
    "TASKMANAGER_FENCE_MARGIN": 3,
}


@pytest.fixture
def proxy():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no database connection to cut")
    settings = connection.settings_dict
    proxy = TcpProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"])).start()
    yield proxy
    proxy.close()


@pytest.mark.django_db(transaction=True)
def test_node_cut_from_the_database_kills_its_command_before_another_node_closes_the_run(
    proxy, uwsgi_node, commands
):
    cut_off = uwsgi_node(
        settings={**SETTINGS, "DATABASE_PORT": proxy.port}, env={"TM_TEST_HOSTNAME": "cut-off.invalid"}
    )
    task, running = start_running(cut_off.admin, commands, "fenced-run")
    observer = uwsgi_node(settings=SETTINGS, env={"TM_TEST_HOSTNAME": "observer.invalid"})
    command = [(running.pid, running.pid_started)]
    assert processes.is_same_process(running.pid, running.pid_started)

    proxy.cut()
    closed_while_running = []

    def closed():
        alive = [pid for pid, started in command if processes.is_same_process(pid, started)]
        report = Report.objects.filter(pk=running.pk, finished_datetime__isnull=False).first()
        if report is not None and alive:
            closed_while_running.append(alive)
        return report

    report = wait_for(closed, timeout=90, interval=0.02, message="another node to close the run")
    assert not closed_while_running, "closed while %s still ran" % closed_while_running
    assert report.end_reason == "interrupted"
    fenced = [line for line in cut_off.log().splitlines() if "Fencing:" in line]
    assert fenced and "killed" in fenced[0], cut_off.log()[-3000:]
    assert "run %s of task %s interrupted" % (running.pk, task.pk) in observer.log()

    # Back on the database: the cut-off node writes nothing over the closed run, and runs the next task.
    proxy.restore()
    _task, after = run_to_end(cut_off.admin, commands, "after-the-cut", timeout=60)
    assert after.result == "OK"
    report.refresh_from_db()
    assert report.end_reason == "interrupted"


def test_the_rule_holder_gives_up_before_observers_close():
    assert fencing.holder_limit(60, None) == 50 and fencing.observer_wait(60, None) == 70
    assert fencing.holder_limit(8, 3) == 5 and fencing.observer_wait(8, 3) == 11
    assert not fencing.holder_expired(100.0, 104.9, 8, 3)
    assert fencing.holder_expired(100.0, 105.0, 8, 3)
    assert "killed" in fencing.holder_message(5.04, 8, 3)
