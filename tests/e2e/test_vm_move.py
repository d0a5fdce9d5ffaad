"""Cold move of a stopped VM between two hosts of a real cluster
(cluster_harness: each host a network namespace with its own vireod and
etcd member). The VMs have a linked clone of the image as their first disk
and a data disk, both on each host's own pool "default", so both files are
copied (the target pulls them over the peer API, SHA-256 checked) and the
clone's copy is rebased on the target's own copy of the image. Checked
with the fake driver: the move through any door with the task's progress,
the VM and its volumes on h2 afterwards (documents, files, same data, the
clone's backing file on h2), nothing of them left on h1, a start on h2;
refusals (a running VM, unknown host, to itself, bad fields, a pool the
target lacks, an ISO of the host's own pool in the CD-ROM: for vm migrate
too); a stopped UEFI VM's NVRAM moving with it (same bytes on h2), and
back live (its volume mirrored with the disk); a failure midway (test hook: after the first volume) and a
cancel leave the VM on h1 intact and nothing on h2. With QEMU: a VM
started once on h1 (a file written in the guest), stopped, moved, started
on h2: it boots and the file is there."""

import collections
import glob
import hashlib
import json
import os
import re
import subprocess
import threading
import time

import pytest

from vireo_harness import BOOT_MARKER, TEST_IMAGE, wait_until
from test_iso_install import tiny_iso
from test_migrate import create_on as create_vm, form, hosts_of, error_of, shared_pool

MiB = 1 << 20
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"  # a UEFI VM needs it on its host


def create_on(h, name, memory=256):
    body = {"name": name, "memory_mib": memory, "host": h.name, "networks": ["user"]}
    status, doc = h.request("POST", "/v1/vms", body)
    deadline = time.monotonic() + 30
    while status == 503 and time.monotonic() < deadline:  # no confirmed manager yet
        time.sleep(0.5)
        status, doc = h.request("POST", "/v1/vms", body)
    assert status == 202, doc
    wait_done(h, doc["task"], "succeeded", timeout=180)
    status, doc = h.request("POST", f"/v1/vms/{name}/disks", {"size_bytes": 64 * MiB})
    assert status in (200, 201, 202), doc
    if status == 202:
        wait_done(h, doc["task"], "succeeded")
    disks = h.vm(name)["disks"]
    assert len(disks) == 2 and all(d["volume"].startswith("default/") for d in disks), disks
    return disks


def wait_done(h, task, state, timeout=180):
    """The task's end; state: the one expected (or a tuple of them)."""
    def done():
        t = h.api("GET", f"/v1/tasks/{task['id']}")
        return t if t["state"] in ("succeeded", "failed", "cancelled") else None
    t = wait_until(done, timeout, what=f"task {task['kind']} {task['id']}")
    assert t["state"] in (state if isinstance(state, tuple) else (state,)), t
    return t


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def backing_of(path):
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out).get("full-backing-filename")


def pool_files(h):
    d = os.path.join(h.state_dir, "pools", "default")
    return sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "*")) +
                  glob.glob(os.path.join(d, ".upload-*")))


def own_volumes(h):
    return sorted(v["pool"] + "/" + v["name"] for v in h.api("GET", "/v1/volumes")["volumes"]
                  if v["pool"] == "default")


def incoming_task(h):
    return [t for t in h.api("GET", "/v1/tasks")["tasks"] if t["kind"] == "move-in"][0]


def check_nothing_moved(h1, h2, name, disks, shas, h2_files):
    """The VM is h1's as before, with its files; h2 has nothing of it."""
    for h in (h1, h2):
        assert hosts_of(h, name) == ["h1"], hosts_of(h, name)
    assert h1.vm(name)["state"] in ("defined", "stopped")
    assert "migration" not in h1.vm(name)
    for d in disks:
        assert sha(d["path"]) == shas[d["volume"]]
    assert pool_files(h2) == h2_files
    assert not set(own_volumes(h2)) & {d["volume"] for d in disks}


def test_stopped_vm_moves_with_its_local_disks(cluster):
    c = cluster(2, driver="fake", listen=False)
    form(c)
    h1, h2 = c.hosts
    disks = create_on(h1, "m1")
    clone, data = disks
    assert clone["volume"] != data["volume"]
    shas = {d["volume"]: sha(d["path"]) for d in disks}
    with open(data["path"], "r+b") as f:  # qcow2 keeps it: past the header, unused space
        f.seek(0, 2)
        f.write(b"written-before-the-move" * 100)
    shas[data["volume"]] = sha(data["path"])
    assert backing_of(clone["path"]).startswith(h1.state_dir)
    vm_id = h1.vm("m1")["id"]

    # Through the CLI of h2 (any door: the VM is h1's), following the task.
    out = h2.cli("vm", "move", "m1", "--to", "h2", timeout=300).stdout
    assert "m1: moved to h2" in out, out
    task = [t for t in h1.api("GET", "/v1/tasks")["tasks"] if t["kind"] == "move"][0]
    assert task["state"] == "succeeded", task
    assert task["result"]["to"] == "h2" and task["result"]["bytes"] > 64 * 1024, task
    assert task["details"]["bytes_copied"] == task["details"]["bytes_total"], task
    incoming = [t for t in h2.api("GET", "/v1/tasks")["tasks"] if t["kind"] == "move-in"]
    assert incoming and incoming[0]["state"] == "succeeded", incoming

    # The VM and its volumes are h2's, seen so from both hosts.
    for h in (h1, h2):
        assert hosts_of(h, "m1") == ["h2"]
    vm = h2.vm("m1")
    assert vm["id"] == vm_id and vm["state"] in ("defined", "stopped"), vm
    assert [d["volume"] for d in vm["disks"]] == [clone["volume"], data["volume"]]
    for d in vm["disks"]:
        assert d["path"].startswith(h2.state_dir), d
    assert set(own_volumes(h2)) >= set(shas)
    assert not set(own_volumes(h1)) & set(shas)
    # Same data; the clone's copy is based on h2's image.
    new = {d["volume"]: d["path"] for d in vm["disks"]}
    assert sha(new[data["volume"]]) == shas[data["volume"]]
    assert backing_of(new[clone["volume"]]).startswith(h2.state_dir)
    # Nothing left on h1: files, VM directory, temp files on h2.
    assert not os.path.exists(clone["path"]) and not os.path.exists(data["path"])
    assert not os.path.exists(os.path.join(h1.state_dir, "vms", vm_id))
    assert not [f for f in pool_files(h2) if f.startswith(".upload-")]
    # It starts on h2 (through h1's door).
    h1.cli("vm", "start", "m1")
    wait_until(lambda: h2.vm("m1")["state"] == "running", 30, what="m1 running on h2")
    h1.cli("vm", "stop", "m1", "--force")


def test_refusals(cluster, tmp_path, monkeypatch):
    faults = tmp_path / "faults"  # the fake driver's: no-ovmf makes hosts lack OVMF
    faults.mkdir()
    monkeypatch.setenv("VIREO_FAKE_FAULTS", str(faults))
    c = cluster(2, driver="fake", listen=False)
    form(c)
    h1, h2 = c.hosts
    uefi_image(h1, "uimg")  # for uefi_refusals: adopted at vireod's start
    disks = create_on(h1, "m1")
    shas = {d["volume"]: sha(d["path"]) for d in disks}
    h2_files = pool_files(h2)
    msg = error_of(h1, "POST", "/v1/vms/m1/move", {"to": "nope"}, 400)
    assert "nope" in msg, msg
    msg = error_of(h1, "POST", "/v1/vms/m1/move", {"to": "h1"}, 400)
    assert "already" in msg, msg
    msg = error_of(h1, "POST", "/v1/vms/m1/move", {"to": "h2", "bogus": 1}, 400)
    msg = error_of(h1, "POST", "/v1/vms/m1/move", {"to": "h2", "pool": "Bad/Name"}, 400)
    assert "pool" in msg, msg
    # A pool h2 does not have: the task fails, nothing moved.
    doc = h1.api("POST", "/v1/vms/m1/move", {"to": "h2", "pool": "nosuch"}, expect=202)
    t = wait_done(h1, doc["task"], "failed")
    assert "nosuch" in t["error"]["message"], t
    check_nothing_moved(h1, h2, "m1", disks, shas, h2_files)
    # A running VM: use migrate.
    h1.cli("vm", "start", "m1")
    msg = error_of(h2, "POST", "/v1/vms/m1/move", {"to": "h2"}, 409)
    assert "running" in msg and "vireo vm migrate" in msg, msg
    p = h2.cli("vm", "move", "m1", "--to", "h2", check=False)
    assert p.returncode != 0 and "vireo vm migrate" in p.stderr, p.stderr
    # Snapshots inside its local disks: a live migration (which copies only
    # the disks' current state) is refused, naming what to do; nothing moved.
    h1.cli("snapshot", "create", "m1", "s1")
    msg = error_of(h2, "POST", "/v1/vms/m1/migrate", {"to": "h2"}, 409)
    assert "1 snapshot," in msg and "vireo vm move" in msg, msg
    assert hosts_of(h2, "m1") == ["h1"]
    h1.cli("snapshot", "delete", "m1", "s1")
    h1.cli("vm", "stop", "m1", "--force")
    # The help says what it does.
    out = h1.cli("vm", "move", "--help").stdout
    assert "--pool" in out and "stopped" in out, out

    # An ISO of h1's own pool in the CD-ROM: a move and a migration are
    # refused at once, naming the ISO and the fix; nothing moved.
    h1.cli("volume", "import", "default/media", str(tiny_iso(tmp_path / "media.iso")),
           "--content", "iso")
    ovmf = os.path.exists(OVMF_CODE)
    create_vm(h1, "u1", pool="default", blank=True, disk_size_bytes=16 * MiB,
              cdrom="default/media", **({"firmware": "uefi"} if ovmf else {}))
    for verb in ("move", "migrate"):
        if verb == "migrate":
            h1.cli("vm", "start", "u1")
        msg = error_of(h2, "POST", f"/v1/vms/u1/{verb}", {"to": "h2"}, 409)
        assert "'default/media'" in msg and "vireo vm cdrom eject u1" in msg, msg
        p = h1.cli("vm", verb, "u1", "--to", "h2", check=False)
        assert p.returncode != 0 and "vireo vm cdrom eject u1" in p.stderr, p.stderr
        assert hosts_of(h2, "u1") == ["h1"]
    h1.cli("vm", "stop", "u1", "--force")
    ha_and_a_local_iso(c, tmp_path)
    a_network_of_another_project(c)
    if not ovmf:  # the rest is of u1's NVRAM
        pytest.skip("the NVRAM's move needs OVMF (apt-get install ovmf); the refusals passed")
    h1.cli("vm", "cdrom", "eject", "u1")
    uefi_refusals(c, faults)
    # Ejected, the UEFI VM moves, its NVRAM with its disk: the same bytes
    # on h2, nothing of it left on h1.
    nv = h1.api("GET", "/v1/pools/default/volumes/u1-nvram")
    with open(nv["path"], "r+b") as f:  # past qcow2's data: bytes only a copy keeps
        f.seek(0, 2)
        f.write(b"nvram-before-the-move" * 100)
    want = sha(nv["path"])
    out = h1.cli("vm", "move", "u1", "--to", "h2", timeout=300).stdout
    assert "u1: moved to h2" in out, out
    assert h2.vm("u1")["nvram"] == "default/u1-nvram", h2.vm("u1")
    moved = h2.api("GET", "/v1/pools/default/volumes/u1-nvram")
    assert moved["attached_to"] == "u1" and sha(moved["path"]) == want, moved
    assert not os.path.exists(nv["path"])
    assert h1.request("GET", "/v1/pools/default/volumes/u1-nvram")[0] == 404
    # Live (the fake driver's mirror): the NVRAM volume is mirrored back to
    # h1 with the disk and becomes h1's (test_uefi_migrate: with QEMU).
    h2.cli("vm", "start", "u1")
    doc = h2.api("POST", "/v1/vms/u1/migrate", {"to": "h1"}, expect=202)
    t = wait_done(h2, doc["task"], "succeeded")
    assert "default/u1-nvram" in t["result"]["volumes"], t
    assert h1.vm("u1")["nvram"] == "default/u1-nvram" and hosts_of(h2, "u1") == ["h1"]
    assert h1.api("GET", "/v1/pools/default/volumes/u1-nvram")["attached_to"] == "u1"
    assert h2.request("GET", "/v1/pools/default/volumes/u1-nvram")[0] == 404
    h1.cli("vm", "stop", "u1", "--force")


def ha_and_a_local_iso(c, tmp_path):
    """An HA VM's CD-ROM holds only an ISO of a shared pool (docs/ha.md):
    --ha on with h1's own ISO in the drive, and an insert of one into an HA
    VM, are refused naming the fix; raced against each other, never both."""
    h1, _ = c.hosts
    shared_pool(c)
    h1.cli("volume", "import", "nfs/shared-media", str(tiny_iso(tmp_path / "shared.iso")),
           "--content", "iso")
    create_vm(h1, "ha1", pool="nfs", blank=True, disk_size_bytes=16 * MiB,
              cdrom="default/media")
    msg = error_of(h1, "PATCH", "/v1/vms/ha1", {"ha": True}, 409)
    assert ("ha: VM 'ha1' cannot be highly available: the ISO 'default/media' in its CD-ROM "
            "is on this host's own pool" in msg and "vireo vm cdrom eject ha1" in msg), msg
    p = h1.cli("vm", "set", "ha1", "--ha", "on", check=False)
    assert p.returncode != 0 and "vireo vm cdrom eject ha1" in p.stderr, p.stderr
    assert h1.vm("ha1")["ha"] is False
    # At create too.
    msg = error_of(h1, "POST", "/v1/vms", {"name": "ha2", "host": "h1", "pool": "nfs",
                                           "blank": True, "disk_size_bytes": 16 * MiB,
                                           "cdrom": "default/media", "ha": True}, 409)
    assert "the ISO 'default/media' in its CD-ROM" in msg, msg
    assert h1.request("GET", "/v1/vms/ha2")[0] == 404
    # Ejected, HA goes on; a local ISO is refused, a shared one goes in.
    h1.cli("vm", "cdrom", "eject", "ha1")
    h1.cli("vm", "set", "ha1", "--ha", "on")
    msg = error_of(h1, "POST", "/v1/vms/ha1/cdrom", {"volume": "default/media"}, 409)
    assert ("VM 'ha1' is highly available: the ISO 'default/media' is on this host's own pool"
            in msg and "vireo vm set ha1 --ha off" in msg), msg
    h1.cli("vm", "cdrom", "insert", "ha1", "nfs/shared-media")
    assert h1.vm("ha1")["cdrom"]["volume"] == "nfs/shared-media"
    # Racing: --ha on and an insert of the local ISO at once, a few times;
    # whatever wins, an HA VM never holds h1's own ISO.
    wins = collections.Counter()
    for _ in range(4):
        h1.cli("vm", "set", "ha1", "--ha", "off")
        h1.cli("vm", "cdrom", "eject", "ha1")
        results = {}
        ts = [threading.Thread(target=lambda: results.__setitem__(
                  "ha", h1.request("PATCH", "/v1/vms/ha1", {"ha": True}))),
              threading.Thread(target=lambda: results.__setitem__(
                  "cd", h1.request("POST", "/v1/vms/ha1/cdrom", {"volume": "default/media"})))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        status, doc = results["cd"]
        if status == 202:
            wait_done(h1, doc["task"], ("succeeded", "failed"))
        vm = h1.vm("ha1")
        iso = (vm.get("cdrom") or {}).get("volume")
        assert not (vm["ha"] and iso == "default/media"), (vm, results)
        wins[("ha" if vm["ha"] else "") + ("cd" if iso else "")] += 1
    print("races won:", dict(wins))
    h1.cli("vm", "set", "ha1", "--ha", "off")


def a_network_of_another_project(c):
    """A host's own network of the VM NIC's name, but of another project:
    the move and the migration are refused at once, naming both projects
    (one of the VM's project or of none passes: test-migrate-compat), and
    the manager's choice of a host leaves that host out."""
    h1, h2 = c.hosts
    for p in ("pa", "pb"):
        h1.cli("project", "create", p)
    for h, project in ((h1, "pa"), (h2, "pb")):  # vxlan networks stay the host's own
        h.cli("network", "create", "lx", "--type", "vxlan", "--vni", "4301",
              "--remote", "127.0.0.9", "--project", project)
    create_vm(h1, "pn", pool="default", project="pa", networks=["lx"])
    for verb in ("move", "migrate"):
        if verb == "migrate":
            h1.cli("vm", "start", "pn")
        msg = error_of(h2, "POST", f"/v1/vms/pn/{verb}", {"to": "h2"}, 409)
        assert "network lx (NIC 0) on host h2 belongs to project 'pb' and the VM to " \
               "project 'pa'" in msg, msg
        assert hosts_of(h2, "pn") == ["h1"]
    # Where the manager picks the host (a migration without --to, as an HA
    # restart, which has no such check after it, picks) h2's lx is not the
    # VM's either: no host (it was picked, then refused by the check above).
    msg = error_of(h1, "POST", "/v1/vms/pn/migrate", {}, 409)
    assert "h2: has no network lx (or it is in error or of another project there)" in msg, msg
    assert hosts_of(h2, "pn") == ["h1"]
    h1.cli("vm", "delete", "pn", "--force")
    for h in (h1, h2):
        h.cli("network", "delete", "lx")
    # Where the manager places a new VM, a host lacking its network is left
    # out (each host's record lists its networks, rewritten before a
    # network's create answers); none has it: 400 naming it.
    h2.cli("network", "create", "ly", "--type", "vxlan", "--vni", "4302",
           "--remote", "127.0.0.9")
    assert "ly" in host_doc(h1, "h2")["networks"]
    assert "ly" not in host_doc(h1, "h1")["networks"]
    out = h1.cli("host", "show", "h2").stdout
    assert re.search(r"networks:\s+(\S+, )*ly(,|\n)", out), out
    h1.task_ok("POST", "/v1/vms", {"name": "py", "memory_mib": 128, "networks": ["ly"]})
    assert hosts_of(h1, "py") == ["h2"]
    msg = error_of(h1, "POST", "/v1/vms", {"name": "pz", "memory_mib": 128,
                                            "networks": ["nowhere"]}, 400)
    assert msg == ("networks: no host has a network 'nowhere' (or it is in error wherever "
                   "it is; see: vireo network list)"), msg
    h1.cli("vm", "delete", "py", "--force")
    h2.cli("network", "delete", "ly")


def host_doc(h, name):
    return [x for x in h.api("GET", "/v1/hosts")["hosts"] if x["name"] == name][0]


def firmware_of(h, name):
    return [x for x in h.api("GET", "/v1/hosts")["hosts"] if x["name"] == name][0]["firmware"]


def uefi_image(h, name):
    """Image name on host h, its image.json saying it prefers UEFI (the
    test image's files, linked): adopted by h's vireod when it starts."""
    d = os.path.join(h.state_dir, "images", name)
    os.makedirs(d)
    with open(os.path.join(TEST_IMAGE, "image.json")) as f:
        meta = json.load(f)
    for key in ("disk", "kernel", "initrd"):
        if meta.get(key):
            os.symlink(os.path.join(os.path.abspath(TEST_IMAGE), meta[key]),
                       os.path.join(d, meta[key]))
    meta.update(name=name, firmware="uefi")
    with open(os.path.join(d, "image.json"), "w") as f:
        json.dump(meta, f)
    h.stop()
    h.start()
    wait_until(lambda: any(i["name"] == name for i in h.api("GET", "/v1/images")["images"]),
               15, what=f"image {name} adopted")


def uefi_refusals(c, faults):
    """UEFI VM u1 (stopped, NVRAM on h1's own pool): refused at once, naming
    why, toward a host without OVMF (its record's firmware) and when its
    NVRAM's file is gone; nothing moved."""
    h1, h2 = c.hosts
    assert firmware_of(h1, "h2") == ["bios", "uefi", "uefi-secure-boot"]
    # The fake driver's hosts lack OVMF while faults/no-ovmf exists (both
    # hosts here: the target's record is what is checked).
    (faults / "no-ovmf").touch()
    wait_until(lambda: firmware_of(h1, "h2") == ["bios"], 30, what="h2 without OVMF")
    out = h1.cli("host", "show", "h2").stdout
    assert re.search(r"firmware:\s+bios\n", out), out
    want = "firmware: the VM boots UEFI, and host h2 has no OVMF (install the ovmf package there)"
    msg = error_of(h1, "POST", "/v1/vms/u1/move", {"to": "h2"}, 409)
    assert want in msg, msg
    p = h1.cli("vm", "move", "u1", "--to", "h2", check=False)
    assert p.returncode != 0 and want in p.stderr, p.stderr
    h1.cli("vm", "start", "u1")
    msg = error_of(h2, "POST", "/v1/vms/u1/migrate", {"to": "h2"}, 409)
    assert want in msg, msg
    # The manager's choice (no --to; an evacuation, an HA restart) leaves
    # a host without OVMF out, saying so, rather than picking it.
    msg = error_of(h1, "POST", "/v1/vms/u1/migrate", {}, 409)
    assert "h2: has no OVMF for uefi (install the ovmf package there)" in msg, msg
    # So does the manager's placement of a new UEFI VM: no host fits.
    wait_until(lambda: firmware_of(h1, "h1") == ["bios"], 30, what="h1 without OVMF")
    msg = error_of(h2, "POST", "/v1/vms", {"name": "u2", "memory_mib": 128, "firmware": "uefi",
                                           "blank": True, "disk_size_bytes": 16 << 20}, 409)
    assert "h1: has no OVMF for uefi" in msg and "h2: has no OVMF for uefi" in msg, msg
    assert "u2" not in [v["name"] for v in h1.api("GET", "/v1/vms")["vms"]]
    # An image that prefers UEFI, without "firmware" in the create: the
    # preference is known before a host is picked (h1's own image, asked
    # through h2), so no host fits either, rather than a host picked whose
    # own create then finds it has no OVMF.
    msg = error_of(h2, "POST", "/v1/vms", {"name": "u3", "memory_mib": 128, "image": "uimg",
                                           "networks": ["user"]}, 409)
    assert "h1: has no OVMF for uefi" in msg and "h2: has no OVMF for uefi" in msg, msg
    assert "u3" not in [v["name"] for v in h1.api("GET", "/v1/vms")["vms"]]
    h1.cli("vm", "stop", "u1", "--force")
    assert hosts_of(h2, "u1") == ["h1"]
    (faults / "no-ovmf").unlink()
    wait_until(lambda: "uefi" in firmware_of(h1, "h2"), 30, what="h2 with OVMF again")
    # Its NVRAM's file gone: refused at once, saying how to give it a fresh
    # one; the file back, nothing changed.
    nv = h1.api("GET", "/v1/pools/default/volumes/u1-nvram")["path"]
    os.rename(nv, nv + ".away")
    try:
        msg = error_of(h1, "POST", "/v1/vms/u1/move", {"to": "h2"}, 409)
        assert ("VM 'u1' boots UEFI but has lost its NVRAM volume's file ('default/u1-nvram'): "
                "vm move does not move it without its UEFI variables" in msg), msg
        assert "vireo vm set u1 --firmware bios, then vireo vm set u1 --firmware uefi" in msg
    finally:
        os.rename(nv + ".away", nv)
    assert hosts_of(h2, "u1") == ["h1"] and h1.vm("u1")["state"] == "stopped"


def test_failure_midway_and_cancel_leave_the_vm_where_it_was(cluster, monkeypatch):
    # Test hooks of the target (move.h): fail once the first volume is
    # copied, and wait a moment before each copy (so a cancel lands midway).
    monkeypatch.setenv("VIREO_TEST_MOVE_FAIL_AFTER_VOLUMES", "1")
    monkeypatch.setenv("VIREO_TEST_MOVE_SLOW_MS", "1500")
    c = cluster(2, driver="fake", listen=False)
    form(c)
    h1, h2 = c.hosts
    disks = create_on(h1, "m1")
    shas = {d["volume"]: sha(d["path"]) for d in disks}
    h2_files = pool_files(h2)

    doc = h1.api("POST", "/v1/vms/m1/move", {"to": "h2"}, expect=202)
    t = wait_done(h1, doc["task"], "failed")
    assert "test hook" in t["error"]["message"] and "stays" in t["error"]["message"], t
    check_nothing_moved(h1, h2, "m1", disks, shas, h2_files)
    # It still starts on h1 afterwards (nothing held).
    h1.cli("vm", "start", "m1")
    wait_until(lambda: h1.vm("m1")["state"] == "running", 30, what="m1 running on h1")
    h1.cli("vm", "stop", "m1", "--force")

    # Cancel while the target waits before its first copy.
    doc = h2.api("POST", "/v1/vms/m1/move", {"to": "h2"}, expect=202)
    wait_until(lambda: [t for t in h2.api("GET", "/v1/tasks")["tasks"]
                        if t["kind"] == "move-in" and t["state"] == "running"], 30,
               what="the target's task running")
    h1.api("POST", f"/v1/tasks/{doc['task']['id']}/cancel", {}, expect=202)
    t = wait_done(h1, doc["task"], ("failed", "cancelled"))
    assert "cancel" in ((t.get("error") or {}).get("message") or t["message"]), t
    t2 = wait_done(h2, incoming_task(h2), ("failed", "cancelled"))
    assert "cancel" in ((t2.get("error") or {}).get("message") or t2["message"]), t2
    check_nothing_moved(h1, h2, "m1", disks, shas, h2_files)


def test_real_guest_moves_and_boots_on_the_target(cluster):
    c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    disks = create_on(h1, "m1")
    h1.cli("vm", "start", "m1")
    h1.wait_console("m1", BOOT_MARKER, timeout=240)
    h1.guest("m1", "echo written-before-the-move > /move-check.txt; sync")
    h1.cli("vm", "stop", "m1", timeout=120)
    h1.wait_state("m1", "stopped", timeout=120)

    out = h1.cli("vm", "move", "m1", "--to", "h2", timeout=600).stdout
    assert "m1: moved to h2" in out, out
    for d in disks:
        assert not os.path.exists(d["path"]), d
    h2.cli("vm", "start", "m1")
    wait_until(lambda: BOOT_MARKER in h2.console_log("m1"), 240,
               what="m1 boots on h2")
    out = h2.guest("m1", "cat /move-check.txt")
    assert "written-before-the-move" in out.splitlines(), out
    h2.cli("vm", "stop", "m1", "--force")
