"""Node identity beyond the host name (issue 15), through real uWSGI nodes.

Two nodes with one host name (containers on host networking, replicas with a
fixed host name): one runs in a PID namespace of its own (``unshare --pid
--fork --mount-proc``, root only). The other node's recovery passes must not
judge the first one's run by its pid (pid 3 there is another process here):
the run goes on, its command is not killed, and the admin names the two
nodes sharing a host name.
"""

import os
import shutil

import pytest

from taskmanager import processes
from taskmanager.models import SpoolerHeartbeat

from .support.admin import TASK_URL, press, start_running
from .support.adminclient import client_for
from .support.objects import make_superuser
from .support.uwsgi_server import UwsgiServer, node_env
from .support.waits import finished_report, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

HOST = "shared-name.invalid"
SETTINGS = {
    "TASKMANAGER_RECOVERY_SECONDS": 1,
    "TASKMANAGER_HEARTBEAT_SECONDS": 0.5,
    "TASKMANAGER_HEARTBEAT_TIMEOUT": 30,
}


@pytest.fixture
def namespaced_node(transactional_db):
    """Start a uWSGI node in a PID namespace of its own, with host name HOST; stop it at the end."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("a PID namespace needs root and unshare(1)")
    started = []

    def start():
        node = UwsgiServer(env={**node_env(SETTINGS), "TM_TEST_HOSTNAME": HOST})
        node.args = ["unshare", "--pid", "--fork", "--mount-proc", *node.args]
        started.append(node)
        node.start()
        make_superuser()
        node.admin = client_for(node.url, "admin")
        return node

    yield start
    for node in started:
        node.stop()


def host_pid(ns_pid: int, ancestor: int) -> int | None:
    """The pid, in this PID namespace, of the process ``ns_pid`` of a namespace started by ``ancestor``."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/status" % name) as fh:
                status = dict(line.split(":", 1) for line in fh.read().splitlines() if ":" in line)
        except OSError:
            continue
        if int(status.get("NSpid", "0").split()[-1]) != ns_pid or len(status["NSpid"].split()) < 2:
            continue
        pid = int(name)
        while pid > 1:
            if pid == ancestor:
                return int(name)
            pid = int(_ppid(pid))
    return None


def _ppid(pid: int) -> int:
    try:
        with open("/proc/%d/stat" % pid, "rb") as fh:
            return int(fh.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def heartbeat_passes(node_id: str, count: int) -> None:
    seen = set()

    def more():
        seen.add(SpoolerHeartbeat.objects.filter(node=node_id).values_list("last_seen", flat=True).first())
        return len(seen - {None}) > count

    wait_for(more, timeout=30, message="%d recovery passes of %s" % (count, node_id))


def test_identity_is_boot_and_pid_namespace():
    identity = processes.node_identity()
    with open("/proc/sys/kernel/random/boot_id") as fh:
        assert fh.read().strip() in identity
    assert os.readlink("/proc/self/ns/pid") in identity


def test_same_host_name_other_pid_namespace_is_judged_by_heartbeat(namespaced_node, uwsgi_node, commands):
    inside = namespaced_node()
    task, running = start_running(inside.admin, commands, "in-a-namespace")
    assert running.host == HOST
    assert running.supervisor_identity and running.supervisor_identity != processes.node_identity()
    command = host_pid(running.pid, inside.proc.pid)
    assert command  # the command, seen from here under another pid
    started = processes.start_time(command)

    outside = uwsgi_node(settings=SETTINGS, env={"TM_TEST_HOSTNAME": HOST})
    outside_id = "%s:%s" % (HOST, os.path.abspath(outside.spool_dir))
    heartbeat_passes(outside_id, 3)

    running.refresh_from_db()
    assert running.finished_datetime is None, running.end_reason
    assert processes.is_same_process(command, started)
    assert "interrupted" not in outside.log()

    # The admin names the two live nodes sharing a host name, on either node.
    inside_id = "%s:%s" % (HOST, os.path.abspath(inside.spool_dir))
    page = outside.admin.get(TASK_URL)
    assert "tm-identity-banner" in page.text
    banner = page.text.split("tm-identity-banner", 1)[1].split("</ul>", 1)[0]
    assert HOST in banner and inside_id in banner and outside_id in banner, banner
    wait_for(lambda: "taskmanager.W019" in outside.log(), message="W019 in the second node's log")

    press(inside.admin, task, "stop")
    assert finished_report(task).end_reason == "stopped by user admin"


def test_two_spoolers_writing_one_node_are_named(namespaced_node, uwsgi_node):
    # One host name and one spool directory path, two PID namespaces: one node string, two spoolers.
    inside = namespaced_node()
    outside = uwsgi_node(settings=SETTINGS, env={"TM_TEST_HOSTNAME": HOST}, spool_dir=inside.spool_dir)
    node_id = "%s:%s" % (HOST, os.path.abspath(inside.spool_dir))
    wait_for(
        lambda: SpoolerHeartbeat.objects.filter(node=node_id, clash_seen__isnull=False).exists(),
        message="the two identities of %s to be seen in turn" % node_id,
    )
    banner = outside.admin.get(TASK_URL).text.split("tm-identity-banner", 1)
    assert len(banner) == 2 and node_id in banner[1].split("</ul>", 1)[0]
