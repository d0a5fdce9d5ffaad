"""System tests: VM specs name volumes and images, never host paths. The
stored VM document (vms/<id> in the store's vireo.db) holds names only; the
host that runs the VM resolves them (start, hot-plug, backup). Documents a
vireod wrote with paths are converted at load, or kept and reported when a
path names nothing. The API refuses host paths where names belong (400)."""

import json
import os
import sqlite3

from vireo_harness import BOOT_MARKER, wait_until

MiB = 1 << 20


def stored_docs(d):
    """The VM documents as the store holds them (only read)."""
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"), timeout=10)
    try:
        rows = db.execute("SELECT key, value FROM documents WHERE key LIKE 'vms/%'").fetchall()
    finally:
        db.close()
    return {key: json.loads(value) for key, value in rows}


def stored_spec(d, name):
    specs = [doc["spec"] for doc in stored_docs(d).values() if doc["spec"]["name"] == name]
    assert len(specs) == 1, specs
    return specs[0]


def write_doc(d, key, doc):
    """Writes a VM document while vireod is stopped (what an older vireod left)."""
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"))
    try:
        with db:
            text = json.dumps(doc, separators=(",", ":"), sort_keys=True)
            # A write at a new store revision (schema 2: docs/internals.md, "Store").
            (rev,) = db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
            rev = int(rev) + 1
            db.execute("UPDATE meta SET value = ? WHERE key = 'revision'", (str(rev),))
            if db.execute("UPDATE documents SET value = ?, mod_rev = ? WHERE key = ?",
                          (text, rev, key)).rowcount == 0:
                db.execute("INSERT INTO documents (key, mod_rev, create_rev, value) "
                           "VALUES (?, ?, ?, ?)", (key, rev, rev, text))
    finally:
        db.close()


def absolute_paths(value):
    """Every string in value that is an absolute path, and every "path" key."""
    found = []
    if isinstance(value, str) and value.startswith("/"):
        found.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k == "path":
                found.append(f"path={v}")
            found += absolute_paths(v)
    elif isinstance(value, list):
        for v in value:
            found += absolute_paths(v)
    return found


def test_vm_from_image_with_data_volume_stores_names_boots_and_hot_plugs(daemon):
    d = daemon
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "data1", "size_bytes": 16 * MiB})
    d.cli("vm", "create", "np", "--memory", "128M")
    d.cli("vm", "disk", "add", "np", "default/data1")
    spec = stored_spec(d, "np")
    assert absolute_paths(spec) == [], spec
    assert spec["kernel"] == {"image": "default"}, spec
    assert [disk["volume"] for disk in spec["disks"]] == ["default/np-disk0", "default/data1"]

    # The API shows each disk's file on this host (read-only, not in the spec).
    vm = d.vm("np")
    assert vm["kernel"] == {"image": "default"}
    pool = d.api("GET", "/v1/pools/default")["path"]
    assert [disk["path"] for disk in vm["disks"]] == [
        os.path.join(pool, "np-disk0.qcow2"), os.path.join(pool, "data1.qcow2")]
    listed = d.api("GET", "/v1/vms/np/disks")["disks"]
    assert [disk["path"] for disk in listed] == [disk["path"] for disk in vm["disks"]]

    # Boots (paths resolved at start), takes a hot-plugged disk, is backed up.
    d.cli("vm", "start", "np")
    d.wait_console("np", BOOT_MARKER)
    d.qemu_pids.add(d.vm("np")["pid"])
    d.cli("vm", "disk", "add", "np", "--size", "8M")
    wait_until(lambda: "vdc" in d.guest("np", "ls /sys/block"), 60, interval=0.5,
               what="vdc in the guest")
    doc = d.api("POST", "/v1/vms/np/backups", {}, expect=202)
    task = d.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task
    backup = d.api("GET", f"/v1/backups/{task['message']}")
    assert len(backup["disks"]) == 3
    spec = stored_spec(d, "np")
    assert absolute_paths(spec) == [], spec
    assert len(spec["disks"]) == 3
    with open(os.path.join(d.api("GET", "/v1/pools/backup")["path"], backup["id"],
                           "backup.json")) as f:
        assert absolute_paths(json.load(f)["spec"]) == []


def test_api_refuses_host_paths_where_names_belong(fake_daemon):
    d = fake_daemon
    d.cli("vm", "create", "hp1")
    pool = d.api("GET", "/v1/pools/default")["path"]
    file = os.path.join(pool, "hp1-disk0.qcow2")
    vms = d.api("GET", "/v1/vms")["vms"]

    def refused(method, path, body, *fragments):
        status, doc = d.request(method, path, body)
        assert status == 400, (status, doc)
        assert doc["error"]["code"] == "invalid-argument", doc
        for fragment in fragments:
            assert fragment in doc["error"]["message"], doc

    refused("POST", "/v1/vms", {"name": "p1", "image": "/srv/images/disk.qcow2"},
            "image: '/srv/images/disk.qcow2' is a path", "image's name")
    for key, value in (("kernel", "/boot/vmlinuz"), ("initrd", "/boot/initrd.img"),
                       ("disks", [{"path": file}]), ("path", file)):
        refused("POST", "/v1/vms", {"name": "p1", key: value}, f"{key}: ", "image",
                "volume")
    # A path given as the volume to attach: the message names the volume it is.
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "v1", "size_bytes": MiB})
    v1 = d.api("GET", "/v1/pools/default/volumes/v1")["path"]
    refused("POST", "/v1/vms/hp1/disks", {"volume": v1}, f"'{v1}' is a host path",
            '"default/v1"')
    refused("POST", "/v1/vms/hp1/disks", {"volume": "/etc/passwd"}, "POOL/NAME")
    refused("POST", "/v1/vms/hp1/disks", {"path": v1}, 'give "volume": "POOL/NAME"')
    assert d.api("GET", "/v1/vms")["vms"] == vms  # nothing made or changed
    assert len(d.api("GET", "/v1/vms/hp1/disks")["disks"]) == 1


def test_old_documents_with_paths_are_converted_or_kept_and_reported(fake_daemon):
    d = fake_daemon
    d.cli("vm", "create", "old1")
    d.task_ok("POST", "/v1/pools/default/volumes", {"name": "extra", "size_bytes": MiB})
    d.cli("vm", "disk", "add", "old1", "default/extra")
    [(key, doc)] = stored_docs(d).items()
    paths = [disk["path"] for disk in d.vm("old1")["disks"]]
    kernel = os.path.join(d.state_dir, "images", "default", "vmlinux")
    assert os.path.exists(kernel)
    d.stop()

    # old1 as an older vireod wrote it: disk paths (the second without its
    # volume), the image's kernel by path.
    old = json.loads(json.dumps(doc))
    old["spec"]["kernel"] = kernel
    for disk, path in zip(old["spec"]["disks"], paths):
        disk["path"] = path
    del old["spec"]["disks"][1]["volume"]
    write_doc(d, key, old)
    # old2: a disk outside every pool and a kernel that is no image's.
    broken = json.loads(json.dumps(doc))
    broken["spec"].update(id="0b6f9a52-3c1e-4d2a-9f59-6a7e1c2d3b4f", name="old2",
                          kernel=os.path.join(d.tmp, "vmlinux-custom"))
    broken["spec"]["nics"] = []
    broken["spec"]["disks"] = [dict(broken["spec"]["disks"][0], path="/mnt/usb/scratch.qcow2",
                                    owned=False)]
    del broken["spec"]["disks"][0]["volume"]
    write_doc(d, "vms/" + broken["spec"]["id"], broken)
    d.start()

    # old1: converted, saved with names, and it starts.
    spec = stored_spec(d, "old1")
    assert absolute_paths(spec) == [], spec
    assert spec["kernel"] == {"image": "default"}
    assert [disk["volume"] for disk in spec["disks"]] == ["default/old1-disk0", "default/extra"]
    assert [disk["path"] for disk in d.vm("old1")["disks"]] == paths
    assert "problem" not in d.vm("old1")
    d.task_ok("POST", "/v1/vms/old1/start")
    assert d.vm("old1")["state"] == "running"
    assert "converted from host paths" in d.log()

    # old2: kept as it was and reported; it can be deleted, not started or changed.
    vm = d.vm("old2")
    assert "/mnt/usb/scratch.qcow2" in vm["problem"] and "vmlinux-custom" in vm["problem"]
    assert "old2" in d.log() and "/mnt/usb/scratch.qcow2" in d.log()
    shown = d.cli("vm", "show", "old2").stdout
    assert "problem:" in shown and "scratch.qcow2" in shown, shown
    assert stored_spec(d, "old2")["disks"][0]["path"] == "/mnt/usb/scratch.qcow2"
    status, err = d.request("POST", "/v1/vms/old2/start")
    assert status == 409 and "scratch.qcow2" in err["error"]["message"], err
    status, err = d.request("PATCH", "/v1/vms/old2", {"vcpus": 2})
    assert status == 409 and "scratch.qcow2" in err["error"]["message"], err
    # still there after another restart, then deleted
    d.stop()
    d.start()
    assert "problem" in d.vm("old2")
    d.task_ok("DELETE", "/v1/vms/old2?keep_disks=true")
    assert [vm["name"] for vm in d.api("GET", "/v1/vms")["vms"]] == ["old1"]
