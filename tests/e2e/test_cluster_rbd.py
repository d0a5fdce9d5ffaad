"""An rbd pool shared by a 2-host cluster (cluster_harness) against a real
Ceph (ceph_harness) in a namespace of the test's own on the hosts' switch:
the pool is made once (on h1) and every host reaches it (its key written
on h2 from the cluster's copy); a host that cannot reach the monitors (a
blackhole route to them in its namespace) shows the pool unreachable with
the reason, and a migration to it is refused, until the route goes. One
real TCG guest, a linked clone of the default image on RBD (an RBD clone
with exclusive-lock), writes a file, live-migrates from h1 to h2 with guest
RAM compared on both sides (test_migrate's way: both sides paused, each
side's RAM saved and compared byte for byte) and without a disk copy (the
task's disk_bytes and disks_copied are 0); Ceph sees the image opened from
h2's address only; the file is read back from the disk after the move, and
HA is accepted for the VM (its disk and the ISO in its CD-ROM drive, an RBD
image of the pool too, are shared: h2's QEMU opens the same ISO, and a
media change there opens it again). A restore over it cut
short on h2 (vireod dies after the write) is rolled back by its start on
h1, after a move: the mark is in the VM's document, which every host sees.
An iSCSI target that does not answer, beside the rbd pool, never holds the
rbd pool's checks."""

import json
import os
import subprocess
import threading
import time

import pytest

from ceph_harness import Ceph, CephUnavailable
from iscsi_target import TgtTarget
from test_cluster_shared_pools import pool_on, record_pools
from test_iso_install import tiny_iso
from test_migrate import assert_same_ram, create_on, form, hosts_of, keeping_ram, migrate
from vireo_harness import BOOT_MARKER, wait_until

CEPH_INDEX = 200  # the Ceph's address on the switch: PREFIX.200, no host's


@pytest.fixture
def ceph_box():
    """Holds the Ceph a test starts on its cluster's switch; stops it after
    the cluster's own teardown (this fixture is set up first): no host's
    QEMU or vireod is left waiting on a Ceph already gone."""
    box = {}
    try:
        yield box
    finally:
        if "ceph" in box:
            box["ceph"].stop()


def start_ceph(c, box):
    ns, address = c.add_netns("ceph", CEPH_INDEX)
    try:
        box["ceph"] = Ceph(netns=ns, address=address)
    except CephUnavailable as e:
        pytest.skip(str(e))
    return box["ceph"]


def rbd_json(ceph, *args):
    return json.loads(ceph.rbd(*args, "--format", "json"))


def watchers(ceph, image):
    """The addresses (without port and nonce) that hold image open."""
    return sorted(w["address"].split(":")[0]
                  for w in rbd_json(ceph, "status", image).get("watchers", []))


def reachable(h, name):
    """Pool name's reachable as h shows it (None: no such pool there)."""
    return (pool_on(h, name) or {}).get("reachable")


def test_vm_on_rbd_migrates_without_disk_copy(ceph_box, cluster, tmp_path):
    keep = str(tmp_path / "ram")
    os.makedirs(keep)
    with keeping_ram(keep):
        c = cluster(2, driver="qemu", listen=False)
    ceph = start_ceph(c, ceph_box)
    form(c)
    h1, h2 = c.hosts
    ceph.create_pool("vms")
    keyring = str(tmp_path / "ceph.client.vireo.keyring")
    key = ceph.add_user("vireo", "vms", keyring)

    # Made once, on h1: the cluster's pool; h2 writes its own key file
    # from the cluster's copy and reaches the monitors too.
    h1.cli("pool", "create", "ceph", "--type", "rbd", "--monitors", ceph.monitors,
           "--pool", "vms", "--user", "vireo", "--keyring", keyring)
    for h in (h1, h2):
        wait_until(lambda: reachable(h, "ceph"), 30,
                   what=f"pool ceph reachable on {h.name}")
        pool = pool_on(h, "ceph")
        assert pool["shared"] is True and pool["type"] == "rbd", pool
        assert pool["path"] == os.path.join(h.state_dir, "rbd", "ceph"), pool
        with open(os.path.join(h.state_dir, "rbd", "ceph", "key")) as f:
            assert f.read().strip() == key
        assert key not in json.dumps(h.api("GET", "/v1/pools"))
    assert [p["name"] for p in h2.api("GET", "/v1/pools")["pools"]].count("ceph") == 1

    # An ISO in the pool (an RBD image, content iso), seen from h2 too.
    h1.cli("volume", "import", "ceph/media", tiny_iso(str(tmp_path / "media.iso")))
    wait_until(lambda: h2.request("GET", "/v1/pools/ceph/volumes/media")[0] == 200, 30,
               what="the ISO seen from h2")
    assert h2.api("GET", "/v1/pools/ceph/volumes/media")["content"] == "iso"

    # The VM: a linked clone of the default image in the pool (an RBD clone
    # of the image's base, with exclusive-lock), booted on h1, the ISO in
    # its CD-ROM drive.
    create_on(h1, "r1", pool="ceph", memory=128, full_clone=False, cdrom="ceph/media")
    volume = h1.vm("r1")["disks"][0]["volume"]
    vol = h1.api("GET", f"/v1/pools/ceph/volumes/{volume.split('/', 1)[1]}")
    image = vol["rbd_image"]
    info = rbd_json(ceph, "info", image)
    assert "exclusive-lock" in info["features"] and info.get("parent"), info
    h1.cli("vm", "start", "r1")
    h1.wait_console("r1", BOOT_MARKER, timeout=240)
    assert watchers(ceph, image) == [h1.address]
    h1.guest("r1", "echo written-before-the-move > /rbd-check.txt; sync")

    # h2 loses its route to the monitors: unreachable there, with the
    # reason (its host record too, seen from h1); h1 still reaches it, and
    # a migration to h2 is refused. The route back: reachable again.
    route = ["ip", "-n", h2.host_netns.name, "route", "add", "blackhole", f"{ceph.monitors}/32"]
    subprocess.run(route, check=True)
    try:
        wait_until(lambda: reachable(h2, "ceph") is False, 40,
                   what="pool ceph unreachable on h2")
        reason = pool_on(h2, "ceph")["reason"]
        assert "Ceph cluster cannot be reached from this host" in reason, reason
        assert pool_on(h1, "ceph")["reachable"] is True
        wait_until(lambda: "ceph" in record_pools(h1, h2)[1], 30, what="h2's record says so")
        # Those monitors hold only the rbd checks' own thread on h2 (each
        # check up to VO_RBD_TIMEOUT_S, 10 s), never its pool watch: a
        # shared directory pool made on h1 shows on h2 at once.
        nfs = os.path.join(c.shared_dir, "nfs")
        os.makedirs(nfs)
        t0 = time.monotonic()
        h1.api("POST", "/v1/pools", {"name": "nfs", "path": nfs, "shared": True}, expect=201)
        wait_until(lambda: reachable(h2, "nfs"), 20, interval=0.1, what="pool nfs on h2")
        shown = time.monotonic() - t0
        print(f"a shared pool made on h1 showed on h2 after {shown:.2f} s (ceph unreachable)")
        assert shown < 4, f"pool nfs showed on h2 after {shown:.1f} s"
        h1.api("DELETE", "/v1/pools/nfs")
        status, doc = h1.request("POST", "/v1/vms/r1/migrate", {"to": "h2"})
        msg = doc["error"]["message"]
        assert status == 409 and "cannot reach pool" in msg and "ceph" in msg, doc
        # vireod's start does not wait for monitors that do not answer (each
        # check of them takes VO_RBD_TIMEOUT_S, 10 s): the pool watch asks.
        h2.stop()
        # From now on h2's vireod takes fault points (a file per point in
        # faults, taken once): the restore cut short below.
        faults = str(tmp_path / "faults")
        os.makedirs(faults)
        h2.env = {**(h2.env or {}), "VIREO_TEST_MIGRATE_FAULT": faults}
        with keeping_ram(keep):  # as at the cluster's first start
            t0 = time.monotonic()
            h2.start()
            started = time.monotonic() - t0
        assert started < 8, f"h2's vireod took {started:.1f} s to answer"
        wait_until(lambda: reachable(h2, "ceph") is False, 40, what="ceph unreachable after")
    finally:
        route[4] = "del"
        subprocess.run(route, check=True)
    wait_until(lambda: reachable(h2, "ceph"), 40, what="ceph reachable again")
    wait_until(lambda: "ceph" in record_pools(h1, h2)[0], 30, what="h2's record reaches it")

    task = migrate(h2, "r1", {"to": "h2", "verify_memory": True})
    res = task["result"]
    assert res["memory_verified"] is True and res["to"] == "h2", res
    assert res["disk_bytes"] == 0 and res["disks_copied"] == 0, res
    assert res["phases_ms"]["disks"] < 5000, res
    vm_id = h2.vm("r1")["id"]
    assert_same_ram(keep, h1, h2, vm_id)
    for h in (h1, h2):
        wait_until(lambda: hosts_of(h, "r1") == ["h2"], 30, what=f"r1 on h2 seen from {h.name}")
    # The same RBD image, now open from h2 alone (h1's QEMU is gone).
    assert h2.vm("r1")["disks"][0]["volume"] == volume
    wait_until(lambda: watchers(ceph, image) == [h2.address], 30, what="image open on h2 only")

    # The ISO came along, not copied: h2's QEMU opens the same RBD image
    # (its rbd driver, h2's key); a media change there opens it again, and
    # its delete is refused while r1 has it.
    # Ceph sees it open (watched) from h2's address alone: h2's QEMU
    # opened it with h2's key, h1's let it go. (The guest image has no
    # CD-ROM driver to read it with: QEMU's open is what is checked.)
    assert h2.vm("r1")["cdrom"] == {"volume": "ceph/media"}
    with open(f"/proc/{h2.vm('r1')['pid']}/cmdline", "rb") as f:
        assert b'"image":"media"' in f.read().replace(b",,", b",")
    iso_image = h2.api("GET", "/v1/pools/ceph/volumes/media")["rbd_image"]
    wait_until(lambda: watchers(ceph, iso_image) == [h2.address], 30, what="ISO open on h2 only")
    h2.cli("vm", "cdrom", "eject", "r1")
    wait_until(lambda: watchers(ceph, iso_image) == [], 30, what="ISO closed at the eject")
    h2.cli("vm", "cdrom", "insert", "r1", "ceph/media")
    wait_until(lambda: watchers(ceph, iso_image) == [h2.address], 30, what="ISO open again")
    status, doc = h1.request("DELETE", "/v1/pools/ceph/volumes/media")[:2]
    assert status == 409 and "'r1'" in doc["error"]["message"], doc

    # The write made before the move, read back from the disk (the page
    # cache dropped first) on h2.
    out = h2.guest("r1", "sync; echo 3 > /proc/sys/vm/drop_caches; cat /rbd-check.txt")
    assert "written-before-the-move" in out.splitlines(), out

    # Eligible for HA: its only disk and its ISO are on the shared rbd pool.
    h1.cli("vm", "set", "r1", "--ha", "on")
    assert h2.vm("r1")["ha"] is True
    h2.cli("vm", "stop", "r1", "--force")

    # A restore over r1 cut short on h2 (its vireod dies after the disk is
    # written, the undo snapshot and the mark left), then r1 moved to h1
    # and started there: h1 sees the mark (in r1's document, which moved
    # with it) and rolls the disk back before QEMU runs; the snapshot goes.
    # (r1's QEMU came by migration: h2 does not know its Ceph client to
    # blocklist it, so its watch is waited out first.)
    wait_until(lambda: watchers(ceph, image) == [], 90, what="r1's dead QEMU's watch gone")
    task = h2.wait_task(h2.api("POST", "/v1/vms/r1/backups", {}, expect=202)["task"],
                        timeout=300)
    assert task["state"] == "succeeded", task
    open(os.path.join(faults, "rbd-restore-exit-after-write"), "w").close()
    h2.request("POST", f"/v1/backups/{task['message']}/restore", {})
    h2.proc.wait(timeout=120)
    snaps = lambda: [x["name"] for x in rbd_json(ceph, "snap", "ls", image)]
    assert "vireo.restore-undo" in snaps()
    h2.start()
    h2.cli("vm", "move", "r1", "--to", "h1", timeout=300)
    wait_until(lambda: hosts_of(h1, "r1") == ["h1"], 30, what="r1 on h1")
    h1.cli("vm", "start", "r1")
    h1.cli("vm", "stop", "r1", "--force")
    assert "a restore over its disks was cut short: every disk rolled back" in h1.log()
    assert "vireo.restore-undo" not in snaps()

    # The key directory of each host belongs to one pool (its pool-id file).
    keyring2 = str(tmp_path / "ceph.client.vireo2.keyring")
    key2 = ceph.add_user("vireo2", "vms", keyring2)

    def key_on(h, name):
        try:
            with open(os.path.join(h.state_dir, "rbd", name, "key")) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None

    def create(h, name):
        return h.request("POST", "/v1/pools", {
            "name": name, "type": "rbd", "monitors": ceph.monitors, "pool": "vms",
            "user": "vireo2", "keyring": keyring2})[:2]

    # A directory left on h2 by an earlier pool of that name (deleted while
    # h2 was down, or written again by a check racing its delete) is not
    # the new pool's: h2 writes it again from the cluster's key.
    stale = os.path.join(h2.state_dir, "rbd", "ceph2")
    os.makedirs(stale, mode=0o700)
    with open(os.path.join(stale, "key"), "w") as f:
        f.write(key)  # the other user's: not the new pool's
    with open(os.path.join(stale, "pool-id"), "w") as f:
        f.write("0d5e0f5c-0000-4000-8000-000000000000")
    status, doc = create(h1, "ceph2")
    assert status == 201, doc
    for h in (h1, h2):
        wait_until(lambda: reachable(h, "ceph2"), 30, what=f"ceph2 reachable on {h.name}")
        assert key_on(h, "ceph2") == key2, h.name
        assert os.stat(os.path.join(h.state_dir, "rbd", "ceph2", "key")).st_mode & 0o077 == 0

    # Deleted while h2's vireod is down: h2 drops its copy of the key when
    # it starts again.
    h2.stop()
    h1.cli("pool", "delete", "ceph2")
    assert key_on(h1, "ceph2") is None
    assert key_on(h2, "ceph2") == key2
    h2.start()
    assert not os.path.exists(os.path.join(h2.state_dir, "rbd", "ceph2"))

    # Two hosts make a pool of one name at once: one wins, and the loser's
    # failed create leaves the winner's key for every host.
    results = {}
    threads = [threading.Thread(target=lambda h=h: results.update({h.name: create(h, "ceph3")}))
               for h in (h1, h2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(st for st, _ in results.values()) == [201, 409], results
    for h in (h1, h2):
        wait_until(lambda: reachable(h, "ceph3"), 30, what=f"ceph3 reachable on {h.name}")
        assert key_on(h, "ceph3") == key2, h.name


def test_kept_intents_seen_by_every_host(ceph_box, cluster, tmp_path):
    """A volume create on h1 cut short by its vireod's crash, its RBD image
    still open by a client (`rbd watch`) when h1 starts again: h1 keeps the
    intent (busy) and publishes it for the cluster, so h2's GET of the
    shared pool lists it with its host, and the pool's delete is refused
    on h2 as on h1 (409 naming it and h1); h2's --force delete drops it on
    h1 too (logged there) and leaves the image in Ceph."""
    c = cluster(2, listen=False)
    ceph = start_ceph(c, ceph_box)
    form(c)
    h1, h2 = c.hosts
    ceph.create_pool("vms")
    keyring = str(tmp_path / "ceph.client.vireo.keyring")
    ceph.add_user("vireo", "vms", keyring)
    h1.cli("pool", "create", "ceph", "--type", "rbd", "--monitors", ceph.monitors,
           "--pool", "vms", "--user", "vireo", "--keyring", keyring)
    for h in (h1, h2):
        wait_until(lambda: reachable(h, "ceph"), 30, what=f"pool ceph reachable on {h.name}")

    faults = str(tmp_path / "faults")
    os.makedirs(faults)
    h1.stop()
    h1.env = {**(h1.env or {}), "VIREO_TEST_MIGRATE_FAULT": faults}
    h1.start()
    wait_until(lambda: reachable(h1, "ceph"), 30, what="pool ceph reachable on h1 again")
    open(os.path.join(faults, "rbd-volume-exit-before-save"), "w").close()
    h1.request("POST", "/v1/pools/ceph/volumes", {"name": "orphan", "size_bytes": 1 << 20})
    h1.proc.wait(timeout=60)
    assert "orphan" in json.loads(ceph.rbd("ls", "--format", "json", "vms"))
    watcher = subprocess.Popen(["ip", "netns", "exec", ceph.netns.name, "rbd", "-c", ceph.conf,
                                "watch", "vms/orphan"], stdin=subprocess.PIPE,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: rbd_json(ceph, "status", "vms/orphan")["watchers"], 60,
                   interval=0.5, what="rbd watch's watcher")
        h1.start()
        assert "sweep: the RBD image of intents/volumes/ceph/orphan is still in use" \
            in h1.log(), h1.log()
        # Seen from h2, with the host that keeps it.
        kept = [(k["intent"], k["failure"], k["host"])
                for k in h2.api("GET", "/v1/pools/ceph")["kept_intents"]]
        assert kept == [("intents/volumes/ceph/orphan", "busy", h1.name)], kept
        assert [k["host"] for k in h1.api("GET", "/v1/pools/ceph")["kept_intents"]] == [h1.name]
        for h in (h2, h1):
            status, doc = h.request("DELETE", "/v1/pools/ceph")[:2]
            msg = doc["error"]["message"]
            assert status == 409 and "intents/volumes/ceph/orphan" in msg \
                and f"on host {h1.name}" in msg, (h.name, doc)
        h2.cli("pool", "delete", "ceph", "--force")
        wait_until(lambda: "sweep: dropped intents/volumes/ceph/orphan" in h1.log(), 30,
                   what="h1 to drop its kept intent")
        assert pool_on(h1, "ceph") is None
    finally:
        watcher.communicate(b"\n", timeout=60)  # rbd watch ends at a newline
    assert "orphan" in json.loads(ceph.rbd("ls", "--format", "json", "vms"))  # left in Ceph
    ceph.rbd("rm", "vms/orphan")


def test_dead_iscsi_target_holds_no_rbd_check(ceph_box, cluster, tmp_path):
    """Beside a shared rbd pool, a shared iSCSI pool whose portal drops every
    packet (each login waits out its timeout), its check on h1 held besides
    (a test hook: a target slower still): h1 still sees the rbd pool's
    monitors go and come back, then the iSCSI pool unreachable with the
    reason (before, the rbd pools were checked on the thread the iSCSI
    logins held)."""
    c = cluster(2, listen=False)
    ceph = start_ceph(c, ceph_box)
    h1 = c.hosts[0]
    faults = str(tmp_path / "faults")
    os.makedirs(faults)
    h1.stop()
    h1.env = {**(h1.env or {}), "VIREO_TEST_MIGRATE_FAULT": faults}
    h1.start()
    form(c)
    ceph.create_pool("vms")
    keyring = str(tmp_path / "ceph.client.vireo.keyring")
    ceph.add_user("vireo", "vms", keyring)
    h1.cli("pool", "create", "ceph", "--type", "rbd", "--monitors", ceph.monitors,
           "--pool", "vms", "--user", "vireo", "--keyring", keyring)
    ns, address = c.add_netns("san", CEPH_INDEX + 1)
    lun = str(tmp_path / "lun1.img")
    with open(lun, "wb") as f:
        f.truncate(16 << 20)
    iqn = "iqn.2026-12.org.vireo.test:dead"
    t = TgtTarget(ns.name, str(tmp_path), iqn, {1: lun}, address=address)
    pause, go = (os.path.join(faults, p) for p in ("iscsi-check-pause", "iscsi-check-go"))
    route = ["ip", "-n", h1.host_netns.name, "route", "add", "blackhole", f"{ceph.monitors}/32"]
    try:
        h1.cli("pool", "create", "san1", "--type", "iscsi", "--portal", t.portal,
               "--target", iqn)
        for name in ("ceph", "san1"):
            wait_until(lambda: reachable(h1, name), 30, what=f"pool {name} reachable on h1")
        subprocess.run(["ip", "netns", "exec", ns.name, "nft", "-f", "-"], check=True, text=True,
                       input="table inet dead { chain input { type filter hook input priority 0;"
                             f" tcp dport {t.port} drop; }}; }}")
        open(pause, "w").close()
        wait_until(lambda: not os.path.exists(pause), 60, what="h1's iSCSI check held")
        subprocess.run(route, check=True)
        try:
            wait_until(lambda: reachable(h1, "ceph") is False, 60,
                       what="pool ceph unreachable on h1, its iSCSI check held")
        finally:
            route[4] = "del"
            subprocess.run(route, check=True)
        wait_until(lambda: reachable(h1, "ceph"), 60, what="pool ceph reachable again on h1")
        open(go, "w").close()
        wait_until(lambda: reachable(h1, "san1") is False, 60, what="san1 unreachable on h1")
        reason = pool_on(h1, "san1")["reason"]
        assert f"the iSCSI target {iqn} at {t.portal} cannot be used" in reason, reason
    finally:
        open(go, "w").close()  # a check still held lets go (h1's stop waits for it)
        t.stop()
