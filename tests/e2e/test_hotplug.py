"""System tests of disk and NIC hot-plug on real TCG guests: a disk and a NIC
added to a running VM appear in the guest (/sys/block, /sys/class/net)
without a reboot and go again when removed; the VM's definition follows each
step and survives a stop/start and a vireod killed with SIGKILL. The rules
around it (boot disk, maximum, free slot reuse, injected faults, a failed
plug whose definition cannot be saved again without the disk) run on the
fake driver."""

from vireo_harness import BOOT_MARKER, fake_daemon_with_faults, inject, wait_until

MiB = 1 << 20


def guest_lines(daemon, vm, command):
    return daemon.guest(vm, command).split()


def block_devices(daemon, vm):
    return sorted(guest_lines(daemon, vm, "ls /sys/block | grep '^vd'"))


def interfaces(daemon, vm):
    return sorted(guest_lines(daemon, vm, "ls /sys/class/net | grep '^eth'"))


def wait_guest(daemon, vm, fn, want, what):
    """The guest notices a hot-plug asynchronously: poll until fn() == want."""
    return wait_until(lambda: fn(daemon, vm) == want, 60, interval=0.5, what=what)


def slots(daemon, vm, part):
    return [d["slot"] for d in daemon.vm(vm)[part]]


def test_disk_hot_add_and_remove_on_a_running_vm(daemon):
    daemon.create_and_boot("hp", memory="128M")
    assert block_devices(daemon, "hp") == ["vda"]

    # add: a new 64 MiB disk shows up in the guest as vdb, at once
    p = daemon.cli("vm", "disk", "add", "hp", "--size", "64M")
    assert "disk 1 added" in p.stdout, p.stdout
    assert daemon.vm("hp")["state"] == "running"
    wait_guest(daemon, "hp", block_devices, ["vda", "vdb"], "vdb in the guest")
    sectors = int(daemon.guest("hp", "cat /sys/block/vdb/size").strip())
    assert sectors * 512 == 64 * MiB
    assert slots(daemon, "hp", "disks") == [0, 1]
    volume = daemon.vm("hp")["disks"][1]["volume"]

    # it holds data: a file system written and read back
    out = daemon.guest("hp", "mke2fs /dev/vdb >/dev/null 2>&1 && mkdir -p /mnt/d && mount /dev/vdb /mnt/d"
                             " && echo hot-data > /mnt/d/f && sync && umount /mnt/d"
                             " && mount /dev/vdb /mnt/d && cat /mnt/d/f && umount /mnt/d",
                       timeout=120)
    assert "hot-data" in out, out

    # stop/start: the disk is still there, in the same slot
    daemon.cli("vm", "stop", "hp")
    daemon.cli("vm", "start", "hp")
    daemon.wait_console("hp", BOOT_MARKER, count=2)
    daemon.qemu_pids.add(daemon.vm("hp")["pid"])
    assert slots(daemon, "hp", "disks") == [0, 1]
    assert block_devices(daemon, "hp") == ["vda", "vdb"]
    out = daemon.guest("hp", "mount /dev/vdb /mnt/d && cat /mnt/d/f && umount /mnt/d")
    assert "hot-data" in out, out

    # remove: the guest lets go, the disk is gone; the volume stays in its pool
    daemon.cli("vm", "disk", "remove", "hp", "1")
    wait_guest(daemon, "hp", block_devices, ["vda"], "vdb to leave the guest")
    assert slots(daemon, "hp", "disks") == [0]
    pool, name = volume.split("/")
    assert daemon.api("GET", f"/v1/pools/{pool}/volumes/{name}")["attached_to"] is None

    # the boot disk is refused, by the API and the CLI, with a clear message
    status, doc = daemon.request("DELETE", "/v1/vms/hp/disks/0")
    assert status == 400 and "boot disk" in doc["error"]["message"], doc
    p = daemon.cli("vm", "disk", "remove", "hp", "0", check=False)
    assert p.returncode != 0 and "boot disk" in p.stderr, p.stderr

    # the existing volume again: it reuses the free slot 1
    daemon.cli("vm", "disk", "add", "hp", volume)
    wait_guest(daemon, "hp", block_devices, ["vda", "vdb"], "vdb back in the guest")
    assert slots(daemon, "hp", "disks") == [0, 1]
    out = daemon.guest("hp", "mount /dev/vdb /mnt/d && cat /mnt/d/f && umount /mnt/d")
    assert "hot-data" in out, out


def test_nic_hot_add_gets_a_lease_and_remove_takes_it_away(daemon):
    daemon.create_and_boot("hn", memory="128M")
    assert interfaces(daemon, "hn") == ["eth0"]
    vm_id = daemon.vm("hn")["id"]

    p = daemon.cli("vm", "nic", "add", "hn", "--network", "default")
    assert "added" in p.stdout, p.stdout
    wait_guest(daemon, "hn", interfaces, ["eth0", "eth1"], "eth1 in the guest")
    nics = daemon.vm("hn")["nics"]
    assert [n["slot"] for n in nics] == [0, 1]
    mac = nics[1]["mac"]
    assert daemon.guest("hn", "cat /sys/class/net/eth1/address").strip() == mac
    # the tap is named after the slot and sits on the network's bridge
    tap = f"vt{vm_id[:8]}n1"
    assert daemon.api("GET", "/v1/vms/hn/nics")["nics"][1]["tap"] == tap
    assert daemon.ns("ip", "link", "show", tap).returncode == 0
    # DHCP on the new interface: dnsmasq leases it an address
    daemon.guest("hn", "ip link set eth1 up; udhcpc -i eth1 -n -q -t 10 -T 1 -s /etc/udhcpc.script"
                       " >/dev/null 2>&1; echo done", timeout=90)
    ip = daemon.nic_ip("hn", index=1)
    assert ip in daemon.guest("hn", "ip -4 addr show eth1")
    assert daemon.ns("busybox", "ping", "-c", "2", "-W", "2", ip, check=False).returncode == 0

    daemon.cli("vm", "nic", "remove", "hn", "1")
    wait_guest(daemon, "hn", interfaces, ["eth0"], "eth1 to leave the guest")
    assert slots(daemon, "hn", "nics") == [0]
    # QEMU closed the tap: the host interface is gone
    wait_until(lambda: daemon.ns("ip", "link", "show", tap, check=False).returncode != 0, 10,
               what=f"tap {tap} to go")


def test_hot_plugged_devices_survive_a_vireod_sigkill(daemon):
    daemon.create_and_boot("hk", memory="128M")
    daemon.cli("vm", "disk", "add", "hk", "--size", "16M")
    daemon.cli("vm", "nic", "add", "hk", "--network", "user")
    wait_guest(daemon, "hk", block_devices, ["vda", "vdb"], "vdb in the guest")
    wait_guest(daemon, "hk", interfaces, ["eth0", "eth1"], "eth1 in the guest")
    pid = daemon.vm("hk")["pid"]

    daemon.kill9()
    daemon.start()
    daemon.wait_state("hk", "running")
    vm = daemon.vm("hk")
    assert vm["pid"] == pid  # re-attached, not restarted
    assert [d["slot"] for d in vm["disks"]] == [0, 1]
    assert [(n["slot"], n["network"]) for n in vm["nics"]] == [(0, "default"), (1, "user")]
    assert block_devices(daemon, "hk") == ["vda", "vdb"]

    # the re-attached vireod unplugs by the same names
    daemon.cli("vm", "disk", "remove", "hk", "1")
    daemon.cli("vm", "nic", "remove", "hk", "1")
    wait_guest(daemon, "hk", block_devices, ["vda"], "vdb to leave the guest")
    wait_guest(daemon, "hk", interfaces, ["eth0"], "eth1 to leave the guest")
    assert slots(daemon, "hk", "disks") == [0] and slots(daemon, "hk", "nics") == [0]
    assert daemon.vm("hk")["pid"] == pid


# ---- the rules, on the fake driver ------------------------------------------


def test_maximum_free_slot_reuse_and_faults(faults):
    d = faults
    d.cli("vm", "create", "fv")
    d.cli("vm", "start", "fv")
    for _ in range(15):
        d.cli("vm", "disk", "add", "fv", "--size", "1M")
    assert slots(d, "fv", "disks") == list(range(16))
    # beyond the maximum: refused, the maximum named
    status, doc = d.request("POST", "/v1/vms/fv/disks", {"size_bytes": MiB})
    assert status == 400 and "16" in doc["error"]["message"], doc
    p = d.cli("vm", "disk", "add", "fv", "--size", "1M", check=False)
    assert p.returncode != 0 and "most it can have is 16" in p.stderr, p.stderr

    # a removed slot is the next one used
    d.cli("vm", "disk", "remove", "fv", "5")
    d.cli("vm", "disk", "add", "fv", "--size", "1M")
    assert slots(d, "fv", "disks")[-1] == 5

    # a guest that does not let go: the task fails, the disk stays
    before = d.vm("fv")["disks"]
    inject(d, "disk_detach", "ETIMEDOUT")
    p = d.cli("vm", "disk", "remove", "fv", "3", check=False)
    assert p.returncode != 0 and "did not release" in p.stderr, p.stderr
    assert d.vm("fv")["disks"] == before

    # QEMU refusing a hot-add: nothing changes, the new volume is not kept
    volumes = {v["key"] for v in d.api("GET", "/v1/volumes")["volumes"]}
    d.cli("vm", "disk", "remove", "fv", "15")
    before = d.vm("fv")["disks"]
    inject(d, "disk_attach", "EIO")
    p = d.cli("vm", "disk", "add", "fv", "--size", "1M", check=False)
    assert p.returncode != 0 and "injected fault" in p.stderr, p.stderr
    assert d.vm("fv")["disks"] == before
    after = {v["key"] for v in d.api("GET", "/v1/volumes")["volumes"]}
    assert after == volumes

    # NICs: a fault leaves the definition alone; then the maximum of 8
    inject(d, "nic_attach", "EIO")
    p = d.cli("vm", "nic", "add", "fv", "--network", "user", check=False)
    assert p.returncode != 0 and "injected fault" in p.stderr, p.stderr
    assert slots(d, "fv", "nics") == [0]
    for _ in range(7):
        d.cli("vm", "nic", "add", "fv", "--network", "user")
    p = d.cli("vm", "nic", "add", "fv", "--network", "user", check=False)
    assert p.returncode != 0 and "most it can have is 8" in p.stderr, p.stderr

    # paused: refused until resumed
    d.cli("vm", "pause", "fv")
    p = d.cli("vm", "nic", "remove", "fv", "1", check=False)
    assert p.returncode != 0 and "paused" in p.stderr, p.stderr


def test_a_failed_plug_whose_undo_is_not_saved_keeps_the_disk(tmp_path):
    """A disk added to a running VM is saved in its definition before the
    plug; a plug that fails when the store then refuses the definition
    without the disk: the disk stays in it, and so do its new volume and the
    room its project counts for it; the task says so (before, it named the
    plug's failure only and gave the room back)."""
    d, faults, store_faults = fake_daemon_with_faults(tmp_path)
    try:
        d.cli("vm", "create", "fu")
        d.cli("vm", "start", "fu")
        vm_id = d.vm("fu")["id"]
        used = d.api("GET", "/v1/projects/default")["usage"]["disk_bytes"]
        (faults / "disk_attach.hold").touch()
        status, doc = d.request("POST", "/v1/vms/fu/disks", {"size_bytes": MiB})
        assert status == 202, doc
        wait_until(lambda: (faults / "disk_attach.held").exists(), 60, what="the plug held")
        (faults / "disk_attach").write_text("EIO\n")  # the plug fails once let go
        (store_faults / f"put@vms+{vm_id}").write_text("EIO\n")  # and the undo's save
        (faults / "disk_attach.hold").unlink()
        (faults / "disk_attach.held").unlink()
        task = d.wait_task(doc["task"])
        assert task["state"] == "failed", task
        assert "stays in its definition" in task["error"]["message"], task
        disks = d.vm("fu")["disks"]
        assert len(disks) == 2, disks
        assert disks[1]["volume"] in {v["key"] for v in d.api("GET", "/v1/volumes")["volumes"]}
        assert d.api("GET", "/v1/projects/default")["usage"]["disk_bytes"] == used + MiB
    finally:
        d.cleanup()
