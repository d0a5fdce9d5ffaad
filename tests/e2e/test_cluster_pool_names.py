"""Pool names in a cluster (docs/cluster.md, "Pool names"): a name is the
cluster's (one shared pool) or hosts' own (each host may have one of that
name), never both. On three fake-driver hosts:

* a shared pool named like another member's own pool is refused, naming
  that host (before: made, and that host's own pool hid it there);
* a joiner's dir pool named like a shared pool refuses the join (before:
  only an rbd pool was checked), and a shared create of the name of a
  pool a joiner copied in, before it is a member, is refused;
* raced, with hold points (util/test-hold.h): a shared create that claimed
  the name and looked at every host, against an own create of that name on
  another host, which is refused; and an own create that checked its
  registry, against a shared create meanwhile, which wins while the own
  one is refused at its save (before: both were made, either way)."""

import os

from test_cluster_projects import held, release
from vireo_harness import wait_until


def form(hosts):
    first = hosts[0]
    first.cli("cluster", "init", "--address", first.address, "--output", "json")
    first.use_cluster_certs()
    for h in hosts[1:]:
        join(first, h)
    wait_until(lambda: first.api("GET", "/v1/cluster").get("manager"), 30, what="a manager")


def token(first):
    return first.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)["token"]


def join(first, h):
    """The CLI's join: it waits for vireod back in cluster mode."""
    h.cli("cluster", "join", f"{first.address}:{first.port}", "--token", token(first),
          "--address", h.address, "--output", "json")
    h.use_cluster_certs()


def own_pool(h, name, tmp_path):
    path = tmp_path / f"{h.name}-{name}"
    path.mkdir()
    return h.request("POST", "/v1/pools", {"name": name, "path": str(path)})


def shared(c, h, name):
    path = os.path.join(c.shared_dir, name)
    os.makedirs(path, exist_ok=True)
    return h.request("POST", "/v1/pools", {"name": name, "path": path, "shared": True})


def test_pool_names_are_the_clusters_or_hosts_own(cluster, tmp_path, monkeypatch):
    faults = str(tmp_path / "faults")
    os.makedirs(faults)
    monkeypatch.setenv("VIREO_FAKE_FAULTS", faults)
    c = cluster(3, driver="fake", listen=False)
    h1, h2, h3 = c.hosts
    form([h1, h2])

    # Hosts' own pools may share a name; a shared pool may not take it.
    assert own_pool(h1, "lp", tmp_path)[0] == 201
    assert own_pool(h2, "lp", tmp_path)[0] == 201
    status, doc = shared(c, h1, "lp")
    assert status == 409, doc
    assert "a pool named 'lp' already exists" in doc["error"]["message"], doc
    assert own_pool(h2, "lp2", tmp_path)[0] == 201
    status, doc = shared(c, h1, "lp2")
    assert status == 409, doc
    assert "pool name 'lp2' is taken: h2 has a pool 'lp2' of its own" in \
        doc["error"]["message"], doc
    assert not h2.api("GET", "/v1/pools/lp2").get("shared")

    # The shared create claimed the name and looked at every host: h2's
    # own create of that name meanwhile is refused.
    t, out = held(faults, "pool_name_claimed", lambda: shared(c, h1, "r1"))
    try:
        status, doc = own_pool(h2, "r1", tmp_path)
        assert status == 409, doc
        assert "a shared pool 'r1' is being created now" in doc["error"]["message"], doc
    finally:
        release(faults, "pool_name_claimed", t)
    assert out["r"][0] == 201, out
    # h2's own create checked its registry; the shared create meanwhile
    # finds no pool of that name and wins; h2's save is refused.
    t, out = held(faults, "pool_own_checked", lambda: own_pool(h2, "r2", tmp_path))
    try:
        status, doc = shared(c, h1, "r2")
        assert status == 201, doc
    finally:
        release(faults, "pool_own_checked", t)
    status, doc = out["r"]
    assert status == 409, doc
    assert "the cluster has a shared pool 'r2'" in doc["error"]["message"], doc
    wait_until(lambda: (h2.request("GET", "/v1/pools/r2")[1] or {}).get("shared"), 30,
               what="h2 sees the shared pool r2")

    # A joiner's dir pool named like a shared pool: the join is refused.
    assert own_pool(h3, "r1", tmp_path)[0] == 201
    status, doc = h3.request("POST", "/v1/cluster/join", {
        "member": f"{h1.address}:{h1.port}", "token": token(h1), "address": h3.address})
    assert status == 409, doc
    assert ("pool name 'r1' is taken: the cluster has a shared pool 'r1' (dir at "
            f"{os.path.join(c.shared_dir, 'r1')}), this host a pool 'r1' (dir at "
            f"{tmp_path / 'h3-r1'})") in doc["error"]["message"], doc
    assert h3.api("GET", "/v1/cluster") == {"cluster": None}
    assert h3.request("DELETE", "/v1/pools/r1")[0] < 300

    # A joiner copied its pools in and is no member yet: a shared create of
    # one of their names finds it all the same (before: made, both kept).
    assert own_pool(h3, "jp", tmp_path)[0] == 201
    t, out = held(faults, "cluster_join_copied", lambda: join(h1, h3))
    try:
        status, doc = shared(c, h1, "jp")
        assert status == 409, doc
        assert "pool name 'jp' is taken: host " in doc["error"]["message"], doc
        assert "(no member: joining the cluster now, or left by a join that did not " \
            "finish) has a pool 'jp' of its own" in \
            doc["error"]["message"], doc
    finally:
        release(faults, "cluster_join_copied", t)
    assert not h3.api("GET", "/v1/pools/jp").get("shared")
