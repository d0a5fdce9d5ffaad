"""A user's request that one host forwards to another (any door) is checked
and audited on the target as that user's, not as the forwarding peer's
(docs/security.md, "Forwarded requests"): the forwarding host sends the
principal in X-Vireo-Principal, which the target believes only on its
peers' listener from a cluster certificate. Two hosts formed with vireo
cluster init/join, fake driver: an operator's token on h1 is refused
keep_last on a VM of h2 as on one of h1 and its start is audited on h2 as
its own; a viewer cannot stop h2's VM through h1; a user with a role only
on a project (admin there) reaches its project's VM on h2 through h1 and no other, its
quota holds, and the pools' volume counts it reads are of its project's volumes; the header from anyone but a peer (a user's HTTPS
request, a client certificate of another CA, none) is refused and never
elevates."""

import json
import os
import signal
import subprocess

from cluster_harness import Pki
from test_any_door import api_unreachable, current_rev, events_since
from test_cluster_access import user_https
from test_cluster_formation import init, join
from vireo_harness import wait_until

HEADER = "X-Vireo-Principal"


def peer_https(target, via, method, path, headers=(), client=None, body=None):
    """METHOD on target's peers' listener (8443) from via's namespace, with
    via's cluster certificate (client: (cert, key) instead, or () for none)."""
    cmd = ["curl", "-sS", "--max-time", "10", "--cacert", target.ca, "-X", method,
           "-o", "-", "-w", "\n%{http_code}"]
    cert = via.cert, via.key
    if client is not None:
        cert = client
    if cert:
        cmd += ["--cert", cert[0], "--key", cert[1]]
    for h in headers:
        cmd += ["-H", h]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    p = subprocess.run(["ip", "netns", "exec", via.host_netns.name, *cmd,
                        f"https://{target.address}:{target.port}{path}"],
                       capture_output=True, text=True, timeout=30)
    text, _, code = p.stdout.rpartition("\n")
    if p.returncode != 0 or code in ("", "000"):
        return None, p.stderr.strip()
    return int(code), json.loads(text) if text else None


def who_asked(h, task):
    return h.api("GET", f"/v1/tasks/{task['id']}")["requested_by"]["who"]


def test_forwarded_requests_are_the_users(cluster, tmp_path):
    c = cluster(2, driver="fake", listen=False)
    h1, h2 = c.hosts
    init(h1)
    join(h2, h1.cli_json("cluster", "token"), h1)
    h1.api("POST", "/v1/projects", {"name": "team", "quotas": {"vms": 1}}, expect=201)
    for h, name, project in ((h1, "v1", "default"), (h2, "v2", "default"),
                             (h2, "p2", "team")):
        h.task_ok("POST", "/v1/vms", {"name": name, "memory_mib": 64, "host": h.name,
                                      "project": project})
    for name, role in (("olivia", "operator"), ("vic", "viewer"), ("alice", "none")):
        h1.cli("user", "create", name, "--role", role, "--password-file", "-",
               input=f"{name}'s password\n")
    h1.cli("user", "grant", "alice", "--role", "admin", "--project", "team")
    tokens = {name: h1.api("POST", "/v1/tokens", {"role": role, "user": name}, expect=201)
              for name, role in (("olivia", "operator"), ("vic", "viewer"),
                                 ("alice", "admin"))}
    op, viewer, scoped = (tokens[n]["secret"] for n in ("olivia", "vic", "alice"))

    def via_h1(method, path, token, body=None):
        return user_https(h1, h1, method, path, token, body=body)

    # An operator: keep_last (deleting backups: the admin's) is refused on
    # h2's VM through h1 as on h1's own, naming the token; before, h2 took
    # the forwarded request for its peer's and let it through.
    for vm in ("v1", "v2"):
        status, doc = via_h1("POST", f"/v1/vms/{vm}/backups", op, {"keep_last": 2})
        assert status == 403, (vm, doc)
        msg = doc["error"]["message"]
        assert "keep_last" in msg and f"token:{tokens['olivia']['id']}" in msg, msg
    # ... and its start of h2's VM is audited on h2 as its own.
    status, doc = via_h1("POST", "/v1/vms/v2/start", op, {})
    assert status == 202, doc
    h2.wait_task(doc["task"])
    assert who_asked(h2, doc["task"]) == f"token:{tokens['olivia']['id']} (user:olivia)"
    # Admin-only: deleting the VM.
    assert via_h1("DELETE", "/v1/vms/v2", op)[0] == 403

    # A viewer cannot stop h2's VM through h1.
    status, doc = via_h1("POST", "/v1/vms/v2/stop", viewer, {})
    assert status == 403 and "operator" in doc["error"]["message"], doc
    assert h2.api("GET", "/v1/vms/v2")["state"] == "running"

    # A user with a role only on project team: its VM on h2 is reached
    # through h1 (h1 does not have it: h2's gate decides), others are not.
    status, doc = via_h1("GET", "/v1/vms/p2", scoped)
    assert status == 200 and doc["project"] == "team", doc
    for method, path in (("GET", "/v1/vms/v2"), ("POST", "/v1/vms/v2/stop")):
        status, doc = via_h1(method, path, scoped, {} if method == "POST" else None)
        assert status == 404, (path, doc)
    assert h2.api("GET", "/v1/vms/v2")["state"] == "running"
    status, doc = via_h1("POST", "/v1/vms/p2/start", scoped, {})
    assert status == 202, doc
    h2.wait_task(doc["task"])
    assert who_asked(h2, doc["task"]) == f"token:{tokens['alice']['id']} (user:alice)"
    # The list (the CLI's summary view) shows it its project's VM of h2
    # and no other; ?project= finds another host's VMs of the project.
    for token, query in ((scoped, ""), (viewer, "&project=team")):
        status, listed = via_h1("GET", "/v1/vms?view=summary" + query, token)
        assert status == 200 and [v["name"] for v in listed["vms"]] == ["p2"], (query, listed)
    # It reads the task it asked for through h1 (its host is h2).
    assert via_h1("GET", f"/v1/tasks/{doc['task']['id']}", scoped)[0] == 200
    # Its project's quota holds on a create placed on h2 through h1; a
    # create in a project where it has no role is refused.
    status, doc = via_h1("POST", "/v1/vms", scoped, {"name": "p3", "memory_mib": 64,
                                                     "project": "team", "host": h2.name})
    assert status == 409 and doc["error"]["code"] == "quota-exceeded", doc
    status, doc = via_h1("POST", "/v1/vms", scoped, {"name": "d3", "memory_mib": 64,
                                                     "host": h2.name})
    assert status == 403, doc
    # The pools' volume counts it reads through h1 are of the volumes it
    # sees: its project's own on h2's local pool (not h2's others), none of
    # h1's (before: each pool's all, other projects' too).
    for name, project in (("tv2", "team"), ("dv2", "default")):
        h2.task_ok("POST", "/v1/pools/default/volumes", {"name": name, "size_bytes": 1 << 20,
                                                         "project": project})
    status, pools = via_h1("GET", "/v1/pools", scoped)
    counts = {p["host"]: p["volumes"] for p in pools["pools"] if p["name"] == "default"}
    assert status == 200 and counts == {h1.name: 0, h2.name: 1}, pools

    # A forged principal: from a user's HTTPS request (with or without a
    # token of its own) it is refused, never believed.
    root = HEADER + ": " + json.dumps({"v": 1, "kind": "root"})
    # (Before authentication: 400 with a token or without.)
    for token in (viewer, None):
        status, doc = user_https(h2, h1, "POST", "/v1/vms/v2/stop", token, headers=[root])
        assert status == 400 and HEADER in doc["error"]["message"], doc
    # Nor the hosts' own headers from a user: X-Vireo-Forwarded (h1 served
    # h2's VM as its own, 404, and a create skipped the manager's
    # placement) and X-Vireo-Place (h1 placed as the manager).
    for name in ("X-Vireo-Forwarded", "X-Vireo-Place"):
        status, doc = user_https(h1, h1, "GET", "/v1/vms/v2", viewer, headers=[name + ": 1"])
        assert status == 400 and name in doc["error"]["message"], (name, doc)
    # From a TLS client whose certificate another CA signed, or none, on
    # the peers' listener: refused before any handler.
    stranger = Pki(os.path.join(str(tmp_path), "stranger-ca"), cn="not the cluster")
    cert = stranger.host_cert("intruder", [h1.address])
    for client in (cert, ()):
        status, doc = peer_https(h2, h1, "POST", "/v1/vms/v2/stop", [root], client, {})
        assert status == 401, doc
    assert h2.api("GET", "/v1/vms/v2")["state"] == "running"
    # A peer's own certificate: the header is believed, so the named user's
    # role is what counts (a viewer's stop: 403), and a malformed one is
    # refused.
    as_vic = HEADER + ": " + json.dumps({"v": 1, "kind": "user", "name": "vic",
                                         "role": "viewer", "grants": {}})
    status, doc = peer_https(h2, h1, "POST", "/v1/vms/v2/stop", [as_vic], body={})
    assert status == 403 and "user:vic" in doc["error"]["message"], doc
    status, doc = peer_https(h2, h1, "POST", "/v1/vms/v2/stop", [HEADER + ": {\"v\":1}"],
                             body={})
    assert status == 400 and HEADER in doc["error"]["message"], doc
    assert h2.api("GET", "/v1/vms/v2")["state"] == "running"
    # The Unix socket (root) names nobody else either.
    status, doc = h2.request("POST", "/v1/vms/v2/stop", {}, headers={HEADER: root})
    assert status == 400, doc

    root_is_its_hosts(h1, h2)
    other_uid_is_itself(h1, h2)
    task_of_a_vm_by_id_only(h1, h2)
    offline_host_answers_alike(h1, h2, tokens)


def root_is_its_hosts(h1, h2):
    """h1's root (its Unix socket), forwarded to h2, is audited there as
    root@h1, in the operation and in the event stream that carries it; h2's
    own root stays root."""
    rev = current_rev(h2)
    task = h1.api("POST", "/v1/vms/v2/stop", {}, expect=202)["task"]
    h2.wait_task(task)
    assert who_asked(h2, task) == "root@h1"
    seen = {e["object"]["requested_by"]["who"] for e in events_since(h2, rev, "operation")
            if e["id"] == task["id"] and e.get("object")}
    assert seen == {"root@h1"}, seen
    task = h2.api("POST", "/v1/vms/v2/start", {}, expect=202)["task"]
    h2.wait_task(task)
    assert who_asked(h2, task) == "root"
    # A create placed on h2 through h1 (the manager's placement, or h1
    # asking the manager): root@h1 there too, as the record placement read
    # says h2 understands the host member.
    task = h1.api("POST", "/v1/vms", {"name": "r2", "memory_mib": 64, "host": h2.name},
                  expect=202)["task"]
    h2.wait_task(task)
    assert who_asked(h2, task) == "root@h1"
    h2.task_ok("DELETE", "/v1/vms/r2")


NOBODY_CLIENT = """
import http.client, json, socket, sys
class Conn(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(sys.argv[1])
c = Conn("localhost", timeout=30)
c.request(sys.argv[2], sys.argv[3], body=sys.argv[4] if len(sys.argv) > 4 else None,
          headers={"Content-Type": "application/json"})
r = c.getresponse()
print(r.status, r.read().decode())
"""


def as_nobody(h, method, path, body=None):
    """METHOD path on h's Unix socket as uid 65534 (nobody), the socket
    made reachable for it (it is 0660 root:root in directories only root
    enters): (status, document)."""
    p = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "/usr/bin/python3", "-c", NOBODY_CLIENT, h.socket, method, path,
                        *([json.dumps(body)] if body is not None else [])],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    status, _, text = p.stdout.partition(" ")
    return int(status), json.loads(text)


def other_uid_is_itself(h1, h2):
    """A uid other than root's that may open h1's Unix socket (here the
    socket opened to all for the test; on a host, a member of its group)
    has root's access on h1, as the socket's mode makes it, and is named
    as itself: requested_by.uid on h1, and "uid:65534@h1" on h2 for its
    request h1 forwards there (before: root@h1, as if root had asked). The
    member from a peer is believed; on a user it is refused."""
    modes = {p: os.stat(p).st_mode & 0o7777 for p in (h1.tmp, h1.run_dir, h1.socket)}
    try:
        os.chmod(h1.tmp, modes[h1.tmp] | 0o001)
        os.chmod(h1.run_dir, modes[h1.run_dir] | 0o001)
        os.chmod(h1.socket, 0o666)
        # h2's VM, through h1: forwarded, audited on h2 as that uid of h1.
        status, doc = as_nobody(h1, "POST", "/v1/vms/v2/stop", {})
        assert status == 202, doc
        h2.wait_task(doc["task"])
        assert who_asked(h2, doc["task"]) == "uid:65534@h1"
        # h1's own VM: root's access here, audited by its uid and pid.
        action = "stop" if h1.vm("v1")["state"] == "running" else "start"
        undo = "start" if action == "stop" else "stop"
        status, doc = as_nobody(h1, "POST", f"/v1/vms/v1/{action}", {})
        assert status == 202, doc
        h1.wait_task(doc["task"])
        by = h1.api("GET", f"/v1/tasks/{doc['task']['id']}")["requested_by"]
        assert by["uid"] == 65534 and "who" not in by, by
        status, doc = as_nobody(h1, "GET", "/v1/whoami")
        assert status == 200 and doc["principal"] == "uid:65534@h1" and \
            doc["role"] == "admin", doc
    finally:
        for path, mode in modes.items():
            os.chmod(path, mode)
    h1.task_ok("POST", f"/v1/vms/v1/{undo}", {})
    h2.task_ok("POST", "/v1/vms/v2/start", {})
    # From a peer the member is believed (the stop is audited so); on a
    # user it is refused.
    as_uid = HEADER + ": " + json.dumps({"v": 1, "kind": "root", "host": "h1", "uid": 4242})
    status, doc = peer_https(h2, h1, "POST", "/v1/vms/v2/stop", [as_uid], body={})
    assert status == 202, doc
    h2.wait_task(doc["task"])
    assert who_asked(h2, doc["task"]) == "uid:4242@h1"
    bad = HEADER + ": " + json.dumps({"v": 1, "kind": "user", "name": "vic", "role": "viewer",
                                      "uid": 0})
    status, doc = peer_https(h2, h1, "POST", "/v1/vms/v2/start", [bad], body={})
    assert status == 400 and "uid" in doc["error"]["message"], doc
    h2.task_ok("POST", "/v1/vms/v2/start", {})


def task_of_a_vm_by_id_only(h1, h2):
    """A task is a scoped user's to read when its target_id is the id of a
    VM of its projects, not when a VM of its projects is named so: an
    evacuation of h1 (target_id h1's host id, its result every VM moved,
    of every project) stays 404 to a user whose project has, on h2, a VM
    named as h1's id (before, h1's gate found that VM by its name in the
    cluster's documents and let the task through)."""
    h1_id = next(x["id"] for x in h1.api("GET", "/v1/hosts")["hosts"] if x["name"] == "h1")
    h1.api("POST", "/v1/projects", {"name": "named"}, expect=201)
    h1.cli("user", "create", "nina", "--role", "none", "--password-file", "-",
           input="nina's password\n")
    h1.cli("user", "grant", "nina", "--role", "operator", "--project", "named")
    nina = h1.api("POST", "/v1/tokens", {"role": "operator", "user": "nina"},
                  expect=201)["secret"]
    h2.task_ok("POST", "/v1/vms", {"name": h1_id, "memory_mib": 64, "host": "h2",
                                   "project": "named"})
    task = h1.api("POST", "/v1/hosts/h1/evacuate", {}, expect=202)["task"]
    h1.wait_task(task)
    for via in (h1, h2):
        status, doc = user_https(via, via, "GET", "/v1/tasks/" + task["id"], nina)
        assert status == 404, (via.name, doc)
    h2.task_ok("DELETE", "/v1/vms/" + h1_id)


def offline_host_answers_alike(h1, h2, tokens):
    """h2 offline (its fence stopped: its host record lapses, etcd keeps its
    quorum): h1 answers for h2's VMs and tasks as h2 would. Who may not see
    one gets what a VM or task that does not exist gets (404, the same
    message), a role too low on its project 403 as from h2 (before: 404),
    and only who may act on it hears 503 naming the offline host (before:
    anyone, for a task)."""
    h1.api("POST", "/v1/projects", {"name": "other"}, expect=201)
    h1.cli("user", "create", "bob", "--role", "none", "--password-file", "-",
           input="bob's password\n")
    h1.cli("user", "grant", "bob", "--role", "operator", "--project", "other")
    h1.cli("user", "grant", "bob", "--role", "viewer", "--project", "team")
    bob = h1.api("POST", "/v1/tokens", {"role": "operator", "user": "bob"}, expect=201)
    alice, vic = tokens["alice"]["secret"], tokens["vic"]["secret"]
    roots = h2.api("POST", "/v1/vms/v2/stop", {}, expect=202)["task"]  # h2 root's
    h2.wait_task(roots)
    alices = user_https(h1, h1, "POST", "/v1/vms/p2/stop", alice, body={})[1]["task"]
    h2.wait_task(alices)
    cases = [  # (token, method, path): what h2 answers, through h1, online
        (bob["secret"], "POST", "/v1/vms/p2/start"),  # viewer on team: 403
        (alice, "GET", "/v1/vms/v2"),                 # no role on default: 404
        (alice, "POST", "/v1/vms/v2/start"),
        (alice, "GET", "/v1/tasks/" + roots["id"]),  # another's, of default: 404
    ]
    online = [user_https(h1, h1, m, path, tok, body={} if m == "POST" else None)
              for tok, m, path in cases]
    assert [st for st, _ in online] == [403, 404, 404, 404], online
    assert "viewer" in online[0][1]["error"]["message"], online[0]

    def absent(tok, path):  # the answer for an object no host has
        return user_https(h1, h1, "GET", path, tok)[1]["error"]["message"]

    assert online[1][1]["error"]["message"] == absent(alice, "/v1/vms/nope").replace(
        "nope", "v2")
    no_task = "00000000-0000-4000-8000-000000000000"
    assert online[3][1]["error"]["message"] == absent(alice, "/v1/tasks/" + no_task).replace(
        no_task, roots["id"])

    # Online but its API not answering (502): the same answers, and only
    # who may act on it hears the 502 naming h2.
    with api_unreachable(h2):
        unreachable = [user_https(h1, h1, m, path, tok, body={} if m == "POST" else None)
                       for tok, m, path in cases]
        assert unreachable == online, (unreachable, online)
        status, doc = user_https(h1, h1, "GET", "/v1/tasks/" + alices["id"], alice)
        assert status == 502 and "host 'h2'" in doc["error"]["message"], doc

    fence = h2.fence_pid()
    assert fence
    os.kill(fence, signal.SIGSTOP)
    try:
        wait_until(lambda: {x["name"]: x["state"] for x in h1.api("GET", "/v1/hosts")["hosts"]}
                   .get("h2") == "offline", 30, what="h2 offline seen from h1")
        offline = [user_https(h1, h1, m, path, tok, body={} if m == "POST" else None)
                   for tok, m, path in cases]
        assert offline == online, (offline, online)
        # Who may see it: 503 naming h2 (a VM's own document: 200, marked).
        for tok, method, path in ((alice, "POST", "/v1/vms/p2/start"),
                                  (alice, "GET", "/v1/tasks/" + alices["id"]),
                                  (vic, "GET", "/v1/tasks/" + roots["id"])):
            status, doc = user_https(h1, h1, method, path, tok,
                                     body={} if method == "POST" else None)
            assert status == 503 and "host 'h2'" in doc["error"]["message"], (path, doc)
        status, doc = user_https(h1, h1, "GET", "/v1/vms/p2", alice)
        assert status == 200 and doc["host_state"] == "offline", doc
    finally:
        os.kill(fence, signal.SIGCONT)

