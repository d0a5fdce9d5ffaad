"""Access control on vireod's HTTPS listener for users (docs/security.md,
"Access"): every route without credentials is refused 401, API tokens and
browser sessions authenticate, roles are enforced (viewer reads, operator
runs VMs, admin does the rest), a session's changes need its CSRF token,
wrong passwords lock the user and the address out (429, counted not timed),
a revoked token is refused, and operations say who asked for them.

One fake-driver vireod for the module (its own network namespace, HTTPS on
127.0.0.1:8443 there, a self-signed certificate made at first start); the
requests go from inside that namespace with a small Python client that
trusts STATE/https/ca.crt."""

import datetime
import json
import os
import re
import subprocess
import sys
import time

import pytest
import yaml

from vireo_harness import Daemon

CLIENT = r'''
import http.client, json, ssl, sys
ca, reqs = sys.argv[1], json.load(sys.stdin)
ctx = ssl.create_default_context(cafile=ca)
out = []
for r in reqs:
    c = http.client.HTTPSConnection("127.0.0.1", 8443, context=ctx, timeout=30)
    headers = dict(r.get("headers") or {})
    body = None
    if r.get("body") is not None:
        body = json.dumps(r["body"])
        headers["Content-Type"] = "application/json"
    c.request(r["method"], r["path"], body=body, headers=headers)
    resp = c.getresponse()
    data = resp.read()
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        doc = data.decode(errors="replace")
    out.append({"status": resp.status, "body": doc,
                "headers": {k.lower(): v for k, v in resp.getheaders()}})
    c.close()
json.dump(out, sys.stdout)
'''

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "api", "openapi.yaml")


class Https:
    def __init__(self, d):
        self.d = d
        self.ca = os.path.join(d.state_dir, "https", "ca.crt")
        self.script = os.path.join(d.tmp, "https-client.py")
        with open(self.script, "w") as f:
            f.write(CLIENT)

    def many(self, reqs):
        p = subprocess.run(["ip", "netns", "exec", self.d.netns.name, sys.executable,
                            self.script, self.ca], input=json.dumps(reqs),
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def one(self, method, path, body=None, token=None, headers=None):
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        return self.many([{"method": method, "path": path, "body": body, "headers": h}])[0]


@pytest.fixture(scope="module")
def access():
    d = Daemon(driver="fake", args=["--https", "127.0.0.1:8443"])
    try:
        yield d, Https(d)
    finally:
        d.cleanup()


def token(d, role, *extra):
    doc = d.cli_json("token", "create", "--role", role, *extra)
    assert doc["secret"].startswith("vireo_" + doc["id"] + "_")
    return doc


def test_every_route_without_credentials_is_401(access):
    d, h = access
    with open(SPEC) as f:
        spec = yaml.safe_load(f)
    reqs = []
    for path, ops in spec["paths"].items():
        concrete = re.sub(r"\{[^}]*\}", "x1", path)
        for method in ops:
            if method in ("get", "post", "put", "patch", "delete"):
                if (method, path) == ("post", "/v1/login"):
                    continue
                reqs.append({"method": method.upper(), "path": concrete, "body": {}})
    assert len(reqs) > 90
    for r, ans in zip(reqs, h.many(reqs)):
        assert ans["status"] == 401, (r, ans)
        assert ans["body"]["error"]["code"] == "unauthenticated", (r, ans)
    # Nor does a path that exists nowhere tell anything.
    assert h.one("GET", "/v1/nothing-here")["status"] == 401
    # A path with a NUL byte too (raw: http.client refuses to send one).
    raw = (r'''
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 8443), timeout=30),
                    server_hostname="127.0.0.1")
s.sendall(b"POST /v1/vms\x00x HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
sys.stdout.write(s.recv(65536).decode(errors="replace").split("\r\n")[0])
''')
    p = subprocess.run(["ip", "netns", "exec", d.netns.name, sys.executable, "-c", raw, h.ca],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and " 401 " in p.stdout, (p.stdout, p.stderr)
    # A malformed or unknown token is no better.
    assert h.one("GET", "/v1/vms", token="vireo_0123456789abcdef_" + "A" * 43)["status"] == 401
    assert h.one("GET", "/v1/vms", headers={"Authorization": "Basic eDp5"})["status"] == 401


def test_roles_of_tokens(access):
    d, h = access
    d.cli("vm", "create", "acc1", "--memory", "64M")
    viewer = token(d, "viewer")["secret"]
    operator = token(d, "operator")["secret"]
    admin = token(d, "admin")["secret"]
    # A viewer reads, and every write is refused with the role it needs.
    for method, path in [("GET", "/v1/vms"), ("GET", "/v1/vms/acc1"), ("GET", "/v1/host"),
                         ("GET", "/v1/tasks"), ("GET", "/v1/whoami")]:
        ans = h.one(method, path, token=viewer)
        assert ans["status"] == 200, (path, ans)
    for method, path in [("POST", "/v1/vms/acc1/start"), ("DELETE", "/v1/vms/acc1"),
                         ("POST", "/v1/networks"), ("POST", "/v1/tokens"),
                         ("GET", "/v1/users"), ("GET", "/v1/vms/acc1/console"),
                         ("POST", "/v1/vms/acc1/vnc-ticket")]:
        ans = h.one(method, path, body={} if method != "GET" else None, token=viewer)
        assert ans["status"] == 403, (path, ans)
        assert ans["body"]["error"]["code"] == "permission-denied"
    ans = h.one("POST", "/v1/vms/acc1/start", body={}, token=viewer)
    assert "needs the operator role" in ans["body"]["error"]["message"]
    # An operator starts a VM but creates no network.
    ans = h.one("POST", "/v1/vms/acc1/start", body={}, token=operator)
    assert ans["status"] == 202, ans
    task = d.wait_task(ans["body"]["task"])
    assert task["state"] == "succeeded"
    ans = h.one("POST", "/v1/networks", body={"name": "n1", "type": "isolated"}, token=operator)
    assert ans["status"] == 403 and "needs the admin role" in ans["body"]["error"]["message"]
    # An operator restores a backup over its VM, never into a new VM (with
    # "as", or when its VM is gone): that makes a VM, which is the admin's.
    d.cli("vm", "create", "accb", "--memory", "64M")
    made = d.wait_task(d.api("POST", "/v1/vms/accb/backups", {}, expect=202)["task"])
    assert made["state"] == "succeeded", made
    # Nor deletes backups (the admin's) through a new one's keep_last.
    ans = h.one("POST", "/v1/vms/accb/backups", body={"keep_last": 1}, token=operator)
    assert ans["status"] == 403 and "keep_last: deleting backups needs the admin role" in \
        ans["body"]["error"]["message"], ans
    assert [b["id"] for b in d.api("GET", "/v1/backups?vm=accb")] == [made["message"]]
    d.wait_task(d.api("DELETE", "/v1/vms/accb", expect=202)["task"])
    restore = f"/v1/backups/{made['message']}/restore"
    for body, why in [({"as": "acc-copy"}, "as: a restore as a new VM"),
                      ({}, "VM 'accb' no longer exists")]:
        ans = h.one("POST", restore, body=body, token=operator)
        assert ans["status"] == 403 and ans["body"]["error"]["code"] == "permission-denied", ans
        msg = ans["body"]["error"]["message"]
        assert why in msg and "needs the admin role" in msg and "has operator" in msg, msg
    assert d.request("GET", "/v1/vms/accb")[0] == 404 and d.request("GET", "/v1/vms/acc-copy")[0] == 404
    ans = h.one("POST", "/v1/backups/none/restore", body={}, token=operator)
    assert ans["status"] == 404, ans  # the route is still the operator's
    # An operator may ask for a one-time VNC password (this VM has no display: 409)
    ans = h.one("POST", "/v1/vms/acc1/vnc-ticket", body={}, token=operator)
    assert ans["status"] == 409 and "no display" in ans["body"]["error"]["message"], ans
    # An admin does; a bad body is then the handler's 400.
    ans = h.one("POST", "/v1/networks", body={"bogus": 1}, token=admin)
    assert ans["status"] == 400, ans
    # Operations say who asked: the token over HTTPS, root on the Unix socket.
    op_id = [t for t in d.api("GET", "/v1/tasks")["tasks"] if t["id"] == task["id"]][0]
    tid = h.one("GET", "/v1/whoami", token=operator)["body"]["principal"]
    assert tid.startswith("token:")
    assert op_id["requested_by"]["who"] == tid
    stop = d.api("POST", "/v1/vms/acc1/stop", {}, expect=202)["task"]
    assert stop["requested_by"]["who"] == "root"
    d.wait_task(stop)
    # Nobody mints a token stronger than their own.
    ans = h.one("POST", "/v1/tokens", body={"role": "admin"}, token=admin)
    assert ans["status"] == 201 and ans["body"]["secret"]


def test_viewers_read_no_cloud_init_secrets(access):
    """GET /v1/vms/{vm}/cloud-init is an admin's: the VM's document, the list
    and the event stream that any viewer reads do not carry its password
    hash and user-data either."""
    d, h = access
    secret_hash = "$6$saltsalt$" + "h" * 86
    ans = d.api("POST", "/v1/vms", {"name": "acc-ci", "memory_mib": 64, "cloud_init": {
        "user": "ann", "password_hash": secret_hash}}, expect=202)
    d.wait_task(ans["task"])
    viewer = token(d, "viewer")["secret"]
    ans = h.one("GET", "/v1/vms/acc-ci", token=viewer)
    assert ans["status"] == 200, ans
    assert ans["body"]["cloud_init"]["user"] == "ann"
    assert "password_hash" not in ans["body"]["cloud_init"], ans
    for path in ["/v1/vms/acc-ci", "/v1/vms", "/v1/events?kind=vm&since=0&follow=false"]:
        ans = h.one("GET", path, token=viewer)
        assert ans["status"] == 200, (path, ans)
        text = ans["body"] if isinstance(ans["body"], str) else json.dumps(ans["body"])
        assert "acc-ci" in text and secret_hash not in text, (path, text[:2000])
    assert h.one("GET", "/v1/vms/acc-ci/cloud-init", token=viewer)["status"] == 403
    shown = d.api("GET", "/v1/vms/acc-ci/cloud-init")
    assert shown["settings"]["password_hash"] == secret_hash


def test_revoked_and_expiring_tokens(access):
    d, h = access
    t = token(d, "viewer", "--expires", "1h")
    # Dates on the wall clock (kept in the store, read by every host, across
    # boots), not the monotonic one: an hour from now, made now.
    now = datetime.datetime.now(datetime.timezone.utc)
    expires = datetime.datetime.fromisoformat(t["expires_at"].replace("Z", "+00:00"))
    created = datetime.datetime.fromisoformat(t["created_at"].replace("Z", "+00:00"))
    assert now + datetime.timedelta(minutes=50) < expires < now + datetime.timedelta(hours=2), t
    assert abs((created - now).total_seconds()) < 600, t
    assert h.one("GET", "/v1/vms", token=t["secret"])["status"] == 200
    listed = d.cli_json("token", "list")
    assert any(x["id"] == t["id"] for x in listed)
    assert all("secret" not in x and "digest" not in x for x in listed)
    d.cli("token", "revoke", t["id"])
    ans = h.one("GET", "/v1/vms", token=t["secret"])
    assert ans["status"] == 401 and "revoked" in ans["body"]["error"]["message"]
    p = d.cli("token", "create", "--role", "viewer", "--expires", "soon", check=False)
    assert p.returncode != 0 and "expires 'soon'" in p.stderr


def login(h, user, password):
    return h.one("POST", "/v1/login", body={"user": user, "password": password})


def test_sessions_cookie_and_csrf(access):
    d, h = access
    d.cli("user", "create", "olga", "--role", "operator", "--password-file", "-",
          input="correct horse battery\n")
    users = d.cli_json("user", "list")
    assert [u for u in users if u["name"] == "olga"][0]["role"] == "operator"
    assert all("password_hash" not in u for u in users)
    ans = login(h, "olga", "correct horse battery")
    assert ans["status"] == 200, ans
    cookie = ans["headers"]["set-cookie"]
    attrs = [a.strip() for a in cookie.split(";")]
    assert attrs[0].startswith("vireo_session=") and len(attrs[0]) > 40
    assert "HttpOnly" in attrs and "Secure" in attrs and "SameSite=Strict" in attrs
    assert any(a.startswith("Max-Age=") and int(a[8:]) > 0 for a in attrs)
    csrf = ans["body"]["csrf_token"]
    expires = datetime.datetime.fromisoformat(ans["body"]["expires_at"].replace("Z", "+00:00"))
    assert expires > datetime.datetime.now(datetime.timezone.utc), ans["body"]
    session = {"Cookie": attrs[0]}
    assert h.one("GET", "/v1/whoami", headers=session)["body"]["principal"] == "user:olga"
    # A change without the CSRF token is refused; with it, it passes.
    ans = h.one("POST", "/v1/vms/acc1/start", body={}, headers=session)
    assert ans["status"] == 403 and "X-CSRF-Token" in ans["body"]["error"]["message"]
    ans = h.one("POST", "/v1/vms/acc1/start", body={},
                headers={**session, "X-CSRF-Token": "wrong"})
    assert ans["status"] == 403
    ans = h.one("POST", "/v1/vms/acc1/start", body={}, headers={**session, "X-CSRF-Token": csrf})
    assert ans["status"] == 202, ans
    task = d.wait_task(ans["body"]["task"])
    assert task["requested_by"]["who"] == "user:olga"
    # An operator's session creates no network.
    ans = h.one("POST", "/v1/networks", body={"name": "n2", "type": "isolated"},
                headers={**session, "X-CSRF-Token": csrf})
    assert ans["status"] == 403
    # Logout ends the session.
    ans = h.one("POST", "/v1/logout", body={}, headers={**session, "X-CSRF-Token": csrf})
    assert ans["status"] == 200 and "Max-Age=0" in ans["headers"]["set-cookie"]
    assert h.one("GET", "/v1/vms", headers=session)["status"] == 401
    # A new password ends the sessions too; a deleted user cannot log in.
    cookie2 = login(h, "olga", "correct horse battery")["headers"]["set-cookie"].split(";")[0]
    d.cli("user", "passwd", "olga", "--password-file", "-", input="another password\n")
    assert h.one("GET", "/v1/vms", headers={"Cookie": cookie2})["status"] == 401
    assert login(h, "olga", "another password")["status"] == 200
    d.cli("user", "delete", "olga")
    assert login(h, "olga", "another password")["status"] == 401


def test_sessions_only_from_the_servers_own_origin(access):
    """A browser says which page made a request (Origin): a session used
    from another origin (another port of the same host is the same site
    for SameSite) is refused, a console WebSocket too, which carries no
    CSRF token."""
    d, h = access
    d.cli("user", "create", "oona", "--role", "operator", "--password-file", "-",
          input="origin test password\n")
    ans = login(h, "oona", "origin test password")
    assert ans["status"] == 200, ans
    session = {"Cookie": ans["headers"]["set-cookie"].split(";")[0]}
    ans = h.one("GET", "/v1/whoami", headers={**session, "Origin": "https://127.0.0.1:8443"})
    assert ans["status"] == 200 and ans["body"]["principal"] == "user:oona", ans
    for origin in ["https://127.0.0.1:9443", "https://evil.example", "null",
                   "http://127.0.0.1:8443"]:
        ans = h.one("GET", "/v1/vms/acc1/console",
                    headers={**session, "Origin": origin, "Upgrade": "websocket",
                             "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        assert ans["status"] == 403, (origin, ans)
        assert "Origin" in ans["body"]["error"]["message"], ans
    # API tokens are for scripts, not pages: no Origin rule for them.
    viewer = token(d, "viewer")["secret"]
    assert h.one("GET", "/v1/vms", token=viewer,
                 headers={"Origin": "https://elsewhere"})["status"] == 200
    d.cli("user", "delete", "oona")


def test_a_users_own_tokens_end_with_the_user(access):
    """A token a user makes over HTTPS is theirs: deleting the user (the way
    to take someone's access away) ends it too."""
    d, h = access
    d.cli("user", "create", "adele", "--role", "admin", "--password-file", "-",
          input="adele's password\n")
    ans = login(h, "adele", "adele's password")
    assert ans["status"] == 200, ans
    session = {"Cookie": ans["headers"]["set-cookie"].split(";")[0],
               "X-CSRF-Token": ans["body"]["csrf_token"]}
    made = h.one("POST", "/v1/tokens", body={"role": "operator"}, headers=session)
    assert made["status"] == 201 and made["body"]["user"] == "adele", made
    secret = made["body"]["secret"]
    # And a token of hers makes tokens that are hers too.
    made2 = h.one("POST", "/v1/tokens", body={"role": "viewer"}, token=secret)
    assert made2["status"] == 403, made2  # an operator makes no token (admin's route)
    assert h.one("GET", "/v1/whoami", token=secret)["body"]["principal"] == \
        f"token:{made['body']['id']} (user:adele)"
    d.cli("user", "delete", "adele")
    ans = h.one("GET", "/v1/vms", token=secret)
    assert ans["status"] == 401, ans
    assert not [t for t in d.cli_json("token", "list") if t.get("user") == "adele"]


def test_bad_users_are_refused_clearly(access):
    d, h = access
    p = d.cli("user", "create", "Bad Name", "--role", "viewer", "--password-file", "-",
              input="long enough\n", check=False)
    assert p.returncode != 0
    p = d.cli("user", "create", "shorty", "--role", "viewer", "--password-file", "-",
              input="short\n", check=False)
    assert p.returncode != 0 and "at least 8" in p.stderr
    p = d.cli("user", "create", "x", "--role", "king", "--password-file", "-",
              input="long enough\n", check=False)
    assert p.returncode == 2
    assert d.request("POST", "/v1/login", {"user": "a", "password": "b"})[0] == 400


PARALLEL = r'''
import http.client, json, ssl, sys, threading
ca, body, n = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
conns, out = [], [None] * n
for i in range(n):  # all connected first, then all sent at once
    c = http.client.HTTPSConnection("127.0.0.1", 8443, context=ctx, timeout=120)
    c.connect()
    conns.append(c)
go = threading.Barrier(n)
def one(i):
    go.wait()
    conns[i].request("POST", "/v1/login", body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
    out[i] = conns[i].getresponse().status
threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
for t in threads: t.start()
for t in threads: t.join()
json.dump(out, sys.stdout)
'''


def test_parallel_wrong_passwords_cannot_pass_the_lockout_together(access):
    d, h = access
    d.cli("user", "create", "racer", "--role", "viewer", "--password-file", "-",
          input="the racer's password\n")
    script = os.path.join(d.tmp, "parallel-login.py")
    with open(script, "w") as f:
        f.write(PARALLEL)
    body = {"user": "racer", "password": "a wrong guess"}
    p = subprocess.run(["ip", "netns", "exec", d.netns.name, sys.executable, script, h.ca,
                        json.dumps(body), "40"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    statuses = json.loads(p.stdout)
    assert set(statuses) <= {401, 429}, statuses
    # Each attempt counts before its password is checked, and only a few
    # are checked at once: 40 guesses sent together do not all get checked.
    checked = statuses.count(401)
    assert 1 <= checked <= 8, statuses
    # The address and the user are cleared by the right password once the
    # lock-out ends (bounded wait), for the tests that follow.
    for _ in range(60):
        ans = login(h, "racer", "the racer's password")
        if ans["status"] == 200:
            break
        assert ans["status"] == 429, ans
        time.sleep(min(int(ans["headers"]["retry-after"]), 5))
    assert ans["status"] == 200, ans


def test_1000_wrong_passwords_are_slowed(access):
    d, h = access
    d.cli("user", "create", "victim", "--role", "viewer", "--password-file", "-",
          input="the real password\n")
    reqs = [{"method": "POST", "path": "/v1/login",
             "body": {"user": "victim", "password": f"guess{i}"}} for i in range(1000)]
    answers = h.many(reqs)
    checked = sum(1 for a in answers if a["status"] == 401)
    locked = [a for a in answers if a["status"] == 429]
    assert checked + len(locked) == 1000, {a["status"] for a in answers}
    # Five free tries, then a lock-out that doubles: only a handful of the
    # 1000 guesses is even checked.
    assert checked < 20, checked
    assert locked and all(int(a["headers"]["retry-after"]) >= 1 for a in locked)
    assert locked[0]["body"]["error"]["code"] == "too-many-requests"
    # The right password is refused too while locked out: checked right
    # after a refusal with at least 3 s to go (not on whatever the 1000
    # requests' duration left; bounded: each checked guess doubles the lock).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ans = login(h, "victim", "another guess")
        if ans["status"] == 429 and int(ans["headers"]["retry-after"]) >= 3:
            break
    assert ans["status"] == 429 and int(ans["headers"]["retry-after"]) >= 3, ans
    assert login(h, "victim", "the real password")["status"] == 429


def test_cli_over_https(access):
    d, h = access
    viewer = token(d, "viewer")["secret"]
    operator = token(d, "operator")["secret"]
    vireo = os.path.join(os.environ.get("VIREO_BUILD", "build"), "cli", "vireo")
    if d.vm("acc1")["state"] == "running":
        d.wait_task(d.api("POST", "/v1/vms/acc1/stop", {}, expect=202)["task"])

    def remote(secret, *args):
        env = {**os.environ, "VIREO_URL": "https://127.0.0.1:8443", "VIREO_TOKEN": secret,
               "VIREO_CACERT": h.ca, "VIREO_SOCKET": "/nonexistent"}
        return subprocess.run(["ip", "netns", "exec", d.netns.name, vireo, *args], env=env,
                              capture_output=True, text=True, timeout=60)

    p = remote(viewer, "vm", "list")
    assert p.returncode == 0 and "acc1" in p.stdout, p.stderr
    p = remote(viewer, "vm", "start", "acc1")
    assert p.returncode == 1 and "needs the operator role" in p.stderr, p.stderr
    p = remote(operator, "vm", "start", "acc1")
    assert p.returncode == 0, p.stderr
    assert d.vm("acc1")["state"] == "running"
    p = remote("vireo_0123456789abcdef_" + "B" * 43, "vm", "list")
    assert p.returncode == 1 and "unknown, revoked or expired" in p.stderr
    # Never the token in clear text: an http:// URL is refused before any request.
    env = {**os.environ, "VIREO_URL": "http://127.0.0.1:8443", "VIREO_TOKEN": viewer}
    p = subprocess.run([vireo, "vm", "list"], env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "https://" in p.stderr, (p.returncode, p.stderr)


def test_bad_tokens_are_counted_in_a_row(access):
    """Bad tokens lock an address out after 5 in a row; a good token from it
    clears the count (earlier tests' bad tokens too), so a script that now
    and then sends an expired token is not locked out in the end."""
    d, h = access
    good = token(d, "viewer")["secret"]
    bad = "vireo_0123456789abcdef_" + "C" * 43
    reqs = [{"method": "GET", "path": "/v1/vms", "headers": {"Authorization": "Bearer " + good}}]
    for _ in range(3):
        reqs += [{"method": "GET", "path": "/v1/vms", "headers": {"Authorization": "Bearer " + t}}
                 for t in [bad] * 4 + [good]]
    answers = h.many(reqs)
    assert [a["status"] for a in answers] == [200] + [401, 401, 401, 401, 200] * 3, answers


def test_a_certificate_given_that_cannot_be_used_stops_vireod(access):
    """--https-cert/--https-key given explicitly are a choice, as --https
    ADDR is: vireod does not start without them (only the defaults' failures
    are warnings). Last in the module: it restarts vireod."""
    d, h = access
    d.stop()
    args = d.args
    d.args = ["--https-cert", "/nonexistent/https.crt", "--https-key", "/nonexistent/https.key"]
    try:
        with pytest.raises(RuntimeError):
            d.start()
        # Refused before anything starts (exit status 2), not left behind
        # running threads (an exit then crashed).
        assert d.proc.poll() == 2, d.log()[-2000:]
        assert "cannot serve HTTPS for users: certificate /nonexistent/https.crt" in d.log()
    finally:
        d.args = args
        d.start()

