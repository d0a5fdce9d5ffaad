"""Joins across vireo versions (docs/cluster.md, "Joining across
versions"), on three fake-driver hosts of which two run an older vireod
(VIREO_OLD_VIREOD: a build from before join protocol 2; skipped without
it, as in make check, which has no older build):

* a joiner whose own pool an older member cannot check against the
  cluster's shared pools is refused before anything changes, naming what
  to upgrade (before: the older member answered "invalid join request" to
  the newer fields, or the check was skipped);
* the same joiner without such a pool (its own "default" only), with a
  VM (so its projects to check, which the older member checks too), sends
  the request the older member knows, and joins (before: refused, as if
  the older member could not check projects);
* an older joiner is refused by a newer member while the cluster has a
  shared pool (its request lacks its dir pools, which it would copy in
  unchecked: before, taken), and joins once the cluster has none (its
  request, without a protocol, taken as it was)."""

import os

import pytest

from test_cluster_pool_names import own_pool, shared, token

OLD = os.environ.get("VIREO_OLD_VIREOD")


def restart_as(h, vireod):
    h.stop()
    h.vireod = vireod
    h.start()


def join_request(member, h):
    return h.request("POST", "/v1/cluster/join", {
        "member": f"{member.address}:{member.port}", "token": token(member),
        "address": h.address})


@pytest.mark.skipif(not OLD, reason="VIREO_OLD_VIREOD (an older vireod) not set")
def test_joins_across_versions(cluster, tmp_path):
    c = cluster(3, driver="fake", listen=False)
    h1, h2, h3 = c.hosts
    restart_as(h1, OLD)
    restart_as(h3, OLD)
    h1.cli("cluster", "init", "--address", h1.address, "--output", "json")
    h1.use_cluster_certs()

    assert own_pool(h2, "p1", tmp_path)[0] == 201
    status, doc = join_request(h1, h2)
    assert status == 409, doc
    assert doc["error"]["message"] == (
        f"https://{h1.address}:{h1.port} runs an older vireo (join protocol 1, this host 2) "
        "that cannot check this host's pools against the cluster's: upgrade vireo on the "
        "cluster's hosts first, then join"), doc
    assert h2.api("GET", "/v1/cluster") == {"cluster": None}

    assert h2.request("DELETE", "/v1/pools/p1")[0] < 300
    h2.task_ok("POST", "/v1/vms", {"name": "v2", "memory_mib": 64})
    h2.cli("cluster", "join", f"{h1.address}:{h1.port}", "--token", token(h1),
           "--address", h2.address, "--output", "json")
    h2.use_cluster_certs()
    assert shared(c, h2, "sp")[0] == 201
    status, doc = join_request(h2, h3)
    assert status == 409, doc
    assert ("it runs an older vireo (join protocol 1), which does not have its own pools "
            "other than rbd checked against the cluster's shared pools (sp): upgrade vireo on "
            "this host first, then join") in doc["error"]["message"], doc
    assert h3.api("GET", "/v1/cluster") == {"cluster": None}
    assert h2.request("DELETE", "/v1/pools/sp")[0] < 300
    h3.cli("cluster", "join", f"{h2.address}:{h2.port}", "--token", token(h2),
           "--address", h3.address, "--output", "json")
    assert sorted(m["name"] for m in h2.api("GET", "/v1/cluster")["etcd_members"]) == \
        ["h1", "h2", "h3"]
    assert [v["name"] for v in h1.api("GET", "/v1/vms")["vms"]] == ["v2"]
