"""System test of QEMU's least privilege and per-VM cgroups on one booted TCG
guest (docs/security.md): its QEMU runs as the unprivileged vireo-qemu user
(--qemu-uid-range off: the user itself, as all VMs' QEMUs) in its seccomp sandbox, in a cgroup of its own whose memory limit is the
guest's memory plus the documented overhead, whose CPU weight and limit
`vireo vm set` changes live (also after a vireod restart, which finds the
cgroup again); the limit is on the vCPU threads' child cgroup alone, QEMU's
other threads are not capped (also for a QEMU whose vCPU threads shared its
cgroup, as an older vireod left them: they move at the change, asked from
QEMU without the VM's locks); a hot-plugged disk and a memory snapshot still
work though QEMU can no longer open files itself, and the removed disk's file
is no longer open in QEMU; the cgroup goes with the VM's stop."""

import os
import pwd
import signal
import threading

import pytest

from vireo_harness import Daemon, open_files, qemu_thread_cgroups, stop_process, wait_until

MiB = 1 << 20
GUEST_MIB = 128
# qemu-cgroup.h: guest + 256 MiB + guest/16 + 1 GiB under TCG
LIMIT = (GUEST_MIB + 256 + GUEST_MIB // 16 + 1024) * MiB


@pytest.fixture(scope="module")
def booted():
    d = Daemon(args=["--qemu-uid-range", "off"])  # the shared user (test_qemu_uids.py: per VM)
    try:
        d.create_and_boot("conf", memory=f"{GUEST_MIB}M")
        yield d
    finally:
        d.cleanup()


def status_fields(pid):
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def own_cgroups(pid):
    """{controller: path} of /proc/PID/cgroup ("" for v2's unified line)."""
    with open(f"/proc/{pid}/cgroup") as f:
        rows = [line.rstrip("\n").split(":", 2) for line in f]
    out = {}
    for _, controllers, path in rows:
        for c in controllers.split(",") if controllers else [""]:
            out[c] = path
    return out


def cgroup_file(daemon, vm_id, name):
    """The file `name` of the VM's cgroup, in whichever of its hierarchies
    has it (v1: the controller's; v2: the one)."""
    for top in daemon.cgroup_dirs():
        path = os.path.join(top, vm_id, name)
        if os.path.exists(path):
            with open(path) as f:
                return f.read().strip()
    raise AssertionError(f"no {name} in the cgroup of {vm_id} under {daemon.cgroup_dirs()}")


def test_qemu_runs_unprivileged_in_its_sandbox(booted):
    vm = booted.vm("conf")
    user = pwd.getpwnam("vireo-qemu")
    st = status_fields(vm["pid"])
    assert st["Uid"].split() == [str(user.pw_uid)] * 4, st["Uid"]
    assert st["Gid"].split() == [str(user.pw_gid)] * 4, st["Gid"]
    assert st["Seccomp"] == "2", st["Seccomp"]
    assert int(st["CapEff"], 16) == 0 and st["NoNewPrivs"] == "1", st
    with open(f"/proc/{vm['pid']}/cmdline") as f:
        argv = f.read().split("\0")
    assert argv[argv.index("-run-with") + 1] == "user=vireo-qemu"
    assert argv[argv.index("-sandbox") + 1].startswith("on,obsolete=deny,")
    # its run dir: root's, shared with QEMU's group, sticky (no QEMU can
    # rename or replace what root made there: the QMP socket, the pidfile)
    st = os.stat(os.path.join(booted.run_dir, "vms", vm["id"]))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, user.pw_gid, 0o1770), st
    assert os.stat(os.path.join(booted.run_dir, "vms", vm["id"], "qmp.sock")).st_uid == 0


def test_qemu_has_its_own_cgroup_with_limits(booted):
    vm = booted.vm("conf")
    host_id = open(os.path.join(booted.state_dir, "host-id")).read().strip()
    groups = own_cgroups(vm["pid"])
    want = f"/vireo/{host_id}/{vm['id']}"
    # v1 (this host: hybrid) in the memory and cpu hierarchies, or v2's one
    v2 = groups.get("memory") is None
    assert (groups[""] if v2 else groups["memory"]) == want, groups
    if v2:
        assert cgroup_file(booted, vm["id"], "memory.max") == str(LIMIT)
    else:
        assert groups["cpu"] == want, groups
        assert cgroup_file(booted, vm["id"], "memory.limit_in_bytes") == str(LIMIT)
    # vireod is not in it (a service manager stopping vireod leaves VMs be)
    assert own_cgroups(booted.proc.pid).get("memory" if not v2 else "") != want

    # the vCPU threads have a child cgroup of their own, the others not
    assert_vcpus_in_child(vm["pid"], want)

    # CPU weight and limit, live, from the CLI; bad values refused. The
    # quota is the vCPUs' alone: the parent (main loop, migration, I/O) has none
    booted.cli("vm", "set", "conf", "--cpu-weight", "200", "--cpu-limit", "0.5")
    assert_cpu_limit(booted, vm["id"], v2, "50000")
    if v2:
        assert cgroup_file(booted, vm["id"], "cpu.weight") == "200"
    else:
        assert cgroup_file(booted, vm["id"], "cpu.shares") == "2048"
    doc = booted.vm("conf")
    assert doc["cpu_weight"] == 200 and doc["cpu_limit"] == 0.5, doc
    p = booted.cli("vm", "set", "conf", "--cpu-weight", "20000", check=False)
    assert p.returncode != 0 and "--cpu-weight" in p.stderr, p.stderr
    status, err = booted.request("PATCH", "/v1/vms/conf", {"cpu_limit": 0.001})
    assert status == 400 and "cpu_limit" in err["error"]["message"], err
    status, err = booted.request("PATCH", "/v1/vms/conf", {"cpu_weight": "x"})
    assert status == 400 and "cpu_weight" in err["error"]["message"], err

    # a restarted vireod finds the cgroup again: the next change applies
    booted.stop()
    booted.start()
    booted.cli("vm", "set", "conf", "--cpu-weight", "0", "--cpu-limit", "0")
    assert_cpu_limit(booted, vm["id"], v2, None)
    if not v2:
        assert cgroup_file(booted, vm["id"], "cpu.shares") == "1024"
    assert own_cgroups(booted.vm("conf")["pid"]) == groups

    # a QEMU whose vCPU threads share its cgroup and its quota (started by
    # an older vireod, limited to 0.2): a limit set now moves them into
    # their child, with the quota
    parent = next(t for t in booted.cgroup_dirs() if os.path.isdir(os.path.join(t, vm["id"], "vcpus")))
    parent = os.path.join(parent, vm["id"])
    for tid in qemu_thread_cgroups(vm["pid"]):
        with open(os.path.join(parent, "cgroup.threads" if v2 else "tasks"), "w") as f:
            f.write(str(tid))
    os.rmdir(os.path.join(parent, "vcpus"))
    with open(os.path.join(parent, "cpu.max" if v2 else "cpu.cfs_quota_us"), "w") as f:
        f.write("20000 100000" if v2 else "20000")
    # ...asking QEMU for its vCPU threads without the VM's locks: with QEMU
    # stopped, the saved limit reads at once, and the threads move once it
    # answers (were the locks held, the read would wait for the question's
    # timeout, and the move fail)
    result = []
    setter = threading.Thread(target=lambda: result.append(set_cpu_limit(booted, "0.3")))
    stop_process(vm["pid"])  # every thread: QEMU must not answer
    try:
        setter.start()
        wait_until(lambda: booted.vm("conf").get("cpu_limit") == 0.3, 60, what="cpu_limit 0.3 saved")
    finally:
        os.kill(vm["pid"], signal.SIGCONT)
        setter.join()
    assert result and result[0].returncode == 0, result
    assert_vcpus_in_child(vm["pid"], want)
    assert_cpu_limit(booted, vm["id"], v2, "30000")
    booted.cli("vm", "set", "conf", "--cpu-limit", "0")


def set_cpu_limit(daemon, cores):
    """vireo vm set conf --cpu-limit, again while the VM is busy (a sampler
    asking its stopped QEMU holds it)."""
    while True:
        p = daemon.cli("vm", "set", "conf", "--cpu-limit", cores, check=False)
        if p.returncode == 0 or "busy" not in p.stderr:
            return p


def assert_vcpus_in_child(pid, vm_cgroup):
    threads = qemu_thread_cgroups(pid)
    vcpus = {tid: where for tid, (name, where) in threads.items() if name.startswith("CPU ")}
    others = {tid: where for tid, (name, where) in threads.items() if not name.startswith("CPU ")}
    assert vcpus and set(vcpus.values()) == {vm_cgroup + "/vcpus"}, threads
    assert pid in others and set(others.values()) == {vm_cgroup}, threads


def assert_cpu_limit(daemon, vm_id, v2, quota):
    """The quota (us per 100 ms; None: none) on the vCPUs' child, none on the parent."""
    if v2:
        assert cgroup_file(daemon, vm_id, "cpu.max") == "max 100000"
        assert cgroup_file(daemon, vm_id, "vcpus/cpu.max") == f"{quota or 'max'} 100000"
    else:
        assert cgroup_file(daemon, vm_id, "cpu.cfs_quota_us") == "-1"
        assert cgroup_file(daemon, vm_id, "vcpus/cpu.cfs_quota_us") == (quota or "-1")


def test_hot_plug_and_snapshot_work_confined(booted):
    booted.cli("vm", "disk", "add", "conf", "--size", "16M")
    wait_until(lambda: "vdb" in booted.guest("conf", "ls /sys/block"), 60, interval=0.5,
               what="vdb in the guest")
    out = booted.guest("conf", "echo confined > /tmp/x && dd if=/tmp/x of=/dev/vdb conv=fsync"
                               " 2>/dev/null && head -c 8 /dev/vdb")
    assert "confined" in out, out
    # its removal closes every fd of its file in QEMU (the fdset's too)
    pid = booted.vm("conf")["pid"]
    with_disk = open_files(pid, booted.tmp)
    booted.cli("vm", "disk", "remove", "conf", "1")
    wait_until(lambda: "vdb" not in booted.guest("conf", "ls /sys/block"), 60, interval=0.5,
               what="vdb to leave the guest")
    wait_until(lambda: len(with_disk - open_files(pid, booted.tmp)) == 1, 10, interval=0.2,
               what=f"QEMU to close the removed disk's file (open: {with_disk})")
    booted.task_ok("POST", "/v1/vms/conf/snapshots", {"name": "s1", "memory": True})
    booted.task_ok("POST", "/v1/vms/conf/snapshots/s1/revert", {"force": True})
    assert booted.vm("conf")["state"] == "running"
    vm = booted.vm("conf")
    # the stop takes the cgroup away
    booted.cli("vm", "stop", "conf", "--force")
    wait_until(lambda: not any(os.path.isdir(os.path.join(t, vm["id"]))
                               for t in booted.cgroup_dirs()), 10, what="the cgroup to go")
