"""Any door: every host of a cluster answers for the whole cluster
(docs/internals.md, "Any door"). On clusters formed with `vireo cluster
init/join` in the multi-host harness: every host lists every VM with its
HOST; a VM of another host is started, stopped, renamed, deleted and its
tasks read and cancelled through any host (forwarded over mutual TLS); the
event stream of one host carries the others' changes; VM names are unique
in the cluster (a race of two creates on two hosts makes one VM); a host
cut off is listed offline with its VMs and a request for them names it.
The console of a real TCG guest on h2 is used through h1."""

import contextlib
import json
import os
import signal
import threading
import time

from vireo_harness import BOOT_MARKER, race, wait_until


def form(c):
    """init on the first host, the others join through it."""
    first = c.hosts[0]
    first.cli("cluster", "init", "--address", first.address, "--output", "json")
    first.use_cluster_certs()
    for h in c.hosts[1:]:
        tok = first.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
        h.cli("cluster", "join", f"{first.address}:{first.port}", "--token", tok["token"],
              "--address", h.address, "--output", "json")
        h.use_cluster_certs()
    names = sorted(h.name for h in c.hosts)
    for h in c.hosts:
        wait_until(lambda: sorted(x["name"] for x in h.api("GET", "/v1/hosts")["hosts"]
                                  if x["state"] == "online") == names, 30,
                   what=f"every host online seen from {h.name}")


def listed(h, query=""):
    return {v["name"]: v for v in h.api("GET", f"/v1/vms?view=summary{query}")["vms"]}


def create(h, name):
    """A VM made on h itself (pinned: a create without "host" is placed by
    the manager on any host)."""
    return h.task_ok("POST", "/v1/vms", {"name": name, "memory_mib": 64, "host": h.name})["vm"]


def events_since(h, rev, kind="vm"):
    """The events of h's stream after rev, up to now (follow=false)."""
    status, text = h.request("GET", f"/v1/events?kind={kind}&since={rev}&follow=false")
    assert status == 200, text
    out = []
    for block in text.split("\n\n"):
        data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


def current_rev(h):
    """The store's revision now (the one an event stream starts after)."""
    text = h.request("GET", "/v1/events?follow=false")[1]
    return int(text.split("after revision ")[1].split("\n")[0])


@contextlib.contextmanager
def api_unreachable(h):
    """h stays online (its record renewed) but its peers' API port answers
    every connection with a reset (an nft table in its namespace)."""
    h.ns("nft", "add", "table", "inet", "anydoor_test")
    try:
        h.ns("nft", "add", "chain", "inet", "anydoor_test", "in",
             "{ type filter hook input priority 0; }")
        h.ns("nft", "add", "rule", "inet", "anydoor_test", "in", "tcp", "dport",
             str(h.port), "reject", "with", "tcp", "reset")
        yield
    finally:
        h.ns("nft", "delete", "table", "inet", "anydoor_test", check=False)


def test_any_host_serves_every_vm(cluster):
    c = cluster(3, listen=False)
    h1, h2, h3 = c.hosts
    form(c)
    a1, b2, d3 = create(h1, "a1"), create(h2, "b2"), create(h3, "d3")

    # Every host lists every VM, with the host that has it.
    for h in c.hosts:
        vms = listed(h)
        assert {n: v["host"] for n, v in vms.items()} == {"a1": "h1", "b2": "h2", "d3": "h3"}
        assert all(v["host_state"] == "online" for v in vms.values())
        table = h.cli("vm", "list").stdout.splitlines()
        assert table[0].split()[:3] == ["NAME", "HOST", "STATE"]
        assert [line.split()[:2] for line in table[1:]] == [["a1", "h1"], ["b2", "h2"],
                                                           ["d3", "h3"]]
    assert list(listed(h1, "&host=h2")) == ["b2"]
    assert list(listed(h2, "&host=h2")) == ["b2"]
    assert h1.cli_json("vm", "list", "--host", "h3")["vms"][0]["name"] == "d3"
    status, doc = h1.request("GET", "/v1/vms?host=nope")
    assert status == 400 and "nope" in doc["error"]["message"]

    # h2's VM through h1: show (by name and by id), start (the CLI follows
    # the task, which runs on h2, through h1's event stream), stop.
    assert h1.vm("b2")["host"] == "h2"
    assert h1.vm(b2["id"])["name"] == "b2"
    rev = current_rev(h1)
    p = h1.cli("vm", "start", "b2", timeout=120)
    assert h2.vm("b2")["state"] == "running", p.stdout
    assert h1.vm("b2")["state"] == "running"
    stop = h1.api("POST", "/v1/vms/b2/stop", {}, expect=202)["task"]
    t = wait_until(lambda: (lambda x: x if x["state"] in ("succeeded", "failed") else None)(
        h3.api("GET", f"/v1/tasks/{stop['id']}")), 60, what="stop task through h3")
    assert t["state"] == "succeeded" and t["host"] == "h2"
    assert h2.vm("b2")["state"] == "stopped"
    # h1's stream carried h2's changes, marked with h2.
    states = [e["object"]["status"]["state"] for e in events_since(h1, rev)
              if e["id"] == b2["id"] and e.get("object")]
    assert "running" in states and states[-1] == "stopped", states
    assert all(e["host"] == "h2" for e in events_since(h1, rev) if e["id"] == b2["id"])

    # Tasks: listed by every host with their host; a finished one's cancel
    # through h1 is h2's answer (409), not h1's 404.
    tasks = {t["id"]: t for t in h1.api("GET", "/v1/tasks")["tasks"]}
    assert tasks[stop["id"]]["host"] == "h2"
    status, doc = h1.request("POST", f"/v1/tasks/{stop['id']}/cancel", {})
    assert status == 409, doc
    status, doc = h1.request("DELETE", f"/v1/tasks/{stop['id']}")
    assert status == 409, doc
    assert h1.request("GET", "/v1/tasks/00000000-0000-0000-0000-000000000000")[0] == 404

    # Names are the cluster's: taken on another host is a 409 naming it.
    status, doc = h1.request("POST", "/v1/vms", {"name": "b2", "memory_mib": 64})
    assert status == 409 and "host 'h2'" in doc["error"]["message"], doc
    # Also when placed on h2 itself (refused there, the answer goes to h1's client).
    status, doc = h1.request("POST", "/v1/vms", {"name": "b2", "memory_mib": 64, "host": "h2"})
    assert status == 409 and "host 'h2'" in doc["error"]["message"], doc
    # A rename through h1 moves the claim; the old name is free again.
    h1.api("PATCH", "/v1/vms/b2", {"name": "b2x"})
    assert listed(h3)["b2x"]["host"] == "h2"
    status, doc = h3.request("PATCH", "/v1/vms/a1", {"name": "b2x"})
    assert status == 409 and "host 'h2'" in doc["error"]["message"], doc
    create(h3, "b2")
    # A delete through h1 frees the name.
    h1.task_ok("DELETE", "/v1/vms/b2x")
    create(h1, "b2x")
    assert {n: v["host"] for n, v in listed(h2).items()} == {
        "a1": "h1", "b2": "h3", "b2x": "h1", "d3": "h3"}

    # A host cut off: offline, its VMs listed still, requests name it.
    rev = current_rev(h1)
    c.cut_link(h3)
    try:
        wait_until(lambda: {x["name"]: x["state"] for x in h1.api("GET", "/v1/hosts")["hosts"]}
                   .get("h3") == "offline", 30, what="h3 offline seen from h1")
        # h1's stream said so: h3's record went (kind host).
        gone = [e for e in events_since(h1, rev, kind="host") if e["action"] == "delete"]
        assert [e["host"] for e in gone] == ["h3"], gone
        vms = listed(h1)
        assert vms["d3"]["host"] == "h3" and vms["d3"]["host_state"] == "offline"
        assert vms["d3"]["state"] == "defined"  # its last state: never started
        assert "(host offline)" in h1.cli("vm", "list").stdout
        status, doc = h1.request("POST", "/v1/vms/d3/start", {})
        assert status == 503 and "host 'h3'" in doc["error"]["message"], doc
        p = h1.cli("vm", "start", "d3", check=False)
        assert p.returncode != 0 and "h3" in p.stderr
        shown = h1.vm("d3")
        assert shown["host"] == "h3" and shown["host_state"] == "offline"
    finally:
        c.heal_link(h3)
    wait_until(lambda: h1.request("POST", "/v1/vms/d3/start", {})[0] == 202, 60,
               what="d3 started through h1 once h3 is back")
    h3.wait_state("d3", "running")

    # Online (its record renewed) but its API does not answer: 502 naming it.
    with api_unreachable(h3):
        status, doc = h1.request("POST", "/v1/vms/d3/stop", {})
        assert status == 502, doc
        assert "host 'h3'" in doc["error"]["message"] and doc["error"]["code"] == "bad-gateway"
    h1.task_ok("POST", "/v1/vms/d3/stop", {})


def test_a_manager_stopped_past_its_lease_never_claims_the_role_again(cluster, tmp_path,
                                                                    monkeypatch):
    """A host record says "manager" (docs/events.md) only while its vireod's
    lease is confirmed. The manager's vireod held stopped (SIGSTOP) past the
    lease's TTL and its record's period, its lease renewal held too
    (host_lease_renew@NAME), the other host takes the role; let go, its
    records must not say "manager": true (before, the publish due at once
    ran before the renewal found the lease gone, and a page following the
    events showed the old manager)."""
    faults = str(tmp_path / "faults")
    os.makedirs(faults)
    monkeypatch.setenv("VIREO_FAKE_FAULTS", faults)
    c = cluster(2, listen=False)
    form(c)
    by_name = {h.name: h for h in c.hosts}
    wait_until(lambda: c.hosts[0].api("GET", "/v1/cluster")["manager"] in by_name, 60,
               what="a manager")
    old = by_name[c.hosts[0].api("GET", "/v1/cluster")["manager"]]
    new = next(h for h in c.hosts if h is not old)
    old_id = old.api("GET", "/v1/host")["id"]
    hold = os.path.join(faults, f"host_lease_renew@{old.name}")
    open(hold + ".hold", "w").close()
    try:
        wait_until(lambda: os.path.exists(hold + ".held"), 30, what="the renewal held")
        rev = current_rev(new)
        stopped_at = time.monotonic()
        os.kill(old.proc.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: new.api("GET", "/v1/cluster")["manager"] == new.name, 60,
                       what=f"{new.name} to take the role")
            # Past the record's period (10 s) too: its publish is due at once.
            time.sleep(max(0.0, 12 - (time.monotonic() - stopped_at)))
            taken = current_rev(new)
        finally:
            os.kill(old.proc.pid, signal.SIGCONT)

        def records_of_old():
            return [e for e in events_since(new, rev, kind="host")
                    if e["id"] == old_id and e["action"] == "put"
                    and "state" in (e["object"] or {})]
        wait_until(lambda: any(e["rev"] > taken for e in records_of_old()), 60,
                   what=f"{old.name}'s record after it was let go")
    finally:
        os.remove(hold + ".hold")
    after = [e["object"].get("manager") for e in records_of_old() if e["rev"] > taken]
    assert after and not any(after), after
    assert new.api("GET", "/v1/cluster")["manager"] == new.name


def test_name_race_makes_one_vm(cluster):
    c = cluster(2, listen=False)
    h1, h2 = c.hosts
    form(c)
    for round_ in range(5):
        name = f"race{round_}"
        results = {}
        barrier = threading.Barrier(2)

        def go(h):
            barrier.wait()
            results[h.name] = h.request("POST", "/v1/vms",
                                        {"name": name, "memory_mib": 64, "host": h.name})

        threads = [threading.Thread(target=go, args=(h,)) for h in (h1, h2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(s for s, _ in results.values())
        assert codes == [202, 409], results
        loser = next(n for n, (s, _) in results.items() if s == 409)
        assert "already exists" in results[loser][1]["error"]["message"]
        winner = next(n for n, (s, _) in results.items() if s == 202)
        # Listed once by both (by the other host once its create task wrote
        # the VM's document).
        for h in (h1, h2):
            wait_until(lambda: [(v["name"], v["host"]) for v in listed(h).values()
                                if v["name"] == name] == [(name, winner)], 30,
                       what=f"{name} once, on {winner}, seen from {h.name}")


def test_clone_through_another_host_is_made_on_the_sources(cluster):
    """vm clone of h2's VM asked of h1: made on h2 (forwarded); a name
    another host's VM has is refused at once (409), and so is one a clone or
    create racing it took."""
    c = cluster(2, listen=False)
    h1, h2 = c.hosts
    form(c)
    h2.task_ok("POST", "/v1/vms", {"name": "src2", "memory_mib": 64, "host": h2.name})
    h1.task_ok("POST", "/v1/vms", {"name": "on1", "memory_mib": 64, "host": h1.name})
    status, doc = h1.request("POST", "/v1/vms/src2/clone", {"name": "on1"})
    assert status == 409 and "already exists" in doc["error"]["message"], doc
    h1.task_ok("POST", "/v1/vms/src2/clone", {"name": "copy2"})
    wait_until(lambda: listed(h1).get("copy2", {}).get("host") == h2.name, 30,
               what="copy2 listed on h2")
    assert h2.vm("copy2")["disks"][0]["volume"].startswith("default/copy2-")
    # A clone registers its name at the request, as a create does: a clone
    # and a create on the other host of one new name at once, and two
    # clones of one name through both hosts: one 202, one 409, one VM.
    for round_ in range(3):
        for name, calls in (
                (f"vs-create{round_}",
                 (lambda n: h2.request("POST", "/v1/vms/src2/clone", {"name": n}),
                  lambda n: h1.request("POST", "/v1/vms", {"name": n, "memory_mib": 64,
                                                           "host": h1.name}))),
                (f"vs-clone{round_}",
                 (lambda n: h1.request("POST", "/v1/vms/src2/clone", {"name": n}),
                  lambda n: h2.request("POST", "/v1/vms/src2/clone", {"name": n})))):
            results = race(*(lambda call=call: call(name) for call in calls))
            assert sorted(s for s, _ in results) == [202, 409], (name, results)
            lost = next(doc for s, doc in results if s == 409)
            assert "already exists" in lost["error"]["message"], lost
            won = next(doc for s, doc in results if s == 202)
            assert h1.wait_task(won["task"])["state"] == "succeeded", name
            for h in (h1, h2):
                wait_until(lambda: [v["name"] for v in listed(h).values()
                                    if v["name"] == name] == [name], 30,
                           what=f"{name} once, seen from {h.name}")


def test_console_of_a_vm_on_h2_through_h1(cluster):
    c = cluster(2, driver="qemu", listen=False)
    h1, h2 = c.hosts
    form(c)
    h2.cli("vm", "create", "g2", "--memory", "256M", "--host", "h2")
    h1.cli("vm", "start", "g2", timeout=300)
    vm = h2.vm("g2")
    if vm.get("pid"):
        h2.qemu_pids.add(vm["pid"])
    # The console log and the console itself, through h1.
    h1.wait_console("g2", BOOT_MARKER, timeout=300)
    assert h1.guest("g2", "echo $((6 * 7))", timeout=120).strip() == "42"
    h1.cli("vm", "stop", "g2", timeout=120)
    assert h2.vm("g2")["state"] == "stopped"
