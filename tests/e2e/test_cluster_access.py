"""Access control in a cluster: the HTTPS listener for users (port 8444
beside the peers' 8443) presents the host certificate the cluster CA
issued, and users and API tokens are the cluster's: a token made on one
host is accepted by another, and a revoke on one is seen by all."""

import json
import subprocess

from test_cluster_formation import init, join


def user_https(target, via, method, path, token=None, headers=(), body=None):
    """METHOD on target's users' listener (8444) from via's namespace, with
    an API token, more headers and a JSON body."""
    # A forwarded create waits on placement: room on a loaded machine.
    cmd = ["curl", "-sS", "--max-time", "30", "--cacert", target.ca, "-X", method,
           "-o", "-", "-w", "\n%{http_code}", f"https://{target.address}:8444{path}"]
    if token:
        cmd += ["-H", "Authorization: Bearer " + token]
    for h in headers:
        cmd += ["-H", h]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    p = subprocess.run(["ip", "netns", "exec", via.host_netns.name, *cmd], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    text, _, code = p.stdout.rpartition("\n")
    return int(code), json.loads(text) if text else None


def login_https(target, via, user, password):
    """POST /v1/login on target: the session cookie ("vireo_session=...")."""
    cmd = ["curl", "-sS", "-i", "--max-time", "30", "--cacert", target.ca, "-X", "POST",
           "-H", "Content-Type: application/json",
           "--data", json.dumps({"user": user, "password": password}),
           f"https://{target.address}:8444/v1/login"]
    p = subprocess.run(["ip", "netns", "exec", via.host_netns.name, *cmd], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    head = p.stdout.replace("\r\n", "\n").partition("\n\n")[0]
    cookies = [line.split(":", 1)[1].strip().split(";")[0] for line in head.split("\n")
               if line.lower().startswith("set-cookie:")]
    assert cookies, p.stdout
    return cookies[0]


def test_tokens_are_the_clusters(cluster):
    c = cluster(2, listen=False)
    h1, h2 = c.hosts
    init(h1)
    join(h2, h1.cli_json("cluster", "token"), h1)
    tok = h1.cli_json("token", "create", "--role", "viewer")
    # h2 checks h1's token; curl verifies h2's certificate against the cluster CA.
    status, doc = user_https(h2, h1, "GET", "/v1/hosts", tok["secret"])
    assert status == 200, doc
    assert user_https(h2, h1, "GET", "/v1/hosts")[0] == 401
    status, doc = user_https(h1, h2, "POST", "/v1/vms", tok["secret"])
    assert status == 403 and "admin" in doc["error"]["message"]
    h2.cli("token", "revoke", tok["id"])
    assert user_https(h1, h2, "GET", "/v1/hosts", tok["secret"])[0] == 401
    # Users are the cluster's too, sessions live in the memory of the host
    # that made them: one on h2 still ends when h1 changes the user's
    # password or deletes the user.
    h1.cli("user", "create", "clu", "--role", "viewer", "--password-file", "-",
           input="cluster user password\n")
    cookie = ["Cookie: " + login_https(h2, h1, "clu", "cluster user password")]
    assert user_https(h2, h1, "GET", "/v1/whoami", headers=cookie)[0] == 200
    h1.cli("user", "passwd", "clu", "--password-file", "-", input="another password\n")
    status, doc = user_https(h2, h1, "GET", "/v1/whoami", headers=cookie)
    assert status == 401 and "password was changed" in doc["error"]["message"], doc
    cookie = ["Cookie: " + login_https(h2, h1, "clu", "another password")]
    assert user_https(h2, h1, "GET", "/v1/whoami", headers=cookie)[0] == 200
    h1.cli("user", "delete", "clu")
    status, doc = user_https(h2, h1, "GET", "/v1/whoami", headers=cookie)
    assert status == 401 and "user was deleted" in doc["error"]["message"], doc
