"""System test of an OS install from an ISO on a real TCG guest (BIOS):
vireo's installer ISO (guest/build-installer-iso.sh) is imported as an iso
volume, a blank VM (an empty 1 GiB disk, no kernel) boots it from its SATA
CD-ROM (--boot cdrom,disk), the installer partitions the disk, installs a
system and GRUB and powers off; with the CD ejected the VM boots from its
disk into the installed system. On that running system an ISO made here is
inserted (QMP media change), mounted and read, and ejected again. Also: an
ISO in a VM's drive cannot be deleted (409 naming the VM), and bad input
(an unknown volume, a disk as --cdrom, --content iso on a non-ISO) is a 4xx."""

import os
import shutil
import subprocess

import pytest

from vireo_harness import BOOT_MARKER, BUILD, wait_until

ISO = os.environ.get("VIREO_TEST_ISO",
                     os.path.join(BUILD, "guest", "installer", "installer.iso"))
INSTALLER_DONE = "vireo-installer: done"
INSTALLED_MARKER = "vireo-installed: booted from disk"
# Under TCG on a busy 2-core machine an install takes a few minutes.
INSTALL_TIMEOUT = 900


def make_iso(tmp_path, text):
    """A small ISO 9660 image holding hello.txt with text."""
    src = tmp_path / "iso-src"
    src.mkdir()
    (src / "hello.txt").write_text(text)
    out = tmp_path / "data.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "VIREODATA", "-o", str(out),
                    str(src)], check=True, capture_output=True, timeout=60)
    return out


def tiny_iso(path):
    """A file vireod takes for an ISO 9660 image (the CD001 signature it
    checks), made without xorriso: for tests that never read it."""
    with open(path, "wb") as f:
        f.write(bytes(0x8001) + b"CD001" + bytes(0x10000 - 0x8006))
    return path


def error_of(status_doc):
    status, doc = status_doc
    return status, doc.get("error", {}).get("message", "") if isinstance(doc, dict) else doc


@pytest.mark.skipif(not os.path.exists(ISO) or not shutil.which("xorriso"),
                    reason=f"needs the installer ISO {ISO} (make image) and xorriso")
def test_iso_install_onto_an_empty_disk_then_boot_from_it(daemon, tmp_path):
    # ISO volumes: kept raw, content iso (detected by their signature)
    daemon.cli("volume", "import", "default/installer", ISO)
    vol = daemon.api("GET", "/v1/pools/default/volumes/installer")
    assert vol["content"] == "iso" and vol["format"] == "raw", vol
    assert vol["virtual_size_bytes"] == os.path.getsize(ISO)
    data_iso = make_iso(tmp_path, "hello from the test's ISO\n")
    daemon.cli("volume", "import", "default/data", str(data_iso), "--content", "iso")
    assert daemon.api("GET", "/v1/pools/default/volumes/data")["content"] == "iso"
    listed = {v["key"]: v for v in daemon.api("GET", "/v1/volumes")["volumes"]}
    assert listed["default/data"]["content"] == "iso"

    # bad input: --content iso on a file that is not one; an unknown volume
    # or a disk as the CD; a boot list naming a CD the VM does not have
    not_iso = tmp_path / "not.iso"
    not_iso.write_bytes(b"\0" * 65536)
    status, msg = error_of(daemon.request("POST", "/v1/pools/default/volumes", {
        "name": "bogus", "import_path": str(not_iso), "content": "iso"}))
    assert status == 400 and "not an ISO 9660 image" in msg, msg
    daemon.cli("volume", "create", "default/plain", "--size", "16M")
    for cdrom, want in (("default/nope", "does not exist"), ("default/plain", "not an ISO")):
        status, msg = error_of(daemon.request("POST", "/v1/vms", {
            "name": "bad", "blank": True, "disk_size_bytes": 1 << 30, "cdrom": cdrom}))
        assert status == 400 and want in msg, (cdrom, status, msg)
    status, msg = error_of(daemon.request("POST", "/v1/vms", {
        "name": "bad", "blank": True, "disk_size_bytes": 1 << 30, "boot": ["cdrom", "disk"]}))
    assert status == 400 and "no CD-ROM drive" in msg, msg
    status, msg = error_of(daemon.request("POST", "/v1/vms", {"name": "bad", "blank": True}))
    assert status == 400 and "disk_size_bytes" in msg, msg
    assert daemon.request("GET", "/v1/vms/bad")[0] == 404

    # a blank VM: an empty 1 GiB disk, no kernel, the installer in its drive
    daemon.cli("vm", "create", "inst", "--blank", "--disk-size", "1G", "--memory", "512M",
               "--cdrom", "default/installer", "--boot", "cdrom,disk")
    vm = daemon.vm("inst")
    assert vm["cdrom"] == {"volume": "default/installer"}, vm
    assert vm["boot"] == ["cdrom", "disk"]
    assert vm.get("kernel") is None
    disk = daemon.api("GET", "/v1/pools/default/volumes/" + vm["disks"][0]["volume"].split("/")[1])
    assert disk["virtual_size_bytes"] == 1 << 30

    # install: the firmware boots the CD, the installer powers off when done
    daemon.cli("vm", "start", "inst")
    daemon.qemu_pids.add(daemon.vm("inst")["pid"])
    daemon.wait_console("inst", INSTALLER_DONE, timeout=INSTALL_TIMEOUT)
    daemon.wait_state("inst", "stopped", timeout=120)
    assert "FAILED" not in daemon.console_log("inst")

    # the ISO in the drive cannot be deleted
    status, msg = error_of(daemon.request("DELETE", "/v1/pools/default/volumes/installer"))
    assert status == 409 and "'inst'" in msg, (status, msg)

    # eject, start: GRUB on the disk boots the installed system
    daemon.cli("vm", "cdrom", "eject", "inst")
    assert daemon.vm("inst")["cdrom"] == {}
    daemon.task_ok("DELETE", "/v1/pools/default/volumes/installer")
    daemon.cli("vm", "start", "inst")
    daemon.qemu_pids.add(daemon.vm("inst")["pid"])
    daemon.wait_console("inst", INSTALLED_MARKER, timeout=INSTALL_TIMEOUT)
    daemon.wait_console("inst", BOOT_MARKER, timeout=300)
    assert daemon.console_log("inst").count(INSTALLER_DONE) == 1  # not the CD again

    # media change on the running VM: the guest mounts the new CD and reads it
    daemon.cli("vm", "cdrom", "insert", "inst", "default/data")
    assert daemon.vm("inst")["cdrom"] == {"volume": "default/data"}
    out = daemon.guest("inst", "mkdir -p /mnt/cd; i=0; until mount -t iso9660 -o ro /dev/sr0 "
                       "/mnt/cd 2>/dev/null || [ $i -ge 100 ]; do i=$((i+1)); sleep 0.3; done; "
                       "cat /mnt/cd/hello.txt; umount /mnt/cd", timeout=180)
    assert "hello from the test's ISO" in out, out
    status, msg = error_of(daemon.request("DELETE", "/v1/pools/default/volumes/data"))
    assert status == 409 and "'inst'" in msg, (status, msg)

    # eject on the running VM: the guest finds no medium
    daemon.cli("vm", "cdrom", "eject", "inst")
    out = daemon.guest("inst", "mount -t iso9660 -o ro /dev/sr0 /mnt/cd 2>&1 && echo MOUNTED "
                       "|| echo NOMEDIUM", timeout=120)
    assert "NOMEDIUM" in out and "MOUNTED" not in out.replace("NOMEDIUM", ""), out
    daemon.task_ok("DELETE", "/v1/pools/default/volumes/data")
    assert daemon.vm("inst")["state"] == "running"
    daemon.cli("vm", "stop", "inst", "--force")


def test_cdrom_rules_on_the_fake_driver(fake_daemon, tmp_path):
    """The definition side on the fake driver: a stopped VM gets a drive at
    insert, a running VM without one refuses (409), an unknown VM 404."""
    d = fake_daemon
    if not shutil.which("xorriso"):
        pytest.skip("needs xorriso")
    d.cli("volume", "import", "default/data", str(make_iso(tmp_path, "x\n")))
    d.cli("vm", "create", "plain")
    assert "cdrom" not in d.vm("plain")
    d.cli("vm", "start", "plain")
    d.wait_state("plain", "running")
    status, msg = error_of(d.request("POST", "/v1/vms/plain/cdrom", {"volume": "default/data"}))
    assert status == 409 and "no CD-ROM drive" in msg, (status, msg)
    d.cli("vm", "stop", "plain", "--force")
    d.cli("vm", "cdrom", "insert", "plain", "default/data")
    assert d.vm("plain")["cdrom"] == {"volume": "default/data"}
    status, msg = error_of(d.request("POST", "/v1/vms/plain/cdrom", {"volume": "default/nope"}))
    assert status == 404 and "does not exist" in msg, (status, msg)
    status, _ = d.request("POST", "/v1/vms/nope/cdrom", {"volume": "default/data"})
    assert status == 404
    status, msg = error_of(d.request("POST", "/v1/vms/plain/cdrom", {"volume": 3}))
    assert status == 400, (status, msg)
    # the drive survives a start (media change allowed) and an eject keeps it
    d.cli("vm", "start", "plain")
    d.wait_state("plain", "running")
    d.cli("vm", "cdrom", "eject", "plain")
    assert d.vm("plain")["cdrom"] == {}
    assert "(empty)" in d.cli("vm", "show", "plain").stdout
    d.cli("vm", "cdrom", "insert", "plain", "default/data")
    assert d.vm("plain")["cdrom"] == {"volume": "default/data"}


def qemu_bootindex(daemon, vm, device_id):
    """The bootindex QEMU was given for device device_id (None: none)."""
    import json as _json
    pid = daemon.vm(vm)["pid"]
    daemon.qemu_pids.add(pid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        args = f.read().decode().split("\0")
    for i, a in enumerate(args[:-1]):
        if a == "-device" and args[i + 1].startswith("{"):
            dev = _json.loads(args[i + 1])
            if dev.get("id") == device_id:
                return dev.get("bootindex")
    raise AssertionError(f"no device {device_id} in {args}")


@pytest.mark.skipif(not shutil.which("xorriso"), reason="needs xorriso")
def test_boot_once_from_the_cdrom(daemon, tmp_path):
    """--boot-once cdrom puts the CD first for that run only (QEMU's
    bootindex properties); the next start has the VM's own order again."""
    daemon.cli("volume", "import", "default/data", str(make_iso(tmp_path, "x\n")))
    daemon.cli("vm", "create", "once", "--blank", "--disk-size", "64M", "--memory", "128M",
               "--cdrom", "default/data")
    assert daemon.vm("once").get("boot") is None  # default: disk, then the CD
    shown = daemon.cli("vm", "show", "once").stdout
    assert "default/data" in shown, shown
    daemon.cli("vm", "start", "once", "--boot-once", "cdrom")
    daemon.wait_state("once", "running")
    assert qemu_bootindex(daemon, "once", "cdrom0") == 1
    assert qemu_bootindex(daemon, "once", "virtio-disk0") == 65
    daemon.cli("vm", "stop", "once", "--force")
    assert daemon.vm("once").get("boot") is None
    daemon.cli("vm", "start", "once")
    daemon.wait_state("once", "running")
    assert qemu_bootindex(daemon, "once", "virtio-disk0") == 1
    assert qemu_bootindex(daemon, "once", "cdrom0") == 65
    # The order set after create (vm set --boot, PATCH "boot"): the running
    # VM keeps its order, its next start has the new one.
    out = daemon.cli("vm", "set", "once", "--boot", "cdrom,disk").stdout
    assert "takes effect at its next start" in out, out
    assert daemon.vm("once")["boot"] == ["cdrom", "disk"]
    assert qemu_bootindex(daemon, "once", "cdrom0") == 65
    daemon.cli("vm", "stop", "once", "--force")
    daemon.cli("vm", "start", "once")
    daemon.wait_state("once", "running")
    assert qemu_bootindex(daemon, "once", "cdrom0") == 1
    assert qemu_bootindex(daemon, "once", "virtio-disk0") == 65
    daemon.cli("vm", "stop", "once", "--force")
    assert daemon.cli("vm", "set", "once", "--boot", "default").stdout == "once: updated\n"
    assert daemon.vm("once").get("boot") is None
    # bad input, checked as create's: nothing changes
    for boot, want in ((["floppy"], "boot[0]"), (["disk", "disk"], "listed twice"), ([], "boot")):
        status, msg = error_of(daemon.request("PATCH", "/v1/vms/once", {"boot": boot}))
        assert status == 400 and want in msg, (boot, status, msg)
    assert daemon.vm("once").get("boot") is None
    # bad input: an unknown device; a CD-ROM boot for a VM without a drive
    status, msg = error_of(daemon.request("POST", "/v1/vms/once/start", {"boot_once": "floppy"}))
    assert status == 400 and "boot_once" in msg, msg
    daemon.cli("vm", "create", "nocd", "--blank", "--disk-size", "64M")
    status, msg = error_of(daemon.request("POST", "/v1/vms/nocd/start", {"boot_once": "cdrom"}))
    assert status == 400 and "no CD-ROM drive" in msg, msg
    status, msg = error_of(daemon.request("PATCH", "/v1/vms/nocd", {"boot": ["cdrom", "disk"]}))
    assert status == 400 and "no CD-ROM drive" in msg, msg
    assert daemon.vm("nocd").get("boot") is None
    assert daemon.vm("nocd")["state"] != "running"
