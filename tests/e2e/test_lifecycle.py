"""System tests of the VM lifecycle on the real path: vireod + QEMU (TCG) +
the default guest image booting Linux, driven through the CLI and the API.
Tests that only look at a booted guest share one (web1); a test that only
needs a QEMU process does not wait for its guest to boot (make check is
CPU-bound, TCG boots are its largest cost)."""

import os
import signal
import subprocess
import time

import pytest

from vireo_harness import BOOT_MARKER, Daemon, pid_alive, race, wait_until


@pytest.fixture(scope="module")
def web1():
    """A vireod with one booted VM, web1, that its tests only look at."""
    d = Daemon()
    try:
        d.create_and_boot("web1")
        yield d
    finally:
        d.cleanup()


def start_unbooted(daemon, name):
    """Creates and starts VM name without waiting for its guest to boot;
    its VM document (pid included)."""
    daemon.cli("vm", "create", name, "--memory", "128M")
    daemon.cli("vm", "start", name)
    vm = daemon.vm(name)
    daemon.qemu_pids.add(vm["pid"])
    return vm


def test_stop_start_reboot_pause_resume_delete(daemon):
    daemon.create_and_boot("life")

    daemon.cli("vm", "pause", "life")
    assert daemon.vm("life")["state"] == "paused"
    before = daemon.console_log("life")
    daemon.cli("vm", "resume", "life")
    assert daemon.vm("life")["state"] == "running"
    assert daemon.console_log("life").startswith(before)

    daemon.cli("vm", "reboot", "life")
    daemon.wait_console("life", BOOT_MARKER, count=2)
    assert daemon.vm("life")["state"] == "running"

    # Delete is refused while running and leaves the VM as it was.
    p = daemon.cli("vm", "delete", "life", check=False)
    assert p.returncode != 0 and "running" in p.stderr
    assert daemon.vm("life")["state"] == "running"

    # A clean ACPI stop: the guest powers itself off.
    pid = daemon.vm("life")["pid"]
    daemon.cli("vm", "stop", "life")
    vm = daemon.vm("life")
    assert vm["state"] == "stopped"
    assert vm["exit_reason"] == "guest powered off"
    assert not pid_alive(pid)

    # Started again, then forced off: a running QEMU is what the forced stop
    # needs (a guest booting again after a clean stop is test_backups.py's
    # and test_storage.py's).
    daemon.cli("vm", "start", "life")
    daemon.wait_state("life", "running")
    daemon.remember_qemu_pids()
    daemon.cli("vm", "stop", "life", "--force")
    assert daemon.vm("life")["state"] == "stopped"

    vm_id = vm["id"]
    daemon.cli("vm", "delete", "life")
    status, _ = daemon.request("GET", "/v1/vms/life")
    assert status == 404
    assert not os.path.exists(os.path.join(daemon.state_dir, "vms", vm_id))
    assert not os.path.exists(os.path.join(daemon.run_dir, "vms", vm_id))


def test_vms_survive_vireod_kill9(daemon):
    # surv-a's disk is blank: a QEMU is all its part needs (its firmware
    # waits idle, no second guest boots under TCG); surv-b's guest booted.
    daemon.cli("vm", "create", "surv-a", "--blank", "--disk-size", "16M", "--memory", "128M")
    daemon.cli("vm", "start", "surv-a")
    a = daemon.vm("surv-a")
    daemon.qemu_pids.add(a["pid"])
    b = daemon.create_and_boot("surv-b")
    daemon.kill9()
    assert pid_alive(a["pid"]) and pid_alive(b["pid"])

    daemon.start()
    for vm in (a, b):
        now = daemon.vm(vm["name"])
        assert now["state"] == "running", now
        assert now["pid"] == vm["pid"]
    # Still controllable after re-attaching.
    daemon.cli("vm", "pause", "surv-b")
    assert daemon.vm("surv-b")["state"] == "paused"
    daemon.cli("vm", "resume", "surv-b")
    daemon.cli("vm", "stop", "surv-a", "--force")
    assert daemon.vm("surv-a")["state"] == "stopped"
    assert not pid_alive(a["pid"])
    # The console still works after the restart. (daemon.guest waits for the
    # command's output; `vireo console` with piped input stops 1 s after EOF,
    # whether the guest has answered yet or not.)
    assert "reattached-42" in daemon.guest("surv-b", "echo reattached-$((40+2))")
    # And a clean ACPI stop: the re-attached VM's guest powers itself off.
    daemon.cli("vm", "stop", "surv-b")
    assert daemon.vm("surv-b")["exit_reason"] == "guest powered off"
    assert not pid_alive(b["pid"])


def test_killed_qemu_marks_vm_crashed(daemon):
    vm = start_unbooted(daemon, "crashy")  # a QEMU is what it kills: no boot needed
    os.kill(vm["pid"], signal.SIGKILL)
    started = time.monotonic()
    # Bounded, not a timing assertion (a loaded machine may take longer); the
    # time it took is printed.
    wait_until(lambda: daemon.vm("crashy")["state"] == "crashed", 30, interval=0.02,
               what="the crashed state")
    elapsed = time.monotonic() - started
    crashed = daemon.vm("crashy")
    assert "signal 9" in crashed["exit_reason"], crashed
    print(f"crash noticed after {elapsed:.3f}s")
    # A crashed VM starts again (a running QEMU is what the SIGTERM below
    # needs; a started guest's boot is every other test's).
    daemon.cli("vm", "start", "crashy")
    daemon.wait_state("crashy", "running")
    daemon.remember_qemu_pids()
    # Ended from outside by a SIGTERM (QEMU exits cleanly then): the reason
    # is QEMU's last log line, which names who sent it.
    os.kill(daemon.vm("crashy")["pid"], signal.SIGTERM)
    wait_until(lambda: daemon.vm("crashy")["state"] in ("stopped", "crashed"), 30, interval=0.02,
               what="the VM to end")
    ended = daemon.vm("crashy")
    assert f"terminating on signal 15 from pid {os.getpid()}" in ended["exit_reason"], ended


def test_qemu_dead_while_daemon_down_is_crashed(daemon):
    vm = start_unbooted(daemon, "gone")  # its QEMU dies: no boot needed
    daemon.kill9()
    os.kill(vm["pid"], signal.SIGKILL)
    wait_until(lambda: not pid_alive(vm["pid"]), 10, what="QEMU to die")
    daemon.start()
    now = daemon.vm("gone")
    assert now["state"] == "crashed"
    assert "not running" in now["exit_reason"]


def test_autostart_on_first_daemon_start_of_boot(daemon):
    daemon.cli("vm", "create", "auto", "--autostart", "--memory", "128M")
    assert daemon.vm("auto")["state"] == "defined"
    daemon.stop()
    # A new host boot empties the run dir; autostart happens then.
    os.remove(os.path.join(daemon.run_dir, "autostart.done"))
    daemon.start()
    # Running is the point (a started guest's boot is every other test's).
    daemon.wait_state("auto", "running", timeout=30)
    daemon.remember_qemu_pids()


def test_edit_offline(daemon):
    daemon.cli("vm", "create", "ed", "--memory", "128M")
    daemon.cli("vm", "edit", "ed", "--vcpus", "2", "--memory", "192M", "--name", "ed2")
    vm = daemon.vm("ed2")
    assert (vm["vcpus"], vm["memory_mib"]) == (2, 192)
    # A running QEMU is all the refusal and the argv need: no boot (a guest
    # with two vCPUs boots in test_resources_hotplug.py).
    daemon.cli("vm", "start", "ed2")
    daemon.wait_state("ed2", "running")
    p = daemon.cli("vm", "edit", "ed2", "--name", "ed3", check=False)
    assert p.returncode != 0 and "stop it" in p.stderr
    # Two vCPUs: vCPU 1 is a hot-pluggable CPU device (see test_resources_hotplug.py).
    argv = open(os.path.join(daemon.run_dir, "vms", vm["id"], "qemu.argv")).read().split("\n")
    assert argv[argv.index("-smp") + 1] == "1,sockets=1,cores=2,threads=1,maxcpus=2"
    assert argv[argv.index("-m") + 1] == "192"
    daemon.remember_qemu_pids()


def test_clone_copies_a_stopped_vm(tmp_path):
    """vm clone: a stopped VM's copy boots with the source's file, gets new
    MACs, and what it writes stays its own; a running source, a taken name
    (also by a clone racing it) and a linked clone are refused; a clone
    failing midway leaves nothing, its name free again."""
    faults = tmp_path / "faults"
    faults.mkdir()
    d = Daemon(env={"VIREO_FAKE_FAULTS": str(faults)})
    try:
        d.create_and_boot("src", memory="192M")
        d.guest("src", "echo clone-data > /root/mark; sync")
        status, doc = d.request("POST", "/v1/vms/src/clone", {"name": "c1"})
        assert status == 409 and "stop it first" in doc["error"]["message"], doc
        d.cli("vm", "stop", "src")
        d.remember_qemu_pids()
        # src's disk as the guest left it: compared at the end, it proves that
        # neither the clones nor what c1 writes change src (no third boot).
        src_disk = d.api("GET", "/v1/vms/src/disks")["disks"][0]["path"]
        at_stop = str(tmp_path / "src-at-stop.qcow2")
        subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "qcow2", src_disk, at_stop],
                       check=True, capture_output=True, timeout=120)

        status, doc = d.request("POST", "/v1/vms/src/clone", {"name": "src"})
        assert status == 409, doc
        status, doc = d.request("POST", "/v1/vms/src/clone", {"name": "c1", "full": False})
        assert status == 400 and "linked" in doc["error"]["message"], doc

        # A failure after the first disk is made: no VM, no volume left.
        volumes_before = d.api("GET", "/v1/volumes")["volumes"]
        (faults / "vm-clone-disk").write_text("1 EIO\n")
        doc = d.api("POST", "/v1/vms/src/clone", {"name": "c0"}, expect=202)
        task = d.wait_task(doc["task"])
        assert task["state"] == "failed" and "test fault" in task["error"]["message"], task
        assert d.request("GET", "/v1/vms/c0")[0] == 404
        assert d.api("GET", "/v1/volumes")["volumes"] == volumes_before

        # Two clones of one new name at once: one 202, the other 409 at its
        # POST (the first is registered as a VM being made at its request),
        # before anything is copied; then the CLI's clone of that name too.
        results = race(lambda: d.request("POST", "/v1/vms/src/clone", {"name": "c1"}),
                       lambda: d.request("POST", "/v1/vms/src/clone", {"name": "c1"}))
        assert sorted(s for s, _ in results) == [202, 409], results
        lost = next(doc for s, doc in results if s == 409)
        assert "already exists" in lost["error"]["message"], lost
        p = d.cli("vm", "clone", "src", "c1", check=False)
        assert p.returncode != 0 and "already exists" in p.stderr, p.stderr
        won = next(doc for s, doc in results if s == 202)
        assert d.wait_task(won["task"])["state"] == "succeeded"
        out = d.cli("vm", "clone", "src", "c0", "--full").stdout  # its failed clone's name
        assert "c0" in out
        d.cli("vm", "delete", "c0")
        src, c1 = d.vm("src"), d.vm("c1")
        assert c1["state"] == "defined" and c1["id"] != src["id"]
        assert c1["vcpus"] == src["vcpus"] and c1["memory_mib"] == src["memory_mib"]
        assert [n["network"] for n in c1["nics"]] == [n["network"] for n in src["nics"]]
        assert not {n["mac"] for n in c1["nics"]} & {n["mac"] for n in src["nics"]}
        assert all(k["volume"].split("/")[1].startswith("c1-") for k in c1["disks"])

        d.cli("vm", "start", "c1")
        d.wait_console("c1", BOOT_MARKER)
        d.remember_qemu_pids()
        assert "clone-data" in d.guest("c1", "cat /root/mark")
        d.guest("c1", "echo clone-only > /root/own; sync")
        p = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", src_disk,
                            at_stop], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
    finally:
        d.cleanup()


# The tests of web1 come last: a module-scoped VM lives until the module's
# end, so web1 boots only when they start and does not idle through the
# tests above (an idle TCG guest costs make check CPU all the while).
def test_boot_default_image(web1):
    daemon = web1
    vm = daemon.vm("web1")
    assert vm["state"] == "running"
    assert vm["accel_active"] == "tcg"  # PVM /dev/kvm without vmx/svm must not be used
    assert pid_alive(vm["pid"])
    show = daemon.cli("vm", "show", "web1").stdout
    assert "running" in show and "tcg" in show
    listed = daemon.cli_json("vm", "list")
    assert [v["name"] for v in listed["vms"]] == ["web1"]
    # The guest's NIC is on the default network and got its address by DHCP.
    daemon.guest_ip("web1")  # asserts the guest has the leased address on eth0
    # The guest is named after its VM.
    assert daemon.guest("web1", "hostname").strip() == "web1"


def test_console_attach_runs_a_command(web1):
    daemon = web1
    assert "hello-42" in daemon.guest("web1", "echo hello-$((6*7))")
    # The log keeps what the console showed, boot marker included.
    log = wait_until(lambda: (lambda out: out if "hello-42" in out else None)(
        daemon.cli("console", "web1", "--log").stdout), 30, interval=0.2,
        what="hello-42 in the log")
    assert BOOT_MARKER in log
