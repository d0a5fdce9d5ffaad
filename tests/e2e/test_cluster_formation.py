"""Forming a cluster (vireo cluster init/join/token/show/leave, vireo host
remove) on hosts of the multi-host harness, each a network namespace with
its own vireod, which brings its own etcd member and HTTPS listener once the
host is in a cluster."""

import json
import os
import signal
import time

import pytest

from vireo_harness import pid_alive, wait_until


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


def test_init_join_two_hosts(cluster):
    c = cluster(3, listen=False)
    h1, h2, h3 = c.hosts
    assert show(h1) == {"cluster": None}
    assert "standalone" in h1.cli("cluster", "show").stdout
    # Something on h1 before: a VM, a pool, a network.
    h1.task_ok("POST", "/v1/vms", {"name": "web1", "memory_mib": 64})
    doc = init(h1)
    assert doc["join_command"].startswith(f"vireo cluster join {h1.address}:8443 --token ")
    s = show(h1)
    assert s["cluster"]["id"] == doc["cluster"] and s["quorum"] is True
    assert [m["voting"] for m in s["etcd_members"]] == [True]
    assert h1.api("GET", "/v1/vms/web1")["name"] == "web1"
    # h2 joins.
    tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
    join(h2, tok, h1)
    s = show(h2)
    assert s["quorum"] is True
    assert sorted(m["name"] for m in s["etcd_members"]) == ["h1", "h2"]
    assert all(m["voting"] for m in s["etcd_members"])
    tok = h1.api("POST", "/v1/cluster/tokens", {"ttl_s": 600}, expect=201)
    join(h3, tok, h2)
    for h in c.hosts:
        s = show(h)
        assert len(s["etcd_members"]) == 3 and all(m["voting"] and m["healthy"]
                                                   for m in s["etcd_members"])
        wait_until(lambda: sorted((x["name"], x["state"]) for x in
                                  h.api("GET", "/v1/hosts")["hosts"]) ==
                   [("h1", "online"), ("h2", "online"), ("h3", "online")], 20,
                   what=f"3 hosts online seen from {h.name}")
