"""The harness's stop_process: a SIGSTOP is queued on one thread, and the
other threads of a multi-threaded process run on until the whole group has
stopped (tens of milliseconds under load: etcd answered a put it "could
not" so, test-store-etcd's test_no_quorum). stop_process returns only once
every thread has stopped, for a process that is not the test's child too,
and at once for a process that is gone."""

import os
import signal
import subprocess
import sys

from vireo_harness import all_threads_stopped, kill_pid, stop_process

# Eight threads spinning (and the main one waiting on them).
BUSY = ("import threading\n"
        "def spin():\n"
        "    while True: pass\n"
        "ts = [threading.Thread(target=spin) for _ in range(8)]\n"
        "[t.start() for t in ts]\n"
        "print('spinning', flush=True)\n"
        "[t.join() for t in ts]\n")


def cpu_ticks(pid):
    """utime + stime of each thread of pid, by thread id."""
    ticks = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks[tid] = int(fields[11]) + int(fields[12])
    return ticks


def busy_orphan():
    """The pid of a busy process that is not this test's child (its parent,
    a shell, has ended)."""
    sh = subprocess.run(["sh", "-c", f'{sys.executable} -c "$0" >/dev/null 2>&1 & echo $!', BUSY],
                        check=True, capture_output=True, text=True)
    return int(sh.stdout)


def test_a_process_is_stopped_only_when_every_thread_is():
    pid = busy_orphan()
    try:
        assert os.getppid() != pid
        # Its threads up and running: not stopped.
        while len(os.listdir(f"/proc/{pid}/task")) < 9:
            pass
        assert not all_threads_stopped(pid)
        stop_process(pid)
        # No thread runs: the states say T, and no CPU time is added after.
        with open(f"/proc/{pid}/status") as f:
            assert "State:\tT" in f.read()
        assert all_threads_stopped(pid)
        before = cpu_ticks(pid)
        subprocess.run(["sleep", "0.3"], check=True)
        assert cpu_ticks(pid) == before
        os.kill(pid, signal.SIGCONT)
        subprocess.run(["sleep", "0.05"], check=True)
        assert not all_threads_stopped(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        kill_pid(pid)


def test_a_process_gone_counts_as_stopped():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    stop_process(p.pid)  # returns: nothing left to run
