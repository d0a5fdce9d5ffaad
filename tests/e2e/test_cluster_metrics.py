"""Monitoring in a 2-host cluster (cluster_harness, fake driver, sampling
every second): any host answers for another host's metrics and for a VM's
on another host (forwarded to the host that keeps them), and each host's
/metrics has only its own VMs."""

from vireo_harness import wait_until

from test_migrate import form


def test_metrics_forwarded(cluster):
    c = cluster(2, extra_args=("--metrics-interval", "1"), listen=False)
    form(c)
    h1, h2 = c.hosts
    h2_id = h2.api("GET", "/v1/host")["id"]
    doc = h1.api("GET", f"/v1/hosts/{h2.name}/metrics?range=1h")
    assert doc["id"] == h2_id and doc["name"] == h2.name
    assert h1.api("GET", f"/v1/hosts/{h2_id}/metrics")["id"] == h2_id
    status, err = h1.request("GET", "/v1/hosts/nope/metrics")
    assert status == 404, err
    h2.cli("vm", "create", "c1", "--host", h2.name)
    h2.cli("vm", "start", "c1")
    wait_until(lambda: h2.api("GET", "/v1/vms/c1/metrics")["timestamps"], 15,
               what="a sample of c1 on h2")
    doc = h1.api("GET", "/v1/vms/c1/metrics?range=1d")
    assert doc["host"] == h2.name and doc["step"] == 60 and doc["timestamps"], doc
    assert 'vm_name="c1"' in h2.request("GET", "/metrics")[1]
    assert 'vm_name="c1"' not in h1.request("GET", "/metrics")[1]
