"""System tests of shared pools on one host (a standalone vireod, SQLite):
the marker file, the pool on one directory only once, reachability with
its reason as the directory changes under vireod, the host record listing
only reachable pools, and shared volumes kept across a restart. The
multi-host tests are in test_cluster_shared_pools.py."""

import json
import os
import shutil
import subprocess

from vireo_harness import wait_until

MARKER = ".vireo-pool.json"
MiB = 1 << 20


def pool(daemon, name):
    return daemon.api("GET", f"/v1/pools/{name}")


def host_record(daemon):
    """The host's published record. Between two publications on a loaded
    machine the host can show without one for a moment (`offline`, no
    `pools`): waited out, bounded."""
    def published():
        hosts = daemon.api("GET", "/v1/hosts")["hosts"]
        assert len(hosts) == 1
        return hosts[0] if "pools" in hosts[0] else None
    return wait_until(published, 20, what="the host's record")


def wait_reach(daemon, name, reachable, timeout=20):
    wait_until(lambda: pool(daemon, name)["reachable"] == reachable, timeout,
               what=f"pool {name} reachable={reachable}")
    return pool(daemon, name)


def test_shared_pool_marker_and_one_pool_per_directory(fake_daemon, tmp_path):
    d = fake_daemon
    shared = tmp_path / "nfs"
    shared.mkdir()
    p = d.api("POST", "/v1/pools", {"name": "nfs", "path": str(shared), "shared": True},
              expect=201)
    assert p["shared"] is True and p["reachable"] is True and p["reason"] is None
    assert p["host"] is None
    with open(shared / MARKER) as f:
        marker = json.load(f)
    assert marker["id"] == p["id"] and marker["name"] == "nfs"

    # The list and show say it is shared, and each host's view.
    listed = {q["name"]: q for q in d.api("GET", "/v1/pools")["pools"]}
    assert listed["nfs"]["shared"] is True and listed["default"]["shared"] is False
    assert listed["default"]["host"] == host_record(d)["name"]
    hosts = pool(d, "nfs")["hosts"]
    assert [(h["host"], h["reachable"], h["reason"]) for h in hosts] == \
        [(host_record(d)["name"], True, None)]
    out = d.cli("pool", "show", "nfs").stdout
    assert "shared:" in out and "reachable" in out
    assert "nfs" in d.cli("pool", "list").stdout

    # A second pool on the same directory is refused, naming the first,
    # shared or not; the marker stays the first pool's.
    status, doc = d.request("POST", "/v1/pools", {"name": "nfs2", "path": str(shared),
                                                  "shared": True})
    assert status == 409 and "'nfs'" in doc["error"]["message"]
    status, doc = d.request("POST", "/v1/pools", {"name": "nfs3", "path": str(shared)})
    assert status == 409 and "'nfs'" in doc["error"]["message"]
    # A directory another pool marked (another cluster's, say) is refused
    # with that pool's name.
    other = tmp_path / "other"
    other.mkdir()
    (other / MARKER).write_text(json.dumps({"id": "feed", "name": "theirs"}))
    status, doc = d.request("POST", "/v1/pools", {"name": "mine", "path": str(other),
                                                  "shared": True})
    assert status == 409 and "'theirs'" in doc["error"]["message"]
    assert "mine" not in {q["name"] for q in d.api("GET", "/v1/pools")["pools"]}
    with open(shared / MARKER) as f:
        assert json.load(f)["id"] == p["id"]
    # Names are one namespace with the local pools.
    status, doc = d.request("POST", "/v1/pools", {"name": "default", "path": str(other),
                                                  "shared": True})
    assert status == 409 and "already exists" in doc["error"]["message"]
    assert json.loads((other / MARKER).read_text())["id"] == "feed"

    # Bad input: clear 400s, nothing made.
    status, doc = d.request("POST", "/v1/pools", {"name": "b", "path": str(tmp_path),
                                                  "type": "backup", "shared": True})
    assert status == 400 and "only dir pools" in doc["error"]["message"]
    status, doc = d.request("POST", "/v1/pools", {"name": "b", "path": str(tmp_path),
                                                  "shared": "yes"})
    assert status == 400

    # The CLI's --shared.
    cli_dir = tmp_path / "cli"
    cli_dir.mkdir()
    d.cli("pool", "create", "viacli", "--path", str(cli_dir), "--shared")
    assert pool(d, "viacli")["shared"] is True and (cli_dir / MARKER).exists()

    # Deleting a shared pool takes its marker away (the directory stays).
    d.api("DELETE", "/v1/pools/viacli")
    assert cli_dir.exists() and not (cli_dir / MARKER).exists()


def test_unreachable_with_reason_and_host_record(fake_daemon, tmp_path):
    d = fake_daemon
    shared = tmp_path / "nfs"
    shared.mkdir()
    p = d.api("POST", "/v1/pools", {"name": "nfs", "path": str(shared), "shared": True},
              expect=201)
    wait_until(lambda: "nfs" in host_record(d)["pools"], 20, what="record lists nfs")
    mine = (shared / MARKER).read_text()

    # Another pool's marker: unreachable, naming that pool.
    (shared / MARKER).write_text(json.dumps({"id": "0ther", "name": "elsewhere"}))
    q = wait_reach(d, "nfs", False)
    assert "another pool ('elsewhere'" in q["reason"]
    assert q["hosts"][0]["reachable"] is False and "elsewhere" in q["hosts"][0]["reason"]
    wait_until(lambda: "nfs" not in host_record(d)["pools"], 20, what="record omits nfs")
    assert "elsewhere" in host_record(d)["pools_unreachable"]["nfs"]
    # Nothing goes into a pool this host does not reach.
    status, doc = d.request("POST", "/v1/pools/nfs/volumes", {"name": "v", "size_bytes": MiB})
    assert status == 409 and "not reachable" in doc["error"]["message"]
    assert "unreachable: " in d.cli("pool", "show", "nfs").stdout

    # No marker (the share not mounted here), then no directory at all.
    (shared / MARKER).unlink()
    assert "no pool marker" in wait_until_reason(d, "no pool marker")
    shutil.rmtree(shared)
    assert "missing" in wait_until_reason(d, "missing")

    # Back: reachable again, listed again.
    shared.mkdir()
    (shared / MARKER).write_text(mine)
    wait_reach(d, "nfs", True)
    wait_until(lambda: "nfs" in host_record(d)["pools"], 20, what="record lists nfs again")
    assert "nfs" not in host_record(d)["pools_unreachable"]
    assert p["id"] in (shared / MARKER).read_text()


def wait_until_reason(d, needle):
    wait_until(lambda: needle in (pool(d, "nfs")["reason"] or ""), 20,
               what=f"reason with '{needle}'")
    return pool(d, "nfs")["reason"]


def test_shared_volumes_kept_across_restart(fake_daemon, tmp_path):
    d = fake_daemon
    shared = tmp_path / "nfs"
    shared.mkdir()
    d.api("POST", "/v1/pools", {"name": "nfs", "path": str(shared), "shared": True}, expect=201)
    d.task_ok("POST", "/v1/pools/nfs/volumes", {"name": "data", "size_bytes": 4 * MiB})
    v = d.api("GET", "/v1/pools/nfs/volumes/data")
    assert v["state"] == "ready" and os.path.exists(v["path"])
    assert not os.path.exists(v["path"] + ".creating")  # the create's lock went
    # A name whose file is there already (another host making it) is refused.
    open(os.path.join(shared, "taken.qcow2"), "w").close()
    status, doc = d.request("POST", "/v1/pools/nfs/volumes", {"name": "taken",
                                                              "size_bytes": MiB})
    assert status == 409 and "in the way" in doc["error"]["message"]
    # One being made by another host (its lock file) is refused too.
    open(os.path.join(shared, "busy.qcow2.creating"), "w").close()
    status, doc = d.request("POST", "/v1/pools/nfs/volumes", {"name": "busy",
                                                              "size_bytes": MiB})
    assert status == 409 and "another host" in doc["error"]["message"]
    assert os.path.exists(os.path.join(shared, "busy.qcow2.creating"))
    os.unlink(os.path.join(shared, "busy.qcow2.creating"))
    os.unlink(os.path.join(shared, "taken.qcow2"))
    # A lock naming another host is kept (standalone: whether that host is
    # down cannot be known); one naming this host is a crash's and goes.
    with open(os.path.join(d.state_dir, "host-id")) as f:
        host_id = f.read().strip()
    other = "0b5e1c8e8a4e4c639a572d4f0c3b7a11"
    (shared / "theirs.qcow2.creating").write_text(other)
    status, doc = d.request("POST", "/v1/pools/nfs/volumes", {"name": "theirs",
                                                              "size_bytes": MiB})
    assert status == 409 and "another host" in doc["error"]["message"]
    assert (shared / "theirs.qcow2.creating").read_text() == other
    (shared / "theirs.qcow2.creating").unlink()
    (shared / "own.qcow2.creating").write_text(host_id)
    d.task_ok("POST", "/v1/pools/nfs/volumes", {"name": "own", "size_bytes": MiB})
    assert not (shared / "own.qcow2.creating").exists()
    d.task_ok("DELETE", "/v1/pools/nfs/volumes/own")
    # Left by this host before a restart: removed once the pool is reachable.
    (shared / "left.qcow2.creating").write_text(host_id)

    d.stop()
    d.start()
    wait_until(lambda: not (shared / "left.qcow2.creating").exists(), 20,
               what="this host's stale .creating removed")
    assert pool(d, "nfs")["shared"] is True
    assert d.api("GET", "/v1/pools/nfs/volumes/data")["state"] == "ready"
    wait_reach(d, "nfs", True)
    # Resize and delete work as for a local pool; then the pool goes.
    d.task_ok("POST", "/v1/pools/nfs/volumes/data/resize", {"size_bytes": 8 * MiB})
    assert d.api("GET", "/v1/pools/nfs/volumes/data")["virtual_size_bytes"] == 8 * MiB
    status, doc = d.request("DELETE", "/v1/pools/nfs")
    assert status == 409 and "volume" in doc["error"]["message"]
    d.task_ok("DELETE", "/v1/pools/nfs/volumes/data")
    assert not os.path.exists(v["path"])
    d.api("DELETE", "/v1/pools/nfs")
    assert not (shared / MARKER).exists()


def test_non_shareable_shared_volume_has_one_vm(fake_daemon, tmp_path):
    d = fake_daemon
    shared = tmp_path / "nfs"
    shared.mkdir()
    d.api("POST", "/v1/pools", {"name": "nfs", "path": str(shared), "shared": True}, expect=201)
    d.task_ok("POST", "/v1/pools/nfs/volumes", {"name": "data", "size_bytes": 4 * MiB})
    for name in ("a", "b"):
        d.cli("vm", "create", name, "--memory", "64M")
    d.task_ok("POST", "/v1/vms/a/disks", {"volume": "nfs/data"})
    assert d.api("GET", "/v1/pools/nfs/volumes/data")["attached_to"] == "a"
    # The second VM is refused, naming the first.
    status, body = d.request("POST", "/v1/vms/b/disks", {"volume": "nfs/data"})
    assert status == 409 and "attached to VM 'a'" in body["error"]["message"], body
    status, body = d.request("DELETE", "/v1/pools/nfs/volumes/data")
    assert status == 409 and "attached to VM 'a'" in body["error"]["message"]
    # Detached: the second VM may have it (no attach lock was left behind).
    d.task_ok("DELETE", "/v1/vms/a/disks/1")
    d.task_ok("POST", "/v1/vms/b/disks", {"volume": "nfs/data"})
    assert d.api("GET", "/v1/pools/nfs/volumes/data")["attached_to"] == "b"


def test_image_kept_in_shared_pool(fake_daemon, tmp_path):
    d = fake_daemon
    shared = tmp_path / "nfs"
    shared.mkdir()
    d.api("POST", "/v1/pools", {"name": "nfs", "path": str(shared), "shared": True}, expect=201)
    disk = tmp_path / "base.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(disk), "4M"], check=True)
    d.task_ok("POST", "/v1/images", {"name": "base", "import_path": str(disk), "pool": "nfs"})
    img = d.api("GET", "/v1/images/base")
    assert img["pool"] == "nfs" and img["disk"] == str(shared / ".images" / "base" / "disk.qcow2")
    assert os.path.exists(img["disk"])
    listed = {i["name"]: i for i in d.api("GET", "/v1/images")["images"]}
    assert listed["base"]["pool"] == "nfs" and listed["default"]["pool"] is None
    assert "nfs" in d.cli("image", "list").stdout or "base" in d.cli("image", "list").stdout
    # One name for the host's images and the shared ones.
    status, doc = d.request("POST", "/v1/images", {"name": "base", "import_path": str(disk)})
    assert status == 409 and "already exists" in doc["error"]["message"]
    # Only into a shared pool.
    status, doc = d.request("POST", "/v1/images", {"name": "x", "import_path": str(disk),
                                                   "pool": "default"})
    assert status == 400 and "not a shared pool" in doc["error"]["message"]
    status, doc = d.request("POST", "/v1/images", {"name": "x", "import_path": str(disk),
                                                   "pool": "nope"})
    assert status == 400 and "does not exist" in doc["error"]["message"]
    # A VM made from it is a linked clone of the shared file; the image is
    # in use until the VM goes.
    d.task_ok("POST", "/v1/vms", {"name": "fromshared", "image": "base", "memory_mib": 64})
    boot = d.api("GET", "/v1/vms/fromshared/disks")["disks"][0]["volume"]
    vol = d.api("GET", f"/v1/pools/{boot.replace('/', '/volumes/')}")
    assert vol["image"] == "base" and vol["backing"][0]["path"] == img["disk"]
    status, doc = d.request("DELETE", "/v1/images/base")
    assert status == 409
    d.task_ok("DELETE", "/v1/vms/fromshared")
    # Kept across a restart, deleted with its files.
    d.stop()
    d.start()
    assert d.api("GET", "/v1/images/base")["pool"] == "nfs"
    d.api("DELETE", "/v1/images/base")
    assert not (shared / ".images" / "base").exists()
    d.api("GET", "/v1/images/base", expect=404)
