"""System tests of UEFI firmware (OVMF) with a per-VM NVRAM volume: a UEFI
VM installs vireo's installer ISO onto an empty disk (the installer adds an
EFI system partition and an NVRAM boot entry with efibootmgr), powers off,
boots from its disk through that NVRAM entry, which is still in the NVRAM
volume after a forced stop; a memory snapshot of the running UEFI VM works
(the NVRAM is a qcow2 volume, so savevm includes it). Also: the definition
rules (bad input 4xx with nothing made, the NVRAM volume made at create and
by vm set, deleted with the VM)."""

import os
import shutil
import subprocess

import pytest

from vireo_harness import BUILD

ISO = os.environ.get("VIREO_TEST_ISO",
                     os.path.join(BUILD, "guest", "installer", "installer.iso"))
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS_SIZE = 540672  # OVMF_VARS_4M.fd
INSTALLER_DONE = "vireo-installer: done"
INSTALLED_MARKER = "vireo-installed: booted from disk"
INSTALL_TIMEOUT = 900
# The EFI global-variable GUID: BootCurrent, BootOrder and BootNNNN live there.
EFI_GLOBAL = "8be4df61-93ca-11d2-aa0d-00e098032b8c"

needs_ovmf = pytest.mark.skipif(not os.path.exists(OVMF_CODE),
                                reason="needs OVMF (apt-get install ovmf)")


def error_of(status_doc):
    status, doc = status_doc
    return status, doc.get("error", {}).get("message", "") if isinstance(doc, dict) else doc


def volume_names(daemon):
    return {v["key"] for v in daemon.api("GET", "/v1/volumes")["volumes"]}


@needs_ovmf
def test_uefi_definition_rules(daemon):
    before = volume_names(daemon)
    # bad input: secure boot without UEFI, an unknown firmware; nothing made
    for body, want in (({"secure_boot": True}, "needs firmware uefi"),
                       ({"firmware": "efi"}, "firmware"),
                       ({"firmware": "bios", "secure_boot": True}, "needs firmware uefi"),
                       ({"firmware": "uefi", "secure_boot": "yes"}, "secure_boot")):
        status, msg = error_of(daemon.request("POST", "/v1/vms", dict(
            {"name": "bad", "blank": True, "disk_size_bytes": 64 << 20}, **body)))
        assert status == 400 and want in msg, (body, status, msg)
    assert daemon.request("GET", "/v1/vms/bad")[0] == 404
    assert volume_names(daemon) == before
    out = daemon.cli("vm", "create", "bad", "--blank", "--disk-size", "64M", "--secure-boot",
                     check=False)
    assert out.returncode != 0 and "needs firmware uefi" in out.stderr, out

    # a UEFI VM: its NVRAM is a qcow2 volume beside its disk, of OVMF's size
    daemon.cli("vm", "create", "fw", "--blank", "--disk-size", "64M", "--firmware", "uefi")
    vm = daemon.vm("fw")
    assert vm["firmware"] == "uefi" and vm["nvram"] == "default/fw-nvram", vm
    nv = daemon.api("GET", "/v1/pools/default/volumes/fw-nvram")
    assert nv["format"] == "qcow2" and nv["virtual_size_bytes"] == OVMF_VARS_SIZE, nv
    shown = daemon.cli("vm", "show", "fw").stdout
    assert "uefi" in shown and "default/fw-nvram" in shown, shown
    # the NVRAM is in use: it cannot be deleted under the VM
    status, msg = error_of(daemon.request("DELETE", "/v1/pools/default/volumes/fw-nvram"))
    assert status == 409 and "'fw'" in msg, (status, msg)
    # a stopped VM switches: to bios (the NVRAM goes), secure boot refused on
    # bios (nothing changes), back to uefi with secure boot (a new NVRAM)
    daemon.cli("vm", "set", "fw", "--firmware", "bios")
    vm = daemon.vm("fw")
    assert vm.get("firmware", "bios") == "bios" and "nvram" not in vm, vm
    assert "default/fw-nvram" not in volume_names(daemon)
    status, msg = error_of(daemon.request("PATCH", "/v1/vms/fw", {"secure_boot": True}))
    assert status == 400 and "needs firmware uefi" in msg, (status, msg)
    status, msg = error_of(daemon.request("PATCH", "/v1/vms/fw", {"firmware": "coreboot"}))
    assert status == 400 and "firmware" in msg, (status, msg)
    assert volume_names(daemon) == before | {daemon.vm("fw")["disks"][0]["volume"]}
    daemon.cli("vm", "set", "fw", "--firmware", "uefi", "--secure-boot", "on")
    vm = daemon.vm("fw")
    assert vm["firmware"] == "uefi" and vm["secure_boot"] is True and vm["nvram"], vm
    # QEMU gets OVMF's secure-boot code, the NVRAM (qcow2) and SMM
    daemon.cli("vm", "start", "fw")
    daemon.wait_state("fw", "running")
    pid = daemon.vm("fw")["pid"]
    daemon.qemu_pids.add(pid)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        args = f.read().decode().split("\0")
    machine = args[args.index("-machine") + 1]
    assert "pflash0=fw-code" in machine and "pflash1=fw-vars" in machine, machine
    assert "smm=on" in machine, machine
    assert any("OVMF_CODE_4M.secboot.fd" in a for a in args), args
    # a running VM's firmware does not change
    status, msg = error_of(daemon.request("PATCH", "/v1/vms/fw", {"firmware": "bios"}))
    assert status == 409 and "stop it" in msg, (status, msg)
    daemon.cli("vm", "stop", "fw", "--force")
    nvram = daemon.vm("fw")["nvram"]
    # a backup holds a copy of the NVRAM; a restore as a new VM gives that
    # VM an NVRAM volume of its own made from it
    doc = daemon.api("POST", "/v1/vms/fw/backups", {}, expect=202)
    task = daemon.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task
    record = daemon.api("GET", f"/v1/backups/{task['message']}")
    assert record["nvram"] == "nvram.qcow2", record
    # a stopped VM has no guest to freeze (and no agent is asked)
    assert record["quiesced"] is False, record
    assert record["quiesce_reason"] == "the VM was not running", record
    doc = daemon.api("POST", f"/v1/backups/{record['id']}/restore", {"as": "fw2"}, expect=202)
    task = daemon.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task
    fw2 = daemon.vm("fw2")
    assert fw2["firmware"] == "uefi" and fw2["nvram"] == "default/fw2-nvram", fw2
    nv2 = daemon.api("GET", "/v1/pools/default/volumes/fw2-nvram")
    assert nv2["virtual_size_bytes"] == OVMF_VARS_SIZE, nv2
    daemon.task_ok("DELETE", "/v1/vms/fw2")
    assert "default/fw2-nvram" not in volume_names(daemon)
    # a restore as a new VM whose "NAME-nvram" is taken (a volume kept from
    # a deleted VM, say) takes the next free name, as a create does
    daemon.task_ok("POST", "/v1/pools/default/volumes", {"name": "fw3-nvram",
                                                        "size_bytes": 1 << 20})
    doc = daemon.api("POST", f"/v1/backups/{record['id']}/restore", {"as": "fw3"}, expect=202)
    task = daemon.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task
    assert daemon.vm("fw3")["nvram"] == "default/fw3-nvram2"
    daemon.task_ok("DELETE", "/v1/vms/fw3")
    daemon.task_ok("DELETE", "/v1/pools/default/volumes/fw3-nvram")
    # a restore over the VM itself puts its NVRAM back too
    doc = daemon.api("POST", f"/v1/backups/{record['id']}/restore", {}, expect=202)
    task = daemon.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task
    assert daemon.vm("fw")["nvram"] == nvram
    daemon.task_ok("DELETE", f"/v1/backups/{record['id']}")
    # deleted with the VM
    daemon.cli("vm", "delete", "fw")
    assert nvram not in volume_names(daemon)
    assert volume_names(daemon) == before


@needs_ovmf
def test_uefi_create_whose_nvram_fails_leaves_no_disk(daemon):
    """A UEFI VM whose NVRAM volume cannot be made (every name of it is in
    the way) is not created, and its boot disk, made just before, goes."""
    before = volume_names(daemon)
    pool = daemon.api("GET", "/v1/pools/default")["path"]
    in_the_way = [os.path.join(pool, f"nv-nvram{n if n > 1 else ''}.qcow2") for n in range(1, 100)]
    try:
        for path in in_the_way:
            open(path, "w").close()
        doc = daemon.api("POST", "/v1/vms", {"name": "nv", "blank": True, "firmware": "uefi",
                                             "disk_size_bytes": 64 << 20}, expect=202)
        task = daemon.wait_task(doc["task"])
        assert task["state"] == "failed" and "NVRAM" in task["error"]["message"], task
    finally:
        for path in in_the_way:
            os.unlink(path)
    assert daemon.request("GET", "/v1/vms/nv")[0] == 404
    assert volume_names(daemon) == before
    assert not [f for f in os.listdir(pool) if f.startswith("nv-disk")], os.listdir(pool)


def efi_vars(daemon, vm):
    """The boot entries' names, BootCurrent and BootOrder as the installed
    system reads them from efivarfs."""
    out = daemon.guest(vm, "grep -q efivarfs /proc/mounts || mount -t efivarfs "
                       "efivarfs /sys/firmware/efi/efivars; cd /sys/firmware/efi/efivars && "
                       f"for f in Boot0*-{EFI_GLOBAL}; do echo \"$f: $(tr -cd 'a-zA-Z ' <$f)\"; "
                       f"done; echo \"current: $(od -An -tx1 BootCurrent-{EFI_GLOBAL})\"",
                       timeout=180)
    return out


def boot_current(out):
    """BootCurrent's number ("0004") from efi_vars' output: the variable's
    4 attribute bytes, then its value (little-endian 16 bits)."""
    octets = out.split("current:")[1].split()
    return "".join(reversed(octets[4:6]))


@needs_ovmf
@pytest.mark.skipif(not os.path.exists(ISO) or not shutil.which("xorriso"),
                    reason=f"needs the installer ISO {ISO} (make image) and xorriso")
def test_uefi_install_then_boot_from_the_nvram_entry(daemon, tmp_path):
    daemon.cli("volume", "import", "default/installer", ISO)
    daemon.cli("vm", "create", "uefi", "--blank", "--disk-size", "1G", "--memory", "512M",
               "--cdrom", "default/installer", "--boot", "cdrom,disk", "--firmware", "uefi")
    daemon.cli("vm", "start", "uefi")
    daemon.qemu_pids.add(daemon.vm("uefi")["pid"])
    daemon.wait_console("uefi", INSTALLER_DONE, timeout=INSTALL_TIMEOUT)
    daemon.wait_state("uefi", "stopped", timeout=120)
    log = daemon.console_log("uefi")
    assert "FAILED" not in log, log[-3000:]
    assert "vireo-installer: UEFI mode" in log and "boot entry added" in log, log[-3000:]

    # the entry is in the VM's NVRAM volume (UCS-2 "vireo"), on the host
    nvram = daemon.vm("uefi")["nvram"]
    path = daemon.api("GET", "/v1/pools/" + nvram.replace("/", "/volumes/"))["path"]
    subprocess.run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", path,
                    str(tmp_path / "nvram.raw")], check=True, capture_output=True, timeout=60)
    raw = (tmp_path / "nvram.raw").read_bytes()
    assert "vireo".encode("utf-16-le") in raw

    # eject; the firmware boots the disk through the NVRAM entry
    daemon.cli("vm", "cdrom", "eject", "uefi")
    daemon.cli("vm", "start", "uefi")
    daemon.qemu_pids.add(daemon.vm("uefi")["pid"])
    daemon.wait_console("uefi", INSTALLED_MARKER, timeout=INSTALL_TIMEOUT)
    assert 'Boot0' in daemon.console_log("uefi") and '"vireo"' in daemon.console_log("uefi")
    out = efi_vars(daemon, "uefi")
    entry = [line for line in out.splitlines() if ": vireo" in line]
    assert entry, out
    number = entry[0].split("-")[0][len("Boot"):].lower()  # e.g. 0004
    assert boot_current(out) == number, (number, out)

    # a memory snapshot of the running UEFI VM (savevm includes the NVRAM)
    daemon.task_ok("POST", "/v1/vms/uefi/snapshots", {"name": "s1", "memory": True})
    snaps = subprocess.run(["qemu-img", "snapshot", "-U", "-l", path], capture_output=True,
                           text=True, timeout=60).stdout
    assert "s1" in snaps, snaps

    # A forced stop after the snapshot: the NVRAM volume is intact and still
    # holds the entry (read on the host: the boot through it is proven
    # above, and a third UEFI boot under TCG costs ~20 CPU-s of make check).
    daemon.cli("vm", "stop", "uefi", "--force")
    subprocess.run(["qemu-img", "check", "-q", path], check=True, capture_output=True,
                   timeout=60)
    (tmp_path / "nvram.raw").unlink()
    subprocess.run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", path,
                    str(tmp_path / "nvram.raw")], check=True, capture_output=True, timeout=60)
    assert "vireo".encode("utf-16-le") in (tmp_path / "nvram.raw").read_bytes()
    daemon.task_ok("DELETE", "/v1/vms/uefi")
    assert nvram not in volume_names(daemon)
