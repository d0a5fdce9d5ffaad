"""The harness's cleanup kills only processes that are still its own. PIDs
are reused within minutes here (pid_max 32768, three pytest runs side by
side): a qemu.pid left by a stopped VM, or the pid an earlier API answer
gave, may name another test's process by the time of cleanup (a backup's
qemu-storage-daemon got a SIGTERM so, and its backup failed with
"Connection reset by peer"). Daemon.cleanup leaves such a process alone and
still ends a process of its own. And it ends a dnsmasq that no pidfile
names, of a vireod killed right after starting it: such dnsmasqs outlived
their tests, their directories removed."""

import os
import subprocess
import sys

import pytest

from vireo_harness import OwnProcs, pid_alive, wait_until

SLEEPER = "import time; time.sleep(600)"


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


@pytest.fixture
def procs():
    made = []

    def start(*extra):
        p = subprocess.Popen([sys.executable, "-c", SLEEPER, *extra])
        made.append(p)
        # Exec'd (until then its command line is pytest's, without the
        # marker: OwnProcs.add would rightly pass it over).
        wait_until(lambda: SLEEPER.encode() in cmdline(p.pid), 10, what="the sleeper to exec")
        return p

    try:
        yield start
    finally:
        for p in made:  # our own children, not yet reaped: their pids are theirs
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)


# A dnsmasq slow to start: its process waits a minute (no pidfile written
# meanwhile) before it becomes the real dnsmasq. One process, whose command
# line names the daemon's directory (its --conf-file).
SLOW_DNSMASQ = """#!/usr/bin/python3
import os, sys, time
time.sleep(60)
os.execv("{real}", ["{real}"] + sys.argv[1:])
"""


def processes_naming(path):
    """The pids of processes whose command line names path."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and path.encode() in cmdline(entry):
            found.append(int(entry))
    return found


def test_cleanup_ends_a_dnsmasq_no_pidfile_names(fake_daemon):
    """vireod killed (-9) just after it started a network's dnsmasq, before
    that dnsmasq wrote its pidfile: with vireod gone and no pidfile, only
    the daemon's namespace still knows the process, and the cleanup ends
    it there. Before, it outlived the test (its directory removed)."""
    d = fake_daemon
    d.wrap_tool("dnsmasq", SLOW_DNSMASQ)
    d.api("POST", "/v1/networks", {"name": "nslow", "type": "nat"}, expect=201)
    conf = os.path.join(d.run_dir, "networks", "nslow", "dnsmasq.conf")
    wait_until(lambda: processes_naming(conf), 30, what="the slow dnsmasq to start")
    slow = processes_naming(conf)
    d.kill9()
    try:
        d.cleanup()
        wait_until(lambda: not any(pid_alive(p) for p in slow), 10,
                   what=f"dnsmasq {slow} to end")
    finally:
        for pid in slow:  # never left behind by this test, whatever the cleanup did
            if pid_alive(pid) and conf.encode() in cmdline(pid):
                os.kill(pid, 9)


def test_cleanup_goes_on_past_a_process_that_survives(fake_daemon, monkeypatch):
    """A process of the namespace that SIGKILL does not end (in D state,
    say): the cleanup says so (TimeoutError) after the rest of it ran, the
    namespace and the directory gone. Before, it stopped there and left
    both (and the cgroups) behind."""
    d = fake_daemon
    name = d.netns.name

    def stuck(timeout=10.0):
        raise TimeoutError(f"netns {name}: pids [4242] survive SIGKILL")

    monkeypatch.setattr(d.netns, "end_processes", stuck)
    with pytest.raises(TimeoutError, match="survive SIGKILL"):
        d.cleanup()
    assert not os.path.exists(f"/run/netns/{name}")
    assert not os.path.exists(d.tmp)


def write_pidfile(d, vm, pid):
    path = os.path.join(d.run_dir, "vms", vm)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "qemu.pid"), "w") as f:
        f.write(f"{pid}\n")


def test_cleanup_spares_a_process_that_got_a_stale_pid(fake_daemon, procs):
    d = fake_daemon
    stranger = procs()            # another test's process, under a pid we once knew
    ours = procs(d.tmp)           # names the daemon's directory, as its QEMUs do
    write_pidfile(d, "stopped-vm", stranger.pid)
    write_pidfile(d, "running-vm", ours.pid)
    d.qemu_pids.add(stranger.pid)  # as from a VM's "pid" before it stopped
    d.cleanup()
    assert ours.wait(timeout=10) is not None
    assert stranger.poll() is None, "the cleanup killed a process that is not its own"


def test_own_procs_hold_only_processes_of_their_own(procs, tmp_path):
    own = OwnProcs(str(tmp_path))
    ours, other = procs(str(tmp_path)), procs()
    own.add(ours.pid)
    own.add(other.pid)
    own.add(2 ** 22 + 1)  # no such process
    assert list(own) == [ours.pid] and other.pid not in own
    ours.kill()
    ours.wait(timeout=10)
    # Ended: neither listed nor signalled again, whoever has its pid next.
    assert list(own) == [] and not own.signal(ours.pid, 9)
    own.close()


def test_fence_pid_is_only_this_hosts_fence(tmp_path):
    """A fence.pid left by a fence that ended may name another test's
    vireo-fence by now (the parallel runs have their own): Host.fence_pid,
    which kill_host and kill_fence SIGKILL, gives only one naming this
    host's directory."""
    from types import SimpleNamespace

    from cluster_harness import Host

    mine, other = tmp_path / "mine", tmp_path / "other"
    for d in (mine, other):
        (d / "run").mkdir(parents=True)
    fences = []
    try:
        for d in (mine, other):  # "vireo-fence ... --run-dir DIR/run", as vireod starts it
            fences.append(subprocess.Popen(
                ["bash", "-c", 'exec -a /usr/lib/vireo/vireo-fence "$0" -c "$1" --run-dir "$2"',
                 sys.executable, "import time; time.sleep(600)", str(d / "run")]))
        for p in fences:
            wait_until(lambda: cmdline(p.pid).startswith(b"/usr/lib/vireo/vireo-fence"), 10,
                       what="the fake fence to exec")
        host = SimpleNamespace(tmp=str(mine), run_dir=str(mine / "run"))
        with open(mine / "run" / "fence.pid", "w") as f:
            f.write(f"{fences[1].pid}\n")  # stale: another host's fence has that pid now
        assert Host.fence_pid(host) is None
        with open(mine / "run" / "fence.pid", "w") as f:
            f.write(f"{fences[0].pid}\n")
        assert Host.fence_pid(host) == fences[0].pid
    finally:
        for p in fences:
            p.kill()
            p.wait(timeout=10)
