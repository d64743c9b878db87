"""A command that misbehaves in one of many ways (tests/test_adversarial.py)."""

import os
import signal
import sys
import threading
import time

from django.core.management.base import BaseCommand

MODES = [
    "daemon",  # double fork + setsid: a daemon outlives the command
    "close-fds",  # close fd 1 and 2, then keep running a little
    "no-newline",  # write --size bytes without a newline
    "chdir-env",  # change cwd and environment, then print them
    "setpgid",  # move to a new process group of its own
    "trap-term",  # install a SIGTERM handler that keeps running
    "keyboard-interrupt",  # raise KeyboardInterrupt
    "deadlock",  # take a lock twice: hangs for ever
    "db-lock",  # open a write transaction and never commit
    "stop-self",  # SIGSTOP itself after a line
    "styled",  # a styled warning and error, then plain lines
    "closerange",  # close every descriptor above 2 (as daemons do), then write
    "mp-spawn",  # use a multiprocessing pool with the "spawn" start method
    "mp-fork",  # use a multiprocessing pool with the "fork" start method
    "sys-executable",  # run sys.executable -c ... as a subprocess
]


class Command(BaseCommand):
    help = "Misbehave in the way --mode says."

    def add_arguments(self, parser):
        parser.add_argument("--mode", choices=MODES, required=True)
        parser.add_argument("--size", type=int, default=1024 * 1024)
        parser.add_argument("--seconds", type=float, default=120)

    def handle(self, *args, **options):
        getattr(self, "do_" + options["mode"].replace("-", "_"))(options)

    def hang(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(0.1)

    def do_daemon(self, options):
        pid = os.fork()
        if pid == 0:
            os.setsid()
            if os.fork():
                os._exit(0)
            # The daemon: detached from the terminal, stdout/stderr closed.
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            time.sleep(300)
            os._exit(0)
        os.waitpid(pid, 0)
        # The daemon's pid: the only process of the session the first child made.
        self.stdout.write("daemon started")

    def do_close_fds(self, options):
        self.stdout.write("closing fd 1 and 2")
        self.stdout.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os.close(1)
        os.close(2)
        self.hang(min(options["seconds"], 1.0))
        print("after close", file=sys.stderr)  # fails silently: fd 2 is closed

    def do_no_newline(self, options):
        chunk = "y" * 65536
        left = options["size"]
        while left > 0:
            sys.stdout.write(chunk[:left])
            left -= len(chunk)
        sys.stdout.flush()

    def do_chdir_env(self, options):
        os.chdir("/")
        os.environ["TM_HOSTILE"] = "changed"
        os.environ.pop("DJANGO_SETTINGS_MODULE", None)
        self.stdout.write("cwd %s" % os.getcwd())

    def do_setpgid(self, options):
        os.setpgid(0, 0) if os.getpgid(0) != os.getpid() else None
        pid = os.fork()
        if pid == 0:
            os.setpgid(0, 0)  # a group of its own, away from the run's group
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(300)
            os._exit(0)
        self.stdout.write("grandchild %d in group %d" % (pid, pid))
        self.stdout.flush()
        self.hang(options["seconds"])

    def do_trap_term(self, options):
        def handler(signum, frame):
            self.stdout.write("got SIGTERM, carrying on")

        signal.signal(signal.SIGTERM, handler)
        self.stdout.write("trapping SIGTERM")
        self.hang(options["seconds"])

    def do_keyboard_interrupt(self, options):
        self.stdout.write("about to raise KeyboardInterrupt")
        raise KeyboardInterrupt

    def do_deadlock(self, options):
        lock = threading.Lock()
        self.stdout.write("taking the lock twice")
        self.stdout.flush()
        lock.acquire()
        lock.acquire()

    def do_db_lock(self, options):
        from django.db import connection, transaction

        from taskmanager.models import TaskCategory

        with transaction.atomic():
            TaskCategory.objects.create(name="held by tm_hostile %d" % os.getpid())
            self.stdout.write("holding a write transaction")
            self.stdout.flush()
            connection.ensure_connection()
            self.hang(options["seconds"])

    def do_stop_self(self, options):
        self.stdout.write("stopping myself")
        self.stdout.flush()
        os.kill(os.getpid(), signal.SIGSTOP)
        self.stdout.write("continued")

    def do_styled(self, options):
        self.stdout.write(self.style.WARNING("a styled warning"))
        self.stdout.write(self.style.ERROR("a styled error"))
        self.stdout.write("plain")

    def do_closerange(self, options):
        os.closerange(3, 65536)
        self.stdout.write("after closerange")
        self.stdout.write(self.style.ERROR("styled error after closerange"))

    def _pool(self, method):
        import multiprocessing

        self.stdout.write("executable %s" % sys.executable)
        with multiprocessing.get_context(method).Pool(2) as pool:
            self.stdout.write("squares %s" % pool.map(abs, [-1, -2, -3]))

    def do_mp_spawn(self, options):
        self._pool("spawn")

    def do_mp_fork(self, options):
        self._pool("fork")

    def do_sys_executable(self, options):
        import subprocess

        out = subprocess.run(
            [sys.executable, "-c", "import sys; print('python', sys.version_info[0])"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.stdout.write("%s %s" % (out.returncode, out.stdout.strip() or out.stderr.strip()))
