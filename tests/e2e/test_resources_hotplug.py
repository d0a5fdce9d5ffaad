"""vCPU and memory hot-plug (`vireo vm set VM --vcpus N / --memory SIZE` on
a running VM): real TCG guests see CPUs come and go and MemTotal grow and
shrink without a reboot, the new values survive a restart, a plugged vCPU's
thread joins the vCPUs' cgroup (where the CPU limit is), and changes beyond
the maximums are refused naming them. The control-plane half (validation,
maximums of stopped VMs, task failures) runs on the fake driver."""

from vireo_harness import BOOT_MARKER, inject, qemu_thread_cgroups, wait_until


# -- real guests ---------------------------------------------------------------

def online_cpus(daemon, vm):
    return daemon.guest(vm, "cat /sys/devices/system/cpu/online").strip()


def mem_total_kib(daemon, vm):
    line = daemon.guest(vm, "grep MemTotal /proc/meminfo").strip()
    return int(line.split()[1])


def wait_guest(daemon, vm, probe, want, timeout=60):
    """Polls the guest (bounded) until probe(daemon, vm) satisfies want."""
    seen = []

    def ok():
        seen.append(probe(daemon, vm))
        return want(seen[-1])
    try:
        wait_until(ok, timeout, interval=0.5, what=f"{probe.__name__} on {vm}")
    except Exception as e:
        raise AssertionError(f"{probe.__name__}: last seen {seen[-1:]}") from e
    return seen[-1]


def boot(daemon, name, *create_args):
    daemon.cli("vm", "create", name, *create_args)
    daemon.cli("vm", "start", name)
    daemon.wait_console(name, BOOT_MARKER)
    daemon.remember_qemu_pids()


def test_vcpu_hotplug_and_unplug_change_the_guests_online_cpus(daemon):
    boot(daemon, "cpu", "--memory", "128M", "--vcpus", "1", "--max-vcpus", "2")
    assert online_cpus(daemon, "cpu") == "0"
    vm = daemon.vm("cpu")
    assert (vm["vcpus"], vm["max_vcpus"], vm["vcpus_plugged"]) == (1, 2, 1)

    daemon.cli("vm", "set", "cpu", "--vcpus", "2")
    assert wait_guest(daemon, "cpu", online_cpus, lambda v: v == "0-1") == "0-1"
    vm = daemon.vm("cpu")
    assert (vm["vcpus"], vm["vcpus_plugged"]) == (2, 2)
    # both vCPU threads in the vCPUs' own cgroup (util/cgroup-vcpu.h)
    if daemon.cgroup_dirs():
        threads = qemu_thread_cgroups(vm["pid"])
        vcpus = [where for name, where in threads.values() if name.startswith("CPU ")]
        assert len(vcpus) == 2 and all(w.endswith(f"/{vm['id']}/vcpus") for w in vcpus), threads
    assert "2 (max" not in daemon.cli("vm", "show", "cpu").stdout  # vcpus == max now

    # Beyond the maximum: refused, naming it; nothing changes.
    p = daemon.cli("vm", "set", "cpu", "--vcpus", "3", check=False)
    assert p.returncode != 0 and "at most 2 vCPUs (max_vcpus)" in p.stderr
    assert daemon.vm("cpu")["vcpus_plugged"] == 2

    # Unplug: the guest ejects the CPU; vireo waits for it.
    daemon.cli("vm", "set", "cpu", "--vcpus", "1")
    assert online_cpus(daemon, "cpu") == "0"
    vm = daemon.vm("cpu")
    assert (vm["vcpus"], vm["vcpus_plugged"]) == (1, 1)

    # The maximum changes only while stopped.
    status, doc = daemon.request("PATCH", "/v1/vms/cpu", {"max_vcpus": 1})
    assert status == 409 and "stop it" in doc["error"]["message"]


def test_memory_hot_add_raises_memtotal_and_the_balloon_lowers_it(daemon):
    # 192 MiB at boot: enough free memory for the balloon to take 32 MiB.
    # TCG: its boot memory has 8 KiB more (qemu-argv.c, boot_pad_kib), which
    # no size below counts.
    boot(daemon, "mem", "--memory", "192M", "--max-memory", "384M", "--accel", "tcg")
    boot_total = mem_total_kib(daemon, "mem")
    vm = daemon.vm("mem")
    assert (vm["memory_mib"], vm["max_memory_mib"], vm["memory_actual_mib"]) == (192, 384, 192)

    # Hot-add 128 MiB through virtio-mem. vireo returns once the device
    # reports the blocks plugged; the guest's driver plugs a block before it
    # adds and onlines its memory, so MemTotal follows a moment later (on a
    # busy host, seconds): wait for it.
    daemon.cli("vm", "set", "mem", "--memory", "320M")
    grown = wait_guest(daemon, "mem", mem_total_kib, lambda v: v >= boot_total + 120 * 1024)
    vm = daemon.vm("mem")
    assert (vm["memory_mib"], vm["memory_actual_mib"]) == (320, 320)

    # Back within the hot-plugged part: virtio-mem unplugs some again.
    daemon.cli("vm", "set", "mem", "--memory", "256M")
    wait_guest(daemon, "mem", mem_total_kib, lambda v: v <= grown - 60 * 1024)

    # Below the boot size: the balloon takes it (the guest's MemTotal drops,
    # as its driver hands the pages back without deflate-on-OOM).
    daemon.cli("vm", "set", "mem", "--memory", "160M")
    wait_guest(daemon, "mem", mem_total_kib, lambda v: v <= boot_total - 28 * 1024)
    assert daemon.vm("mem")["memory_actual_mib"] == 160

    # Beyond the maximum: refused with the maximum in the message.
    p = daemon.cli("vm", "set", "mem", "--memory", "512M", check=False)
    assert p.returncode != 0 and "at most 384 MiB (max_memory)" in p.stderr

    # Up again: the balloon deflates and virtio-mem plugs.
    daemon.cli("vm", "set", "mem", "--memory", "320M")
    wait_guest(daemon, "mem", mem_total_kib, lambda v: v >= boot_total + 120 * 1024)
    assert daemon.vm("mem")["memory_actual_mib"] == 320


def test_live_values_survive_a_restart(daemon):
    boot(daemon, "keep", "--memory", "128M", "--max-memory", "256M", "--max-vcpus", "2")
    boot_total = mem_total_kib(daemon, "keep")
    daemon.cli("vm", "set", "keep", "--vcpus", "2", "--memory", "256M")
    daemon.cli("vm", "stop", "keep")
    vm = daemon.vm("keep")
    assert (vm["vcpus"], vm["memory_mib"]) == (2, 256)
    daemon.cli("vm", "start", "keep")
    daemon.wait_console("keep", BOOT_MARKER, count=2)
    daemon.remember_qemu_pids()
    assert online_cpus(daemon, "keep") == "0-1"
    wait_guest(daemon, "keep", mem_total_kib, lambda v: v >= boot_total + 120 * 1024)
    # vCPU 1 is a cold-plugged device now: it can still be unplugged.
    daemon.cli("vm", "set", "keep", "--vcpus", "1")
    assert online_cpus(daemon, "keep") == "0"


def test_vm_without_maximums_refuses_growing(daemon):
    boot(daemon, "fixed", "--memory", "128M")
    p = daemon.cli("vm", "set", "fixed", "--vcpus", "2", check=False)
    assert p.returncode != 0
    assert "at most 1 vCPUs (max_vcpus)" in p.stderr and "--max-vcpus" in p.stderr
    p = daemon.cli("vm", "set", "fixed", "--memory", "256M", check=False)
    assert p.returncode != 0
    assert "at most 128 MiB (max_memory)" in p.stderr and "--max-memory" in p.stderr
    assert online_cpus(daemon, "fixed") == "0"
    assert daemon.vm("fixed")["memory_actual_mib"] == 128


# -- control plane (fake driver) -------------------------------------------------

def error_of(d, method, path, body, status):
    got, doc = d.request(method, path, body)
    assert got == status, (got, doc)
    return doc["error"]["message"]


def test_maximums_at_create_and_on_a_stopped_vm(fake_daemon):
    d = fake_daemon
    cpus = d.api("GET", "/v1/host")["cpus"]
    d.cli("vm", "create", "a", "--memory", "128M")
    vm = d.vm("a")
    assert (vm["max_vcpus"], vm["max_memory_mib"]) == (1, 128)  # no hot-plug by default
    d.cli("vm", "create", "b", "--memory", "128M", "--max-memory", "1G",
          "--max-vcpus", str(cpus))
    vm = d.vm("b")
    assert (vm["max_vcpus"], vm["max_memory_mib"]) == (cpus, 1024)
    assert "max 1 GiB" in d.cli("vm", "show", "b").stdout

    msg = error_of(d, "POST", "/v1/vms", {"name": "c", "vcpus": 1, "max_vcpus": cpus + 1}, 400)
    assert "max_vcpus" in msg and "on this host" in msg
    msg = error_of(d, "POST", "/v1/vms", {"name": "c", "memory_mib": 256, "max_memory_mib": 128},
                   400)
    assert "max_memory" in msg and "256 MiB" in msg
    msg = error_of(d, "POST", "/v1/vms", {"name": "c", "memory_mib": 129, "max_memory_mib": 256},
                   400)
    assert "multiples of 2 MiB" in msg
    assert not any(v["name"] == "c" for v in d.api("GET", "/v1/vms")["vms"])

    # Stopped: the maximums change; a value beyond its maximum takes it along.
    d.cli("vm", "set", "a", "--max-memory", "512M")
    assert d.vm("a")["max_memory_mib"] == 512
    d.api("PATCH", "/v1/vms/a", {"memory_mib": 1024})
    vm = d.vm("a")
    assert (vm["memory_mib"], vm["max_memory_mib"]) == (1024, 1024)
    msg = error_of(d, "PATCH", "/v1/vms/a", {"memory_mib": 512, "max_memory_mib": 256}, 400)
    assert "max_memory" in msg
    p = d.cli("vm", "set", "a", "--max-vcpus", "0", check=False)
    assert p.returncode != 0


def test_live_changes_run_as_tasks_and_are_saved(faults):
    d = faults
    d.cli("vm", "create", "live", "--memory", "128M", "--max-memory", "384M", "--max-vcpus", "2")
    d.cli("vm", "start", "live")
    doc = d.task_ok("PATCH", "/v1/vms/live", {"vcpus": 2, "memory_mib": 256, "autostart": True})
    assert doc["task"]["kind"] == "set-resources"
    vm = d.vm("live")
    assert (vm["vcpus"], vm["memory_mib"], vm["autostart"]) == (2, 256, True)
    assert (vm["vcpus_plugged"], vm["memory_actual_mib"]) == (2, 256)

    # Out of reach: refused at once with the limit named, no task.
    assert "at most 2 vCPUs (max_vcpus)" in error_of(d, "PATCH", "/v1/vms/live", {"vcpus": 3}, 400)
    # A refused request changes nothing, not even what came along with it.
    error_of(d, "PATCH", "/v1/vms/live", {"vcpus": 3, "autostart": False}, 400)
    assert d.vm("live")["autostart"] is True
    assert "at most 384 MiB (max_memory)" in error_of(d, "PATCH", "/v1/vms/live",
                                                      {"memory_mib": 400}, 400)
    assert "multiples of 2 MiB" in error_of(d, "PATCH", "/v1/vms/live", {"memory_mib": 255}, 400)
    assert "stop it" in error_of(d, "PATCH", "/v1/vms/live", {"max_vcpus": 1}, 409)
    assert "stop it" in error_of(d, "PATCH", "/v1/vms/live", {"name": "x", "vcpus": 1}, 409)

    # A driver failure fails the task and leaves the definition as it was.
    inject(d, "set_memory", "EIO")
    p = d.cli("vm", "set", "live", "--memory", "192M", check=False)
    assert p.returncode != 0 and "injected fault" in p.stderr
    assert d.vm("live")["memory_mib"] == 256

    # Paused: refused.
    d.cli("vm", "pause", "live")
    assert "must be running" in error_of(d, "PATCH", "/v1/vms/live", {"vcpus": 1}, 409)
    d.cli("vm", "resume", "live")

    # Saved: a restarted vireod (and the VM's next start) has the new values.
    d.stop()
    d.start()
    vm = d.vm("live")
    assert (vm["vcpus"], vm["memory_mib"], vm["max_vcpus"], vm["max_memory_mib"]) == (2, 256, 2, 384)
