"""The peer-only routes (called by the hosts of a cluster on each other's
mutual-TLS listener: live migration, cold move, an evacuation's moved VM,
an image's files) answer a cluster member's certificate only: a
certificate the cluster CA signed that names no member (made here with the
CA key, as a host that left or a stolen key could) gets 403
permission-denied on every one of them, while a member's certificate
reaches the route (its own answer: 400, 404...). On the Unix socket they
answer 401 unauthenticated (a real cluster, 2 hosts, fake driver)."""

import os
import shutil

from cluster_harness import Pki
from test_migrate import form

ID = "00000000-0000-4000-8000-000000000000"
PEER_ROUTES = [
    ("POST", "/v1/migrations/incoming", {}),
    ("POST", f"/v1/migrations/incoming/{ID}/digest", {}),
    ("POST", f"/v1/migrations/incoming/{ID}/commit", {"rev": 1}),
    ("POST", f"/v1/migrations/incoming/{ID}/alive", {}),
    ("POST", f"/v1/migrations/incoming/{ID}/recover", {"vm": ID}),
    ("DELETE", f"/v1/migrations/incoming/{ID}", None),
    ("POST", "/v1/migrations/moved", {"vm": ID}),
    ("POST", "/v1/moves/incoming", {"vm": ID}),
    ("GET", f"/v1/moves/outgoing/{ID}/volumes/default.nope", None),
    ("GET", "/v1/images/default/files", None),
    ("GET", "/v1/images/default/files/image.json", None),
]


def test_peer_routes_refuse_a_certificate_of_no_member(cluster, tmp_path):
    c = cluster(2, listen=False)
    form(c)
    h1, h2 = c.hosts
    pki = Pki.__new__(Pki)
    pki.dir = str(tmp_path / "pki")
    os.makedirs(pki.dir)
    for f in ("ca.crt", "ca.key"):
        shutil.copy(os.path.join(h1.state_dir, "cluster", f), pki.dir)
    pki.ca_cert, pki.ca_key = (os.path.join(pki.dir, "ca.crt"), os.path.join(pki.dir, "ca.key"))
    intruder = pki.host_cert("intruder", ["127.0.0.9"])
    # The cluster's own routes take that certificate (the CA signed it):
    # only the peer routes ask for a member.
    status, doc = h2.https("GET", "/v1/host", via=h1, client=intruder)
    assert status == 200, (status, doc)
    for method, path, body in PEER_ROUTES:
        status, doc = h2.https(method, path, body, via=h1, client=intruder)
        assert status == 403, (path, status, doc)
        assert doc["error"]["code"] == "permission-denied", (path, doc)
        assert "names no member of the cluster" in doc["error"]["message"], (path, doc)
        # A member's certificate (h1's) gets past the check.
        status, doc = h2.https(method, path, body, via=h1)
        assert status not in (401, 403), (path, status, doc)
        # The Unix socket is no host of the cluster.
        status, doc = h2.request(method, path, body)
        assert status == 401 and doc["error"]["code"] == "unauthenticated", (path, doc)
        assert "hosts of the cluster only" in doc["error"]["message"], (path, doc)
