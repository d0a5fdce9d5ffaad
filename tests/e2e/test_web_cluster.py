"""The web UI's cluster views (docs/web.md, "Cluster") in a real Chromium
(web_ui_driver.mjs with web_cluster_scenarios.mjs) against a two-host
cluster of fake-driver vireods, h1 serving the UI on HTTPS: h1's page shows
its load and graphs; its maintenance switch, used from the page, moves its
VMs to h2 (the evacuation's task shown) and is switched off; switched
through the API, the open page follows (host events) without reading the
hosts or VMs, and its graphs read nothing while the tab is hidden; the
Migrate dialog keeps the keyboard's focus and moves a VM back to h1 (the
tree follows live); with two VMs on h2
busy (the fake's synthetic load, as test_drs.py makes it) DRS in
manual mode, chosen on the cluster page, recommends a move that the page
applies; HA's restart limit is set there (and a refusal shown), and
follows a change made elsewhere without a reload;
a viewer finds no action enabled; a user with roles on projects
only finds no Cluster link. The fake driver is enough: the
UI is what is tested (real migrations: test_migrate*.py). With
VIREO_WEB_SHOTS=1 the pages' screenshots go to BUILD/web-ui/."""

import base64
import json
import os
import re
import signal
from concurrent.futures import ThreadPoolExecutor

import pytest

import vireo_harness as h
from cluster_harness import Cluster
from test_drs import BUSY_USED, BUSY_WAITED, GUEST_USED, drs, set_load, where
from test_migrate import create_on, form, shared_pool
from test_web_ui import ADMIN_PASSWORD, SHOTS, VIEWER_PASSWORD, WEB_DIST, Web

VMS = ("a", "b")  # on h1: moved by its maintenance, a back by the dialog
BUSY = ("c", "d")  # on h2, never moved: DRS leaves a VM moved in the last 10 minutes alone


@pytest.fixture(scope="module")
def web():
    assert os.path.exists(os.path.join(WEB_DIST, "index.html")), \
        f"{WEB_DIST}: the web UI is not built (scripts/build-web.sh)"
    os.makedirs(SHOTS, exist_ok=True)
    c = Cluster(2, listen=False, extra_args=["--https", "127.0.0.1:8443", "--metrics-interval", "1",
                                             "--web-dir", WEB_DIST])
    w = None
    try:
        form(c)
        shared_pool(c)
        h1 = c.hosts[0]
        h1.cli("user", "create", "admin", "--role", "admin", "--password-file", "-",
               input=ADMIN_PASSWORD + "\n")
        h1.cli("user", "create", "vera", "--role", "viewer", "--password-file", "-",
               input=VIEWER_PASSWORD + "\n")
        for name in VMS + BUSY:
            on = h1 if name in VMS else c.hosts[1]
            create_on(on, name, memory=64)
            on.task_ok("POST", f"/v1/vms/{name}/start")
        w = Web(h1)
        w.cluster = c
        w.firefox = Web(h1, "firefox")  # the cluster page's tests in Firefox too
        yield w
    finally:
        if w:
            w.close()
            w.firefox.close()
        c.cleanup()


def test_host_page_shows_load_and_graphs(web):
    r = web.browser("host_page", host="h1", vm_count="2 running of 2")
    assert sorted(r["vms"]) == list(VMS), r
    assert r["vm_count"] == "2 running of 2", r
    assert "% busy" in r["cpu"] and "used of" in r["memory"], r
    assert r["accel"] in ("kvm", "tcg"), r
    assert r["qemu"] == web.cluster.hosts[0].api("GET", "/v1/host")["qemu_version"], r
    assert r["charts"] == ["cpu", "memory", "disk", "network"], r


def test_maintenance_from_the_page_moves_the_vms(web):
    h1 = web.cluster.hosts[0]
    r = web.browser("maintenance", host="h1", other="h2", vms=list(VMS), timeout=400)
    assert r["before"] == "false" and r["tree_state"] == "maintenance", r
    assert not r["verify_default"] and r["body"] == {"on": True, "verify_memory": True}, r
    assert r["report"] == {name: "memory verified" for name in VMS}, r
    assert r["evacuate_body"] == {}, r  # the memory check off unless ticked
    assert r["evacuate_in_maintenance"], r  # what stayed can be moved again
    assert r["escape_focus"] == "evacuate", r  # Escape closed its dialog (dialog-kit.jsx)
    assert where(h1) == {name: "h2" for name in VMS + BUSY}
    host = h1.api("GET", "/v1/hosts/h1")
    assert not host.get("maintenance") and host["state"] == "online", host


def test_host_page_follows_events_without_polling(web):
    """h1 (its VMs moved away by the test before) switched into maintenance
    and out through the API while its page is open: the switch and the tree
    follow; the page read neither /v1/hosts nor /v1/vms meanwhile (it did
    every 3 s). The graphs read nothing while the tab is hidden, and once
    when it is shown."""
    h1 = web.cluster.hosts[0]
    if "h1" in where(h1).values():  # run alone: h1 as the test before leaves it (no VM moves here)
        h1.task_ok("POST", "/v1/hosts/h1/maintenance", {"on": True})
        h1.api("POST", "/v1/hosts/h1/maintenance", {"on": False})
    r = web.browser("host_events", host="h1", quiet_ms=7000, timeout=300)
    assert r["tree_state"] == "maintenance", r
    assert r["hosts_reads"] == 0 and r["vms_reads"] == 0, r
    assert r["metrics_hidden"] == 0 and r["metrics_when_shown"], r
    print(f"host page: {r['per_minute']} requests per minute over {r['seconds']:.0f} s: {r['counts']}")


def test_migrate_dialog_moves_a_vm_back(web):
    h1 = web.cluster.hosts[0]
    r = web.browser("migrate", vm="a", to="h1", timeout=300)
    assert r["focus_in_dialog"] and r["tab_stays"] and r["focus_back"] == "migrate", r
    assert "bandwidth" in r["refused"] and r["escape_after_refusal"], r
    assert where(h1)["a"] == "h1"
    assert r["logged"] >= 1, r


def test_vm_page_resumes_a_paused_post_copy(web):
    """A post-copy whose recovery failed (both QEMUs kept: made real in
    test_migrate_converge.py) stood for by its source host's two files (the
    kept mark and the switched intent; the fake driver has no post-copy):
    the VM's view names that host (post_copy_paused), its page shows it
    without a reload (the host record's event) with Resume migration, whose
    task (`--resume`: the source's recovery tried again, which here finds
    no QEMU and ends the files) succeeds, and the notice goes."""
    h1 = web.cluster.hosts[0]
    ids = {x["name"]: x["id"] for x in h1.api("GET", "/v1/hosts")["hosts"]}
    at = where(h1)["b"]
    source = next(x for x in web.cluster.hosts if x.name != at)
    vm_id = h1.api("GET", "/v1/vms/b")["id"]
    intent = {"role": "source", "vm": vm_id, "name": "b", "migration": "web-fake", "peer": ids[at],
              "phase": "switched", "resume": True, "rev": 1}
    for d in ("migrations", "fence/post-copy"):
        os.makedirs(os.path.join(source.run_dir, d), exist_ok=True)
    with open(os.path.join(source.run_dir, "migrations", f"{vm_id}.json"), "w") as f:
        json.dump(intent, f)
    with open(os.path.join(source.run_dir, "fence", "post-copy", vm_id), "w") as f:
        json.dump({"to": ids[at], "pid": 1}, f)
    h.wait_until(lambda: "post_copy_paused" in h1.api("GET", "/v1/vms/b"), 60,
                 what="b's view to name its paused post-copy (the next host record)")
    where_paused = {"source_host": source.name, "source_host_id": ids[source.name]}
    assert h1.api("GET", "/v1/vms/b")["post_copy_paused"] == where_paused
    assert [v.get("post_copy_paused") for v in h1.api("GET", "/v1/vms?view=summary")["vms"]
            if v["name"] == "b"] == [where_paused]
    listed = h1.cli("vm", "list").stdout  # the CLI's list says so too
    assert re.search(rf"^b\s.*\(post-copy, source kept on {source.name}\)", listed, re.M), \
        listed
    r = web.browser("post_copy_resume", vm="b", timeout=200)
    assert r["source"] == source.name and r["task"] == "succeeded" and r["gone"], r
    assert "post_copy_paused" not in h1.api("GET", "/v1/vms/b")
    assert not os.path.exists(os.path.join(source.run_dir, "fence", "post-copy", vm_id))


def offline_member(h1, host_id, name):
    """A member document alone, as an offline host leaves, put into etcd."""
    d = os.path.join(h1.state_dir, "cluster")
    member = {"id": host_id, "name": name, "address": "10.255.255.1",
              "joined_at": 1, "mem_ratio": 1.0, "cpu_ratio": 4.0}
    b64 = lambda t: base64.b64encode(t.encode()).decode()  # noqa: E731
    h1.ns("curl", "-sS", "--cacert", f"{d}/ca.crt", "--cert", f"{d}/host.crt", "--key",
          f"{d}/host.key", "-H", "Content-Type: application/json", "-d",
          json.dumps({"key": b64(f"vireo/cluster/members/{host_id}"),
                      "value": b64(json.dumps(member))}),
          f"https://{h1.address}:2379/v3/kv/put")
    assert [x["state"] for x in h1.api("GET", "/v1/hosts")["hosts"] if x["name"] == name] == \
        ["offline"]


def manager_after_stopping(stopped, asked):
    """The manager once stopped's vireod is held stopped (SIGSTOP) until
    asked's cluster view names another (its lease, 6 s, runs out; its
    fence keeps its record: still online), then let go."""
    os.kill(stopped.proc.pid, signal.SIGSTOP)
    try:
        h.wait_until(lambda: asked.api("GET", "/v1/cluster")["manager"] not in
                     (None, stopped.name), 60, what=f"another manager than {stopped.name}")
    finally:
        os.kill(stopped.proc.pid, signal.SIGCONT)
    return asked.api("GET", "/v1/cluster")["manager"]


def test_pages_follow_an_offline_hosts_maintenance_and_a_manager_change(web):
    """What a host's live record did not say is a host event too
    (docs/events.md): an offline host's maintenance flag (its member
    document) and the manager role (the record's "manager", written at
    once when it moves). h2 is made the manager first (h1's vireod held
    stopped); with h1's page open, an offline host marked maintenance
    shows on its page and the role moving back to h1 (h2's vireod held
    stopped) on h1's, neither with a read of /v1/hosts."""
    h1, h2 = web.cluster.hosts
    offline_member(h1, "0ffc0ffee1", "away")
    assert manager_after_stopping(h1, h2) == "h2"
    assert h1.api("GET", "/v1/cluster")["manager"] == "h2"
    with ThreadPoolExecutor(1) as pool:
        shown = pool.submit(web.browser, "host_member_events", host="h1", offline="away",
                            timeout=200)
        h.wait_until(lambda: [x["maintenance"] for x in h1.api("GET", "/v1/hosts")["hosts"]
                              if x["name"] == "away"] == [True], 60, what="away in maintenance")
        moved = manager_after_stopping(h2, h1)
        r = shown.result()
    assert moved == "h1", moved
    assert r["offline_switch"] == "true" and r["state"] == "online (manager)", r
    assert r["hosts_reads"] == 0, r
    h1.api("DELETE", "/v1/hosts/away")


def test_cluster_page_follows_a_host_removed(web):
    """A host removed (its record went when it went offline): its member
    document's delete is a host event, and the cluster page's own read
    (every 10 s) finds the hosts changed too; the list is read again, so
    its row leaves the page and the tree. The host: a member document
    alone, as an offline host leaves."""
    h1 = web.cluster.hosts[0]
    offline_member(h1, "0badc0ffee", "gone")
    r = web.browser("cluster_roster", gone="gone")
    assert r["row_gone"] and r["tree_rows"] == 0, r
    assert "gone" not in [x["name"] for x in h1.api("GET", "/v1/hosts")["hosts"]]


def test_drs_recommendation_shown_and_applied(web):
    h1, h2 = web.cluster.hosts
    for name in BUSY:
        set_load(h2, name, BUSY_USED, BUSY_WAITED, **GUEST_USED)
    r = web.browser("drs", timeout=400)
    assert r["quorum"] == "yes" and r["hosts"] == ["h1", "h2"], r
    assert re.fullmatch(r"2 of 2 members healthy \(checked [0-5] s ago\)", r["etcd_health"]), r
    assert drs(h2)["mode"] == "manual"
    assert r["rec"]["vm"] in BUSY and r["rec"]["cells"][1:3] == ["h2", "h1"], r
    h.wait_until(lambda: where(h1)[r["rec"]["vm"]] == "h1", 60, what="the recommended move made")


def in_browser(web, engine):
    """The module's Web that drives engine's browser (chromium, firefox)."""
    return web.firefox if engine == "firefox" else web


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_ha_restart_limit_set_on_the_cluster_page(web, engine):
    h1, h2 = web.cluster.hosts
    try:
        r = in_browser(web, engine).browser("ha_settings")
        assert r["before"] == "3/10" and r["after"] == "5/30", r
        assert r["followed"] == "15", r  # another's change shown without a reload
        assert "max_restarts" in r["refused"], r
        assert h2.api("GET", "/v1/cluster/ha") == {"max_restarts": 5, "window_minutes": 30}
    finally:
        h1.api("PATCH", "/v1/cluster/ha", {"max_restarts": 3, "window_minutes": 10})


@pytest.mark.parametrize("engine", ["chromium", "firefox"])
def test_viewer_sees_no_enabled_action(web, engine):
    r = in_browser(web, engine).browser("viewer_cluster", host="h1", vm="a")
    assert r["maintenance_disabled"] and r["migrate_disabled"] and r["mode_disabled"], r
    assert r["apply_enabled"] == 0, r
    assert r["ha_disabled"] and r["ha_save"] == 0, r
    assert r["ha_display"] == "flex", r  # .inline-form's style with #/cluster opened first


def test_project_user_has_no_cluster_link(web):
    """A user with roles on projects only may not read the cluster (GET
    /v1/cluster: 403): the tree offers no Cluster page."""
    h1 = web.cluster.hosts[0]
    h1.api("POST", "/v1/projects", {"name": "pj"}, expect=201)
    h1.cli("user", "create", "pat", "--role", "none", "--password-file", "-", input="pat-pass-12\n")
    h1.cli("user", "grant", "pat", "--role", "viewer", "--project", "pj")
    r = web.browser("project_cluster", user="pat", password="pat-pass-12")
    assert r["cluster_links"] == 0 and r["pools_link"], r


def etcd_health_checks(host):
    """The health checks host's etcd member has answered (its /metrics)."""
    d = os.path.join(host.state_dir, "cluster")
    out = host.ns("curl", "-sS", "--cacert", f"{d}/ca.crt", "--cert", f"{d}/host.crt",
                  "--key", f"{d}/host.key", f"https://{host.address}:2379/metrics").stdout
    counts = [float(line.split()[1]) for line in out.splitlines()
              if line.startswith("etcd_server_health_success")]
    assert counts, "etcd's /metrics has no etcd_server_health_success"
    return sum(counts)


def test_cluster_reads_ask_etcd_once_in_a_while(web):
    """GET /v1/cluster (the cluster page reads it while shown, any number of
    pages at once) asks etcd for its members' health at most every 5 s,
    not at each read: 10 reads at once and 10 after check h1's member once
    (and once more per 5 s they take), 20 times when each read asked."""
    h1 = web.cluster.hosts[0]
    before = etcd_health_checks(h1)
    with ThreadPoolExecutor(10) as pool:
        docs = list(pool.map(lambda _: h1.api("GET", "/v1/cluster"), range(10)))
    docs += [h1.api("GET", "/v1/cluster") for _ in range(10)]
    checks = etcd_health_checks(h1) - before
    assert all(len(doc["etcd_members"]) == 2 and doc["quorum"] for doc in docs), docs[-1]
    assert all(m["healthy"] for m in docs[-1]["etcd_members"]), docs[-1]
    # A read past a 5 s boundary asks again: a slow machine may cross a few.
    # None at all when a read just before (the cluster page of the tests
    # before) left an answer under 5 s old.
    assert checks <= 10, checks


def test_cluster_read_shows_a_member_change_at_once(web):
    """The members' health is asked once in a while, but not for a member
    list that changed: a learner added (as a join does) and removed right
    after a read shows in the next read, not 5 s later; the answer says how
    old its health checks are."""
    h1 = web.cluster.hosts[0]
    d = os.path.join(h1.state_dir, "cluster")

    def gateway(path, body):
        out = h1.ns("curl", "-sS", "--cacert", f"{d}/ca.crt", "--cert", f"{d}/host.crt",
                    "--key", f"{d}/host.key", "-H", "Content-Type: application/json",
                    "-d", json.dumps(body),
                    f"https://{h1.address}:2379/v3/cluster/member/{path}").stdout
        return json.loads(out)

    def add_learner(port):
        """Its id; etcd adds none until every voter has been connected 5 s."""
        added = {}

        def add():
            added.update(gateway("add", {"peerURLs": [f"https://{h1.address}:{port}"],
                                         "isLearner": True}))
            return "member" in added or "unhealthy" not in added.get("message", "")
        h.wait_until(add, 60, what="etcd to add a learner")
        assert "member" in added, added
        return added["member"]["ID"]

    gateway("remove", {"ID": add_learner(2391)})  # etcd ready for the next add at once
    ids = lambda doc: sorted(m["id"] for m in doc["etcd_members"])  # noqa: E731
    before = h1.api("GET", "/v1/cluster")
    added = add_learner(2390)
    try:
        during = h1.api("GET", "/v1/cluster")
    finally:
        gateway("remove", {"ID": added})
    after = h1.api("GET", "/v1/cluster")
    learner = format(int(added), "x")
    assert ids(during) == sorted(ids(before) + [learner]), (before, during)
    assert [(m["voting"], m["healthy"]) for m in during["etcd_members"]
            if m["id"] == learner] == [(False, False)], during
    assert ids(after) == ids(before), after
    assert all(0 <= doc.get("etcd_health_age_ms", -1) <= 5000 for doc in (before, during, after))
    shown = h1.cli("cluster", "show").stdout
    assert re.search(r"^etcd health: +2 of 2 members healthy \(checked [0-5] s ago\)$", shown,
                     re.M), shown
