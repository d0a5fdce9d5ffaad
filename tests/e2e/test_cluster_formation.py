"""Forming a cluster (vireo cluster init/join/token/show/leave, vireo host
remove) on hosts of the multi-host harness, each a network namespace with
its own vireod, which brings its own etcd member and HTTPS listener once the
host is in a cluster."""

import json
import os
import sqlite3
import signal
import subprocess
import threading
import time

import pytest

from test_drs import etcd_keys, etcd_put
from vireo_harness import pid_alive, stop_process, wait_until


def init(h, *more):
    doc = h.cli_json("cluster", "init", "--address", h.address, *more)
    h.use_cluster_certs()
    return doc


def join(h, token_doc, via):
    doc = h.cli_json("cluster", "join", f"{via.address}:{via.port}", "--token",
                     token_doc["token"], "--address", h.address)
    h.use_cluster_certs()
    return doc


def show(h):
    return h.api("GET", "/v1/cluster")


def set_document(h, key, doc):
    """Writes (doc None: deletes) a document in h's SQLite store, h stopped
    meanwhile."""
    h.stop()
    db = sqlite3.connect(os.path.join(h.state_dir, "vireo.db"))
    try:
        with db:
            db.execute("DELETE FROM documents WHERE key = ?", (key,))
            if doc is not None:
                db.execute("INSERT INTO documents (key, mod_rev, create_rev, value) "
                           "VALUES (?, 1, 1, ?)", (key, json.dumps(doc)))
    finally:
        db.close()
    h.start()


def test_init_join_two_hosts(cluster):
    c = cluster(3, listen=False)
    h1, h2, h3 = c.hosts
    assert show(h1) == {"cluster": None}
    assert "standalone" in h1.cli("cluster", "show").stdout
    # Something on h1 before: a VM, a pool, a network.
    h1.task_ok("POST", "/v1/vms", {"name": "web1", "memory_mib": 64})
    doc = init(h1)
    assert doc["join_command"].startswith(f"vireo cluster join {h1.address}:8443 --token ")
    # h1's member started once: the init's, adopted by the vireod after it.
    assert h1.log().count("etcd member started") == 1, h1.log()[-3000:]
    assert "etcd member re-adopted" in h1.log()
    s = show(h1)
    assert s["cluster"]["id"] == doc["cluster"] and s["quorum"] is True
    assert [m["voting"] for m in s["etcd_members"]] == [True]
    assert h1.api("GET", "/v1/vms/web1")["name"] == "web1"
    # h2 joins.
    tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
    # From standard input (--token -): the token stays out of argv.
    h2.cli("cluster", "join", f"{h1.address}:{h1.port}", "--token", "-", "--address",
           h2.address, input=tok["token"] + "\n")
    h2.use_cluster_certs()
    s = show(h2)
    assert s["quorum"] is True
    assert sorted(m["name"] for m in s["etcd_members"]) == ["h1", "h2"]
    assert all(m["voting"] for m in s["etcd_members"])
    # h2's member started once, as a learner, and was promoted after the
    # commit: a voter stopped and started again would have left the two
    # hosts without a quorum meanwhile (h1's fence unable to renew).
    assert h2.log().count("etcd member started") == 1, h2.log()[-3000:]
    mark = os.path.join(h2.state_dir, "cluster", "etcd-promote")
    assert not os.path.exists(mark)
    # A vireod stopped after the promotion but before removing its mark:
    # the next start finds the member a voter already and removes it.
    h2_id = next(m["id"] for m in s["etcd_members"] if m["name"] == "h2")
    h2.stop()
    with open(mark, "w") as f:
        f.write(h2_id + "\n")
    h2.start()
    assert not os.path.exists(mark)
    assert all(m["voting"] for m in show(h2)["etcd_members"])
    # A mark naming a member the cluster no longer has (removed while a
    # learner): said once, not retried forever every 5 s.
    h2.stop()
    with open(mark, "w") as f:
        f.write("123\n")
    h2.start()
    assert "etcd member 123 is not in the cluster any more" in h2.log()
    assert "trying again every 5 s" not in h2.log()
    h2.stop()
    os.unlink(mark)
    h2.start()
    # A token admits one host: h2's, used again, is refused (401).
    r = h3.request("POST", "/v1/cluster/join", {"member": f"{h1.address}:8443",
                                                "token": tok["token"], "address": h3.address})
    assert r[0] == 401 and "already used" in r[1]["error"]["message"], r
    assert show(h3) == {"cluster": None}
    assert len(show(h1)["etcd_members"]) == 2
    # From a file (--token-file).
    tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
    path = os.path.join(h3.tmp, "join-token")
    with open(path, "w") as f:
        f.write(tok["token"] + "\n")
    h3.cli("cluster", "join", f"{h2.address}:{h2.port}", "--token-file", path, "--address",
           h3.address)
    os.unlink(path)
    h3.use_cluster_certs()
    for h in c.hosts:
        s = show(h)
        assert len(s["etcd_members"]) == 3 and all(m["voting"] and m["healthy"]
                                                   for m in s["etcd_members"])
        wait_until(lambda: sorted((x["name"], x["state"]) for x in
                                  h.api("GET", "/v1/hosts")["hosts"]) ==
                   [("h1", "online"), ("h2", "online"), ("h3", "online")], 20,
                   what=f"3 hosts online seen from {h.name}")


def test_join_refusals_leave_the_joiner_standalone(cluster):
    c = cluster(2, listen=False)
    h1, h2 = c.hosts
    h1.task_ok("POST", "/v1/vms", {"name": "web1", "memory_mib": 64})
    h1.api("POST", "/v1/networks", {"name": "lan", "type": "isolated",
                                        "subnet": "10.201.0.0/24"}, expect=201)
    doc = init(h1)
    # A token of the right cluster with a wrong secret: refused.
    bad = h2.cli("cluster", "join", f"{h1.address}:8443", "--token", doc["token"][:-6] + "AAAAAA",
                 "--address", h2.address, check=False)
    assert bad.returncode != 0
    assert "token" in bad.stderr, bad.stderr
    # Colliding VM name and network name: refused, naming both.
    h2.task_ok("POST", "/v1/vms", {"name": "web1", "memory_mib": 64})
    h2.api("POST", "/v1/networks", {"name": "lan", "type": "isolated",
                                        "subnet": "10.202.0.0/24"}, expect=201)
    p = h2.cli("cluster", "join", f"{h1.address}:8443", "--token", doc["token"],
               "--address", h2.address, check=False)
    assert p.returncode == 1, p.stdout
    assert "VM name 'web1' is taken (on h1)" in p.stderr
    assert "network name 'lan' is taken (on h1)" in p.stderr
    assert show(h2) == {"cluster": None}
    assert not os.path.exists(os.path.join(h2.state_dir, "cluster"))
    assert not os.path.exists(os.path.join(h2.state_dir, "cluster.new"))
    assert h2.etcd_pid() is None
    # Only the subnet overlaps: refused, naming it.
    h2.task_ok("DELETE", "/v1/vms/web1")
    assert h2.request("DELETE", "/v1/networks/lan")[0] < 300
    h2.api("POST", "/v1/networks", {"name": "lan2", "type": "isolated",
                                        "subnet": "10.201.0.0/25"}, expect=201)
    r = h2.request("POST", "/v1/cluster/join", {"member": f"{h1.address}:8443",
                                                "token": doc["token"], "address": h2.address})
    assert r[0] == 409, r
    assert "subnet 10.201.0.0/25 of network 'lan2' overlaps 10.201.0.0/24" in \
        r[1]["error"]["message"]
    # An rbd pool of h2's own named like a shared pool of the cluster (its
    # document put in h2's store: no Ceph is needed to describe one, only to
    # make one): refused, naming the pool and both places.
    shared = os.path.join(c.shared_dir, "ceph1")
    os.makedirs(shared)
    h1.api("POST", "/v1/pools", {"name": "ceph1", "path": shared, "shared": True}, expect=201)
    rbd_pool = {"name": "ceph1", "type": "rbd", "created_at": 1,
                "path": os.path.join(h2.state_dir, "rbd", "ceph1"),
                "rbd": {"monitors": "192.0.2.1", "pool": "vms", "user": "vireo"}}
    set_document(h2, "pools/ceph1", rbd_pool)
    r = h2.request("POST", "/v1/cluster/join", {"member": f"{h1.address}:8443",
                                                "token": doc["token"], "address": h2.address})
    assert r[0] == 409, r
    assert (f"pool name 'ceph1' is taken: the cluster has a shared pool 'ceph1' (dir at "
            f"{shared}), this host a pool 'ceph1' (rbd: Ceph pool vms at 192.0.2.1)") in \
        r[1]["error"]["message"], r
    assert show(h2) == {"cluster": None}
    set_document(h2, "pools/ceph1", None)
    # An expired token: refused by the joiner itself.
    tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 60}, expect=201)
    # The cluster forgets it once its lease ends; a bogus token id is the same.
    assert h2.request("DELETE", "/v1/networks/lan2")[0] < 300
    r = h2.request("POST", "/v1/cluster/join", {"member": f"{h1.address}:8443",
                                                "token": "e30", "address": h2.address})
    assert r[0] == 400, r
    # The good token still works after all the refusals.
    join(h2, tok, h1)
    assert show(h2)["quorum"] is True
    assert [m["name"] for m in show(h2)["etcd_members"]] == ["h1", "h2"] or \
        sorted(m["name"] for m in show(h2)["etcd_members"]) == ["h1", "h2"]


def test_join_etcd_port_taken_is_refused(cluster):
    """h2's etcd peer port taken: its member would start only after the
    commit and never run (a host joined with a learner nobody promotes);
    refused before the commit, the learner removed. The join tried again
    right after works the first time."""
    c = cluster(2, listen=False)
    h1, h2 = c.hosts
    init(h1)
    tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
    holder = subprocess.Popen(
        ["ip", "netns", "exec", h2.netns.name, "python3", "-c",
         "import socket, sys, time\n"
         "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
         f"s.bind(('{h2.address}', 2380)); s.listen(); print('ready', flush=True)\n"
         "time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        r = h2.request("POST", "/v1/cluster/join", {"member": f"{h1.address}:8443",
                                                    "token": tok["token"], "address": h2.address})
    finally:
        holder.kill()
        holder.wait()
    assert r[0] >= 400, r
    assert "cannot listen on peer port 2380" in r[1]["error"]["message"], r
    assert show(h2) == {"cluster": None}
    assert [m["name"] for m in show(h1)["etcd_members"]] == ["h1"]
    # Tried again at once (the port free): joins the first time, though
    # etcd may give the new learner the id of the one just removed.
    join(h2, h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201), h1)
    assert sorted(m["name"] for m in show(h1)["etcd_members"]) == ["h1", "h2"]


def test_etcd_supervised_and_quorum_loss(cluster):
    c = cluster(3, listen=False)
    h1, h2, h3 = c.hosts
    init(h1)
    for h in (h2, h3):
        tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
        join(h, tok, h1)
    # h2's etcd killed by PID: its vireod starts a new one.
    old = h2.etcd_pid()
    assert old
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: h2.etcd_pid() not in (None, old), 30, what="a new etcd on h2")
    wait_until(lambda: all(m["healthy"] for m in show(h2)["etcd_members"]), 30,
               what="etcd members healthy again")
    # A vireod restart adopts its running etcd (same pid).
    pid = h2.etcd_pid()
    h2.stop()
    assert pid_alive(pid)
    h2.start()
    assert h2.etcd_pid() == pid
    # Two etcds stopped: no quorum; a write on h1 answers 503 in bounded time.
    stopped = [h2.etcd_pid(), h3.etcd_pid()]
    try:
        for pid in stopped:
            stop_process(pid)  # every thread: a running one would answer
        t0 = time.monotonic()
        status, doc = h1.request("POST", "/v1/cluster/tokens", {"ttl_s": 600},
                                 timeout=60)[:2]
        assert status == 503, (status, doc)
        assert "cluster has no quorum" in doc["error"]["message"]
        assert time.monotonic() - t0 < 40
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    wait_until(lambda: h1.request("GET", "/v1/cluster")[1].get("quorum"), 30, what="quorum back")


def test_leave_and_host_remove(cluster):
    c = cluster(3, listen=False)
    h1, h2, h3 = c.hosts
    init(h1)
    for h in (h2, h3):
        tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
        join(h, tok, h1)
    h3.task_ok("POST", "/v1/vms", {"name": "on3", "memory_mib": 64, "host": "h3"})
    h3.task_ok("POST", "/v1/vms/on3/start")
    r = h3.request("POST", "/v1/cluster/leave", {})
    assert r[0] == 409 and "on3" in r[1]["error"]["message"], r
    h3.task_ok("POST", "/v1/vms/on3/stop", {"force": True})
    etcd3 = h3.etcd_pid()
    assert h3.cli_json("cluster", "leave") == {"left": True}
    assert show(h3) == {"cluster": None}
    assert h3.api("GET", "/v1/vms/on3")["name"] == "on3"  # back in SQLite
    assert not os.path.exists(os.path.join(h3.state_dir, "vireo.db.leaving"))
    h3.stop()
    h3.start()
    assert show(h3) == {"cluster": None}
    assert h3.api("GET", "/v1/vms/on3")["name"] == "on3"  # and durably so
    # Its documents and name went from etcd (through the other members).
    assert all(v["name"] != "on3" for v in h1.api("GET", "/v1/vms")["vms"])
    wait_until(lambda: not pid_alive(etcd3), 15, what="h3's etcd to stop")
    s = show(h1)
    assert sorted(m["name"] for m in s["etcd_members"]) == ["h1", "h2"]
    assert sorted(h["name"] for h in h1.api("GET", "/v1/hosts")["hosts"]) == ["h1", "h2"]
    # h2 dies; h1 removes it (a 2-member etcd without h2 has no quorum: h1
    # first removes the member through its own etcd... which needs quorum):
    # so h2's vireod stops but its etcd stays: it is "departed", not dead.
    # (Its fence process, which holds its record's lease, goes too: a
    # vireod stopped alone keeps its host online, docs/ha.md.)
    h2.stop()
    h2.kill_fence()
    wait_until(lambda: [h["state"] for h in h1.api("GET", "/v1/hosts")["hosts"]
                        if h["name"] == "h2"] == ["offline"], 20, what="h2 offline")
    h1.api("DELETE", "/v1/hosts/h2")
    assert [h["name"] for h in h1.api("GET", "/v1/hosts")["hosts"]] == ["h1"]
    assert [m["name"] for m in show(h1)["etcd_members"]] == ["h1"]


def test_leave_of_a_learner_that_never_started(cluster):
    """h2 joined, but its etcd never ran (it fails at every start): its
    member is a learner with no name. Its leave removes it all the same (by
    its peer URL), says so, and h2 is standalone again; so does a host
    remove of such a host."""
    c = cluster(2, listen=False)
    h1, h2 = c.hosts
    init(h1)
    h2.wrap_tool("etcd", "#!/bin/sh\necho 'etcd wrapper: failing on purpose' >&2\nexit 1\n")
    join(h2, h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201), h1)
    assert [(m["name"], m["voting"]) for m in show(h1)["etcd_members"]
            if not m["voting"]] == [("", False)]
    p = h2.cli("cluster", "leave")
    assert show(h2) == {"cluster": None}
    assert [(m["name"], m["voting"]) for m in show(h1)["etcd_members"]] == [("h1", True)]
    assert "etcd member had never started" in p.stdout, p.stdout
    assert sorted(h["name"] for h in h1.api("GET", "/v1/hosts")["hosts"]) == ["h1"]
    # The same learner of a host that is gone: its removal from another
    # host removes it too.
    join(h2, h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201), h1)
    assert [m["name"] for m in show(h1)["etcd_members"] if not m["voting"]] == [""]
    h2.stop()
    h2.kill_fence()
    wait_until(lambda: [h["state"] for h in h1.api("GET", "/v1/hosts")["hosts"]
                        if h["name"] == "h2"] == ["offline"], 20, what="h2 offline")
    h1.api("DELETE", "/v1/hosts/h2")
    assert [(m["name"], m["voting"]) for m in show(h1)["etcd_members"]] == [("h1", True)]


def test_host_remove_forgets_its_cluster_records(cluster):
    """A removed host's VM names, group memberships, addresses and MACs
    (the MAC index's claims) go with it: the group and the network can be
    deleted, the name and the MAC used again."""
    c = cluster(2, listen=False)
    h1, h2 = c.hosts
    init(h1)
    tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
    join(h2, tok, h1)
    h1.cli("group", "create", "g", "--policy", "spread")
    h1.api("POST", "/v1/networks", {"name": "lan", "type": "nat", "subnet": "10.89.0.0/24"},
           expect=201)
    wait_until(lambda: h2.request("GET", "/v1/networks/lan")[1].get("state") == "active", 30,
               what="lan active on h2")
    h2.task_ok("POST", "/v1/vms", {"name": "v2", "memory_mib": 64, "host": "h2", "group": "g",
                                   "networks": ["lan"]})
    assert [m["name"] for m in h1.api("GET", "/v1/groups/g")["members"]] == ["v2"]
    assert [a["name"] for a in h1.api("GET", "/v1/networks/lan")["addresses"]] == ["v2"]
    mac = h2.vm("v2")["nics"][0]["mac"]
    with open(os.path.join(h2.state_dir, "host-id")) as f:
        h2_id = f.read().strip()
    h2_mark = "vireo/cluster/mac-indexed/" + h2_id
    assert h2_mark in etcd_keys(h1, "cluster/mac-indexed/")
    # h2's vireod and fence stop (its etcd stays: the quorum needs it) and h1
    # removes it.
    h2.stop()
    h2.kill_fence()
    wait_until(lambda: [h["state"] for h in h1.api("GET", "/v1/hosts")["hosts"]
                        if h["name"] == "h2"] == ["offline"], 20, what="h2 offline")
    # And a VM without a document (a create cut short on h2, which h2's
    # start would have cleaned up): its relations name it, its MAC is held.
    ghost = "0e0e0e0e-0000-4000-8000-00000000e0e0"
    etcd_put(h1, f"h/{h2_id}/uses/images/gone/{ghost}", json.dumps({"vm": ghost, "name": "g"}))
    etcd_put(h1, "cluster/claims/macs/52:54:00:0e:00:01", json.dumps({"vm": "g", "vm_id": ghost}))
    h1.api("DELETE", "/v1/hosts/h2")
    assert etcd_keys(h1, "cluster/claims/macs/52:54:00:0e") == []
    assert h1.api("GET", "/v1/groups/g")["members"] == []
    assert h1.api("GET", "/v1/networks/lan")["addresses"] == []
    # Its mark goes too: the same host joining again is not taken for one
    # whose VMs are in the MAC index before its start entered them.
    assert h2_mark not in etcd_keys(h1, "cluster/mac-indexed/")
    h1.task_ok("POST", "/v1/vms", {"name": "v2", "memory_mib": 64, "host": "h1",
                                   "networks": ["user"], "macs": [mac]})
    h1.task_ok("DELETE", "/v1/vms/v2")
    assert h1.request("DELETE", "/v1/groups/g")[0] < 300
    st, doc = h1.request("DELETE", "/v1/networks/lan")
    assert st < 300, doc


def test_stale_learner_does_not_block_joins(cluster):
    """A learner whose joiner died after its admission (added, never
    started) would take etcd's one learner slot for good: the next join
    removes it."""
    c = cluster(2, listen=False)
    h1, h2 = c.hosts
    init(h1)
    d = os.path.join(h1.state_dir, "cluster")
    h1.ns("env", "ETCDCTL_API=3", "etcdctl", f"--endpoints=https://{h1.address}:2379",
          f"--cacert={d}/ca.crt", f"--cert={d}/host.crt", f"--key={d}/host.key",
          "member", "add", "ghost", "--learner", "--peer-urls=https://10.254.254.254:2380")
    assert [(m["name"], m["voting"]) for m in show(h1)["etcd_members"]
            if not m["voting"]] == [("", False)]
    tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
    join(h2, tok, h1)
    members = show(h1)["etcd_members"]
    assert sorted(m["name"] for m in members) == ["h1", "h2"], members
    assert all(m["voting"] for m in members)


def test_one_host_cluster_cannot_be_left(cluster):
    c = cluster(1, listen=False)
    h1, = c.hosts
    h1.task_ok("POST", "/v1/vms", {"name": "web1", "memory_mib": 64})
    init(h1)
    etcd = h1.etcd_pid()
    # The lease holders run favoured (docs/ha.md): etcd and vireo-fence at nice -10
    wait_until(h1.fence_pid, 30, what="the fence process")
    for pid in (etcd, h1.fence_pid()):
        with open(f"/proc/{pid}/stat") as f:
            nice = int(f.read().rsplit(")", 1)[1].split()[16])
        assert nice == -10, (pid, nice)
    r = h1.request("POST", "/v1/cluster/leave", {})
    assert r[0] == 409, r
    assert "a one-host cluster cannot be left" in r[1]["error"]["message"], r
    p = h1.cli("cluster", "leave", check=False)
    assert p.returncode != 0 and "one-host cluster" in p.stderr, p.stderr
    # Nothing changed: still a cluster, its documents there, it still works.
    assert show(h1)["quorum"] is True
    assert h1.etcd_pid() == etcd
    assert h1.api("GET", "/v1/vms/web1")["name"] == "web1"
    h1.task_ok("POST", "/v1/vms", {"name": "web2", "memory_mib": 64})
    assert not os.path.exists(os.path.join(h1.state_dir, "vireo.db.leaving"))
    # A leave that did not commit (STATE/cluster still there) left its
    # SQLite copy: the next start removes it, the host stays in the cluster.
    h1.stop()
    with open(os.path.join(h1.state_dir, "vireo.db.leaving"), "w") as f:
        f.write("left by a leave cut short")
    h1.start()
    assert not os.path.exists(os.path.join(h1.state_dir, "vireo.db.leaving"))
    assert show(h1)["quorum"] is True
    assert h1.api("GET", "/v1/vms/web2")["name"] == "web2"


def test_committed_leave_finished_at_start(cluster):
    """A leave committed (STATE/cluster moved aside) but cut short before its
    SQLite copy was moved into place: the next start moves it."""
    c = cluster(1, listen=False)
    h1, = c.hosts
    h1.task_ok("POST", "/v1/vms", {"name": "kept", "memory_mib": 64})
    h1.stop()
    db = os.path.join(h1.state_dir, "vireo.db")
    copy = os.path.join(h1.state_dir, "copy.db")
    src, dst = sqlite3.connect(db), sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    h1.start()
    h1.task_ok("POST", "/v1/vms", {"name": "later", "memory_mib": 64})
    h1.stop()
    os.rename(copy, db + ".leaving")
    h1.start()
    assert not os.path.exists(db + ".leaving")
    assert h1.api("GET", "/v1/vms/kept")["name"] == "kept"
    assert h1.request("GET", "/v1/vms/later")[0] == 404
    h1.task_ok("POST", "/v1/vms", {"name": "after", "memory_mib": 64})


def test_unfinished_init_removed_at_start(cluster):
    """vireod killed during an init, its etcd member running, leaves
    STATE/cluster with its mark and without cluster.json: the next start
    stops that member and removes the folder, and the host is standalone.
    So does an empty STATE/cluster (killed before the mark was made)."""
    c = cluster(1, listen=False)
    h1, = c.hosts
    h1.task_ok("POST", "/v1/vms", {"name": "web1", "memory_mib": 64})
    d = os.path.join(h1.state_dir, "cluster")
    # Its member held 4 s before etcd runs: the init waits for its health.
    h1.wrap_tool("etcd", "#!/bin/sh\nsleep 4\nexec {real} \"$@\"\n")
    t = threading.Thread(target=h1.cli, args=("cluster", "init", "--address", h1.address),
                         kwargs={"check": False})
    t.start()
    etcd = wait_until(h1.etcd_pid, 60, what="the init's etcd member to start")
    h1.kill9()
    t.join()
    assert os.path.exists(os.path.join(d, "init-unfinished"))
    h1.start()
    wait_until(lambda: not pid_alive(etcd), 10, what="the init's etcd member to be stopped")
    assert not os.path.exists(d)
    assert show(h1) == {"cluster": None}
    assert h1.api("GET", "/v1/vms/web1")["name"] == "web1"
    h1.stop()
    os.makedirs(d)
    h1.start()
    assert not os.path.exists(d)
    init(h1)
    assert show(h1)["quorum"] is True


def test_init_failure_leaves_host_standalone(cluster):
    c = cluster(1, listen=False)
    h1, = c.hosts
    h1.task_ok("POST", "/v1/vms", {"name": "web1", "memory_mib": 64})
    h1.wrap_tool("etcd", "#!/bin/sh\necho 'etcd wrapper: failing on purpose' >&2\nexit 1\n")
    r = h1.request("POST", "/v1/cluster/init", {"address": h1.address}, timeout=60)
    assert r[0] >= 500 or r[0] == 409, r
    assert show(h1) == {"cluster": None}
    assert not os.path.exists(os.path.join(h1.state_dir, "cluster"))
    assert not os.path.exists(os.path.join(h1.state_dir, "cluster.new"))
    assert h1.api("GET", "/v1/vms/web1")["name"] == "web1"
    h1.task_ok("POST", "/v1/vms", {"name": "web2", "memory_mib": 64})


def test_init_keeps_a_running_tcg_vm(cluster):
    c = cluster(1, driver="qemu", listen=False)
    h1, = c.hosts
    # What init must keep is the QEMU process and vireod's hold on it, not
    # the guest: a blank disk (its firmware idles), no Linux boot under TCG.
    h1.task_ok("POST", "/v1/vms", {"name": "g1", "memory_mib": 64, "blank": True,
                                   "disk_size_bytes": 16 << 20})
    h1.task_ok("POST", "/v1/vms/g1/start")
    vm = h1.vm("g1")
    assert vm["state"] == "running", vm
    pid = vm["pid"]
    h1.qemu_pids.add(pid)
    vireod = h1.proc.pid
    init(h1)
    assert h1.proc.pid == vireod and h1.proc.poll() is None  # re-executed in place
    after = h1.vm("g1")
    assert after["state"] == "running" and after["pid"] == pid
    assert pid_alive(pid)
    # Its documents are in etcd now (cluster mode) and it is still managed.
    assert show(h1)["quorum"] is True
    h1.task_ok("POST", "/v1/vms/g1/stop", {"force": True})
    wait_until(lambda: not pid_alive(pid), 30, what="QEMU to exit")
