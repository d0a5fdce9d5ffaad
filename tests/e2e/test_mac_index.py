"""The cluster's MAC index (daemon/mac-claims.h): `vm create --mac` checks and
claims each NIC's MAC as `vm nic add --mac` does; every MAC a VM holds is a
held claim cluster/claims/macs/<mac>, made by the VM's write, gone with the
NIC or the VM, kept through a move; a generated MAC another host's VM holds
is drawn again; a start enters the VMs from before the index; a joiner's
MACs are checked and entered at its join; entries whose VM is gone
(ghosts) are taken over and swept."""
import json
import os
import sqlite3
import threading

from test_drs import etcdctl, etcd_keys
from test_vm_import import two_hosts_with_faults
from vireo_harness import Daemon, fake_daemon_with_faults, wait_until

CLAIMS = "cluster/claims/macs/"


def sql(d, query, *args):
    db = sqlite3.connect(os.path.join(d.state_dir, "vireo.db"), timeout=30)
    try:
        with db:
            return db.execute(query, args).fetchall()
    finally:
        db.close()


def claims(d):
    """The MAC index of a standalone vireod: {mac: (doc, lease)}."""
    rows = sql(d, "SELECT key, value, lease FROM documents WHERE key LIKE ?", CLAIMS + "%")
    return {k[len(CLAIMS):]: (json.loads(v), lease) for k, v, lease in rows}


def index(h):
    """A cluster's MAC index, read from etcd through host h: {mac: doc}."""
    lines = etcdctl(h, "get", "--prefix", "vireo/" + CLAIMS).split()
    return {k[len("vireo/" + CLAIMS):]: json.loads(v) for k, v in zip(lines[::2], lines[1::2])}


def refused(d, body, status):
    got, doc = d.request("POST", "/v1/vms", body)
    assert got == status, (got, doc)
    assert d.request("GET", f"/v1/vms/{body['name']}")[0] == 404  # nothing made
    return doc["error"]["message"]


def test_create_macs_checked_and_indexed(tmp_path):
    d = Daemon(driver="fake")
    try:
        base = {"name": "x", "memory_mib": 64, "networks": ["user", "user"]}
        for macs, words in ((["01:00:5e:00:00:01"], "macs[0]: '01:00:5e:00:00:01' is not a "
                                                    "unicast MAC"),
                            ([None, "00:00:00:00:00:00"], "macs[1]: 00:00:00:00:00:00 is no "
                                                          "address"),
                            (["52:54:00:0d:00:0"], "is not a unicast MAC"),
                            (["52:54:00:0d:00:09", "52:54:00:0D:00:09"],
                             "macs[1]: 52:54:00:0D:00:09 is given to two of the VM's NICs"),
                            ([None, None, "52:54:00:0d:00:09"], "macs: 3 MACs for 2 NICs"),
                            ([7], "macs[0]: expected a MAC")):
            assert words in refused(d, {**base, "macs": macs}, 400)
        assert refused(d, {**base, "macs": "52:54:00:0d:00:09"}, 400).startswith("macs:")
        assert claims(d) == {}  # no claim left by a refusal

        out = d.cli("vm", "create", "a", "--memory", "64M", "--network", "user", "--network",
                    "user", "--mac", "auto", "--mac", "52:54:00:0D:00:01").stdout
        assert "created" in out, out
        a = d.vm("a")
        macs = [n["mac"] for n in a["nics"]]
        assert macs[1] == "52:54:00:0d:00:01" and macs[0].startswith("52:54:00:"), macs
        # Both held by the VM, permanent (no lease), one key read each.
        assert claims(d) == {m: ({"vm": "a", "vm_id": a["id"]}, 0) for m in macs}

        d.task_ok("POST", "/v1/vms", {"name": "b", "memory_mib": 64, "networks": ["user"]})
        msg = refused(d, {"name": "c", "memory_mib": 64, "networks": ["user"],
                          "macs": ["52:54:00:0d:00:01"]}, 409)
        assert "macs[0]: 52:54:00:0d:00:01 is already used by VM 'a'" in msg, msg
        status, doc = d.request("POST", "/v1/vms/b/nics", {"network": "user",
                                                           "mac": "52:54:00:0d:00:01"})
        assert status == 409 and "mac: 52:54:00:0d:00:01 is already used by VM 'a'" in \
            doc["error"]["message"], doc
        assert set(claims(d)) == set(macs) | {d.vm("b")["nics"][0]["mac"]}

        # A MAC refused after its claim was made (a NIC of this host has it,
        # its index entry lost): the claim goes with the refusal (before, it
        # stayed, renewed, until vireod stopped: "being given to VM 'b'").
        bmac = d.vm("b")["nics"][0]["mac"]
        row = sql(d, "SELECT * FROM documents WHERE key = ?", CLAIMS + bmac)
        sql(d, "DELETE FROM documents WHERE key = ?", CLAIMS + bmac)
        status, doc = d.request("POST", "/v1/vms/b/nics", {"network": "user",
                                                           "mac": bmac.upper()})
        assert status == 409 and "is already used by a NIC on this host" in \
            doc["error"]["message"], doc
        assert bmac not in claims(d)
        sql(d, "INSERT INTO documents VALUES (?, ?, ?, ?, ?)", *row[0])

        # A NIC removed, a VM deleted: their MACs are free again.
        d.task_ok("DELETE", "/v1/vms/a/nics/1")
        assert "52:54:00:0d:00:01" not in claims(d)
        # Kept in lower case, as the index's key (before, as given).
        d.task_ok("POST", "/v1/vms/b/nics", {"network": "user", "mac": "52:54:00:0D:00:01"})
        assert d.vm("b")["nics"][1]["mac"] == "52:54:00:0d:00:01"
        d.task_ok("DELETE", "/v1/vms/a")
        assert macs[0] not in claims(d)
        b = d.vm("b")

        # A VM whose document went under it (an HA move while its host was
        # cut off): its delete leaves its MAC's entry, another VM's by now
        # (before, it deleted it).
        d.task_ok("POST", "/v1/vms", {"name": "c", "memory_mib": 64, "networks": ["user"]})
        c = d.vm("c")
        cmac = c["nics"][0]["mac"]
        other = {"vm": "o", "vm_id": "0e0e0e0e-0000-4000-8000-00000000e0e0"}
        sql(d, "DELETE FROM documents WHERE key = ?", "vms/" + c["id"])
        sql(d, "UPDATE documents SET value = ? WHERE key = ?",
            json.dumps(other, sort_keys=True, separators=(",", ":")), CLAIMS + cmac)
        d.task_ok("DELETE", "/v1/vms/c")
        assert claims(d)[cmac] == (other, 0)
        sql(d, "DELETE FROM documents WHERE key = ?", CLAIMS + cmac)

        # A state from before the index: the start enters its VMs, once.
        d.stop()
        sql(d, "DELETE FROM documents WHERE key LIKE ? OR key LIKE ?", CLAIMS + "%",
            "cluster/mac-indexed/%")
        # One of its MACs being given to another VM meanwhile (a claim in
        # progress, as another host's create makes it): the VM is not in the
        # index yet, so the host is not marked (before, it was: another host
        # then skipped its VMs' documents and could give the MAC again).
        busy = CLAIMS + b["nics"][0]["mac"]
        sql(d, "INSERT INTO documents (key, mod_rev, create_rev, lease, value) SELECT ?, "
            "value, value, 0, ? FROM meta WHERE key = 'revision'", busy,
            json.dumps({"host": "elsewhere", "host_name": "h9", "vm": "z"}))
        d.start()
        assert sql(d, "SELECT key FROM documents WHERE key LIKE 'cluster/mac-indexed/%'") == []
        assert claims(d)[b["nics"][0]["mac"]] == ({"host": "elsewhere", "host_name": "h9",
                                                   "vm": "z"}, 0)
        d.stop()
        sql(d, "DELETE FROM documents WHERE key = ?", busy)  # that change ended
        d.start()
        assert claims(d) == {n["mac"]: ({"vm": "b", "vm_id": b["id"]}, 0) for n in b["nics"]}
        assert len(sql(d, "SELECT key FROM documents WHERE key LIKE 'cluster/mac-indexed/%'")) == 1
        # An entry of a VM that is gone (a ghost) on one of its MACs: the
        # start takes it over (before: logged as another VM's, left to it).
        d.stop()
        sql(d, "UPDATE documents SET value = ? WHERE key = ?",
            json.dumps({"vm": "gone", "vm_id": "0e0e0e0e-0000-4000-8000-00000000e0e2"}),
            CLAIMS + b["nics"][0]["mac"])
        d.start()
        assert claims(d) == {n["mac"]: ({"vm": "b", "vm_id": b["id"]}, 0) for n in b["nics"]}
        # That ghost swept (gone) while the start takes it over: its MAC is
        # entered new (before: logged as the gone VM's, the MAC in no entry
        # and the host marked as indexed, so another VM could be given it).
        d.stop()
        ghost_key = CLAIMS + b["nics"][0]["mac"]
        sql(d, "UPDATE documents SET value = ? WHERE key = ?",
            json.dumps({"vm": "gone", "vm_id": "0e0e0e0e-0000-4000-8000-00000000e0e2"}),
            ghost_key)
        faults = tmp_path / "store-faults"
        faults.mkdir()
        hold = faults / ("put@" + ghost_key.replace("/", "+") + ".hold")
        hold.touch()
        d.env = {**(d.env or {}), "VIREO_TEST_STORE_FAULTS": str(faults)}
        starting = threading.Thread(target=d.start, kwargs={"timeout": 180})
        starting.start()
        try:  # the take-over's transaction held: the sweep deletes the ghost
            wait_until(lambda: hold.with_suffix(".held").exists(), 120, what="the take-over")
            sql(d, "DELETE FROM documents WHERE key = ?", ghost_key)
        finally:
            hold.unlink()
            starting.join()
        assert claims(d) == {n["mac"]: ({"vm": "b", "vm_id": b["id"]}, 0) for n in b["nics"]}
        assert len(sql(d, "SELECT key FROM documents WHERE key LIKE 'cluster/mac-indexed/%'")) == 1
        d.task_ok("DELETE", "/v1/vms/b")
        assert claims(d) == {}  # the entered ones are the VM's, gone with it
    finally:
        d.cleanup()


def test_generated_macs_unique_in_the_cluster(cluster, tmp_path, monkeypatch):
    """A generated MAC that another host's VM holds is drawn again (before,
    it was checked against this host's NICs only); a MAC asked for is
    refused naming the VM and its host, as read from the index, which a
    move leaves as it is and a delete empties."""
    faults = [str(tmp_path / f"faults{i}") for i in (1, 2)]
    for f in faults:
        os.makedirs(f)
    h1, h2 = two_hosts_with_faults(cluster, monkeypatch, faults)

    def create(h, name, **more):
        body = {"name": name, "memory_mib": 64, "host": h.name, "networks": ["user"], **more}
        answers = []  # 503: no confirmed manager yet
        wait_until(lambda: answers.append(h.request("POST", "/v1/vms", body)) or
                   answers[-1][0] != 503, 30, interval=0.5, what="a confirmed manager")
        status, doc = answers[-1]
        assert status == 202, doc
        assert h.wait_task(doc["task"])["state"] == "succeeded"

    create(h1, "m1")
    m1 = h1.vm("m1")
    taken = m1["nics"][0]["mac"]
    assert index(h1) == {taken: {"vm": "m1", "vm_id": m1["id"]}}
    assert len(etcd_keys(h1, "cluster/mac-indexed/")) == 2  # both hosts' VMs are in it

    # h2 draws h1's VM's MAC first: the claim refuses it, the next is taken.
    with open(os.path.join(faults[1], "mac-draws"), "w") as f:
        f.write(f"{taken}\n52:54:00:0d:01:02\n")
    create(h2, "m2")
    assert h2.vm("m2")["nics"][0]["mac"] == "52:54:00:0d:01:02"
    assert not os.path.exists(os.path.join(faults[1], "mac-draws"))

    status, doc = h2.request("POST", "/v1/vms", {"name": "m3", "memory_mib": 64, "host": "h2",
                                                 "networks": ["user"], "macs": [taken]})
    assert status == 409 and f"macs[0]: {taken} is already used by VM 'm1' on host 'h1'" in \
        doc["error"]["message"], doc

    # Moved, the VM keeps its MAC's claim; deleted, it frees it.
    out = h1.cli("vm", "move", "m1", "--to", "h2", timeout=300).stdout
    assert "moved to h2" in out, out
    assert index(h1)[taken] == {"vm": "m1", "vm_id": m1["id"]}
    status, doc = h2.request("POST", "/v1/vms/m2/nics", {"network": "user", "mac": taken})
    assert status == 409 and f"mac: {taken} is already used by VM 'm1' on host 'h2'" in \
        doc["error"]["message"], doc
    h2.task_ok("DELETE", "/v1/vms/m1")
    assert taken not in index(h1)
    create(h1, "m3", macs=[taken])
    m3 = h1.vm("m3")
    assert m3["nics"][0]["mac"] == taken

    # A VM not in the index (as an older host's) moved to a host that is:
    # its MACs are entered there (before, its new host took them for held
    # and every host, marked as indexed, gave the MAC again).
    etcdctl(h1, "del", "vireo/" + CLAIMS + taken)
    out = h1.cli("vm", "move", "m3", "--to", "h2", timeout=300).stdout
    assert "moved to h2" in out, out
    assert index(h1)[taken] == {"vm": "m3", "vm_id": m3["id"]}
    status, doc = h1.request("POST", "/v1/vms", {"name": "m4", "memory_mib": 64, "host": "h1",
                                                 "networks": ["user"], "macs": [taken]})
    assert status == 409 and f"macs[0]: {taken} is already used by VM 'm3'" in \
        doc["error"]["message"], doc


def test_generated_mac_not_claimed_is_refused(tmp_path):
    """A store error while claiming a generated MAC fails the create and the
    NIC add with 503, nothing made (before: 500 "Input/output error")."""
    d, faults, store_faults = fake_daemon_with_faults(tmp_path)
    try:
        mac = "52:54:00:0d:0f:01"

        def fail_next_claim():
            (faults / "mac-draws").write_text(mac + "\n")
            (store_faults / ("put@" + (CLAIMS + mac).replace("/", "+"))).write_text("1 EIO")

        def once(path, body):  # not retried on 503 (Retry-After) as request() is
            status, doc, retry_after = d._request_once("POST", path, body, None, None, 30)
            assert status == 503 and retry_after and "cannot claim a new MAC in the store" \
                in doc["error"]["message"], (status, doc)

        fail_next_claim()
        once("/v1/vms", {"name": "x", "memory_mib": 64, "networks": ["user"]})
        assert d.request("GET", "/v1/vms/x")[0] == 404
        d.task_ok("POST", "/v1/vms", {"name": "y", "memory_mib": 64, "networks": ["user"]})
        fail_next_claim()
        once("/v1/vms/y/nics", {"network": "user"})
        assert len(d.vm("y")["nics"]) == 1 and mac not in claims(d)
        # An import whose NIC needs a new MAC (its source's is all zeros):
        # the task fails (before: the VM was made with an unclaimed MAC).
        from test_vm_import import domain_with_mac
        fail_next_claim()
        status, doc = d.request("POST", "/v1/vm-imports", {
            "source": "libvirt", "name": "imp", "network": "user",
            "path": domain_with_mac(tmp_path, "imp", "00:00:00:00:00:00")})
        assert status == 202, doc
        task = d.wait_task(doc["task"])
        assert task["state"] == "failed" and "cannot claim a new MAC address for NIC 1 in " \
            "the store" in task["error"]["message"], task
        assert d.request("GET", "/v1/vms/imp")[0] == 404 and mac not in claims(d)
    finally:
        d.cleanup()


def test_join_checks_and_enters_macs_and_ghosts_go(cluster, tmp_path, monkeypatch):
    """A joiner whose VM has a MAC a cluster VM holds is refused before
    anything changes, naming both VMs and the MAC (before: admitted, two
    VMs with one MAC); one that joins has its MACs in the index from its
    join's copy (before: from its next start). An index entry whose VM is
    gone (an older host's delete, a crash) is taken over by a claim of its
    MAC (before: 409 forever) and removed by the manager's sweep."""
    faults = [str(tmp_path / f"faults{i}") for i in (1, 2)]
    for f in faults:
        os.makedirs(f)
    monkeypatch.setenv("VIREO_TEST_MAC_SWEEP_MS", "1000")
    monkeypatch.setenv("VIREO_FAKE_FAULTS", faults[0])
    c = cluster(1, driver="fake", listen=False)
    monkeypatch.setenv("VIREO_FAKE_FAULTS", faults[1])
    c.add_host()
    h1, h2 = c.hosts
    h1.cli_json("cluster", "init", "--address", h1.address)
    h1.use_cluster_certs()
    shared, own = "52:54:00:0d:0e:01", "52:54:00:0d:0e:02"
    h1.task_ok("POST", "/v1/vms", {"name": "a", "memory_mib": 64, "networks": ["user"],
                                   "macs": [shared]})
    h2.task_ok("POST", "/v1/vms", {"name": "b", "memory_mib": 64, "networks": ["user"],
                                   "macs": [shared]})

    def join(check=True):
        tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
        return h2.cli("cluster", "join", f"{h1.address}:{h1.port}", "--token", tok["token"],
                      "--address", h2.address, check=check)

    p = join(check=False)
    assert p.returncode != 0 and f"MAC {shared} of VM 'b' is VM 'a''s (on h1)" in p.stderr, \
        p.stderr
    bid = h2.vm("b")["id"]  # nothing of h2's in the cluster
    assert not [k for k in etcd_keys(h1, "") if bid in k], etcd_keys(h1, "")

    # Another MAC: admitted; its MAC is in the index once the copy is made,
    # before the joiner's start (held there). An entry of that MAC whose VM
    # is gone (a ghost, the sweep held) is removed by the admission (before:
    # the join was refused, "is VM 'gone''s", until the sweep came by).
    h2.task_ok("DELETE", "/v1/vms/b/nics/0")
    h2.task_ok("POST", "/v1/vms/b/nics", {"network": "user", "mac": own})
    b = h2.vm("b")
    ghost = json.dumps({"vm": "gone", "vm_id": "0e0e0e0e-0000-4000-8000-00000000e0e1"},
                       separators=(",", ":"))  # no blank: index() splits etcdctl's words
    sweep_hold = os.path.join(faults[0], "mac_ghosts_sweep.hold")
    open(sweep_hold, "w").close()
    wait_until(lambda: os.path.exists(os.path.join(faults[0], "mac_ghosts_sweep.held")), 60,
               what="the sweep held")
    etcdctl(h1, "put", "vireo/" + CLAIMS + own, ghost)
    open(os.path.join(faults[1], "cluster_join_copied.hold"), "w").close()
    joined = []
    t = threading.Thread(target=lambda: joined.append(join()))
    t.start()
    held = os.path.join(faults[1], "cluster_join_copied.held")
    wait_until(lambda: os.path.exists(held) or not t.is_alive(), 120, what="the join's copy")
    try:
        assert index(h1).get(own) == {"vm": "b", "vm_id": b["id"]}, index(h1)
    finally:
        os.remove(os.path.join(faults[1], "cluster_join_copied.hold"))
        t.join()
        os.remove(sweep_hold)
    assert joined, "the join failed"
    h2.use_cluster_certs()
    wait_until(lambda: index(h1).get(own) == {"vm": "b", "vm_id": b["id"]}, 60,
               what="b's MAC in the index")

    # Ghosts: a VM deleted by an older host left its entry.
    etcdctl(h1, "put", "vireo/" + CLAIMS + "52:54:00:0d:0e:03", ghost)
    status, doc = h2.request("POST", "/v1/vms", {"name": "c", "memory_mib": 64, "host": "h2",
                                                 "networks": ["user"],
                                                 "macs": ["52:54:00:0d:0e:03"]})
    assert status == 202, doc
    assert h2.wait_task(doc["task"])["state"] == "succeeded"
    cvm = h2.vm("c")
    assert index(h1)["52:54:00:0d:0e:03"] == {"vm": "c", "vm_id": cvm["id"]}
    etcdctl(h1, "put", "vireo/" + CLAIMS + "52:54:00:0d:0e:04", ghost)
    wait_until(lambda: "52:54:00:0d:0e:04" not in index(h1), 60, what="the sweep")
    # The living VMs' entries stay.
    assert index(h1)[shared]["vm"] == "a" and index(h1)[own]["vm"] == "b"


def test_revert_and_restore_bring_no_mac_back(tmp_path):
    """A snapshot revert and a backup restore over the VM put its disks back,
    not its definition: a NIC removed since stays removed, so its MAC is
    free (another VM takes it) and nothing needs claiming there. Should
    either ever bring NICs back, it must claim their MACs first (this test
    then fails: mac-claims.h)."""
    d = Daemon(driver="fake")
    try:
        backups = tmp_path / "backups"
        backups.mkdir()
        d.api("POST", "/v1/pools", {"name": "b", "type": "backup", "path": str(backups)},
              expect=201)
        d.task_ok("POST", "/v1/vms", {"name": "v", "memory_mib": 64,
                                      "networks": ["user", "user", "user"]})
        macs = [n["mac"] for n in d.vm("v")["nics"]]
        d.task_ok("POST", "/v1/vms/v/snapshots", {"name": "s1"})
        d.task_ok("DELETE", "/v1/vms/v/nics/2")
        d.task_ok("POST", "/v1/vms/v/snapshots/s1/revert", {})
        assert [n["mac"] for n in d.vm("v")["nics"]] == macs[:2]
        d.task_ok("POST", "/v1/vms", {"name": "w", "memory_mib": 64, "networks": ["user"],
                                      "macs": [macs[2]]})
        d.task_ok("POST", "/v1/vms/v/backups", {"pool": "b"})
        backup = d.api("GET", "/v1/backups")[0]["id"]
        d.task_ok("DELETE", "/v1/vms/v/nics/1")
        d.task_ok("POST", f"/v1/backups/{backup}/restore", {})
        assert [n["mac"] for n in d.vm("v")["nics"]] == macs[:1]
        assert set(claims(d)) == {macs[0], macs[2]} and claims(d)[macs[2]][0]["vm"] == "w"
        d.task_ok("POST", "/v1/vms/w/nics", {"network": "user", "mac": macs[1]})
    finally:
        d.cleanup()
