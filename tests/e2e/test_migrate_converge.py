"""A live migration that does not converge (docs/cluster.md, "A guest that
dirties memory faster than it is copied"), on a real two-host cluster
(cluster_harness; one real TCG guest on a shared pool, booted once for
both cases): the guest dirties 8 MiB of memory over and over, faster than
a small --bandwidth copies it.

1. Without --force-converge and with a short --converge-timeout the
   migration is aborted at the limit with the rates it saw; the VM runs on
   at the source (its console counter goes on) and nothing is left at the
   destination (no QEMU, no run or state dir).
2. With --force-converge the vCPU throttle goes harder (the task's
   progress shows it, in its details and its words) and the migration
   completes, guest RAM compared on both sides (verify_memory): the VM
   runs on at the destination, nothing is left at the source.

The decision itself (when a copy counts as not converging, the abort's
words) is unit-tested: tests/unit/test-migrate-converge.c."""

import re

from test_migrate import form, shared_pool, hosts_of
from test_migrate_robust import busy_vm, counter_goes_on, nothing_at

from vireo_harness import wait_until


def test_not_converging_is_aborted_and_force_converge_completes(cluster):
    c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    vm_id = busy_vm(h1, "busy", memory=128, dirty_mib=8)

    # Bad values: 400 naming the field, through the CLI too.
    status, doc = h1.request("POST", "/v1/vms/busy/migrate",
                             {"to": "h2", "converge_timeout_s": 0})
    assert status == 400 and "converge_timeout_s" in doc["error"]["message"], doc
    status, doc = h1.request("POST", "/v1/vms/busy/migrate",
                             {"to": "h2", "force_converge": "yes"})
    assert status == 400 and "force_converge" in doc["error"]["message"], doc
    p = h1.cli("vm", "migrate", "busy", "--to", "h2", "--converge-timeout", "x", check=False)
    assert p.returncode != 0 and "--converge-timeout" in p.stderr, p

    # 1. 1 MiB/s against a guest dirtying far more: aborted at the limit,
    # the reason names the rates; the VM runs on at h1, nothing on h2.
    p = h1.cli("vm", "migrate", "busy", "--to", "h2", "--bandwidth", "1M/s",
               "--converge-timeout", "15", check=False, timeout=300)
    assert p.returncode != 0, p
    assert "did not converge within 15 s: dirty rate" in p.stderr, p.stderr
    assert re.search(r"dirty rate (\d+\.\d MiB/s|not measured yet \(the first pass over the "
                     r"memory did not end\)), bandwidth \d+\.\d MiB/s \(\d+\.\d MiB still to "
                     r"send; vCPUs throttled up to \d+% by auto-converge\); --force-converge "
                     r"throttles harder", p.stderr), p.stderr
    assert "the VM runs on here" in p.stderr, p.stderr
    print("not converged:", p.stderr.strip())
    tasks = [t for t in h1.api("GET", "/v1/tasks")["tasks"] if t["kind"] == "migrate"]
    assert tasks and tasks[-1]["state"] == "failed", tasks
    assert tasks[-1]["error"]["code"], tasks[-1]
    assert h1.vm("busy")["state"] == "running" and "migration" not in h1.vm("busy")
    assert hosts_of(h2, "busy") == ["h1"]
    nothing_at(h2, vm_id)
    counter_goes_on(h1, "busy")

    # 2. --force-converge: once the first pass over the memory ends, the
    # throttle starts at 50% and climbs (25% a round, tail-slow) until the
    # copy catches up; the task shows it as it goes; the RAM of both sides
    # is compared before the switch. (At 8 MiB/s this guest converged
    # unthrottled under TCG: 2 MiB/s is below its dirty rate.)
    doc = h1.api("POST", "/v1/vms/busy/migrate",
                 {"to": "h2", "bandwidth": "2M/s", "converge_timeout_s": 240,
                  "force_converge": True, "verify_memory": True}, expect=202)
    tid = doc["task"]["id"]
    seen, words = [0], set()

    def ended():
        t = h1.api("GET", f"/v1/tasks/{tid}")
        seen.append((t.get("details") or {}).get("cpu_throttle_percent", 0))
        words.add(t.get("message") or "")
        return t if t["state"] != "running" else None
    task = wait_until(ended, 300, what="the forced migration to end")
    print("forced:", task["state"], task.get("result") or task.get("error"), max(seen),
          sorted(words))
    assert task["state"] == "succeeded", task
    res = task["result"]
    assert res["memory_verified"] is True, res
    fc = res["force_converge"]
    assert fc["cpu_throttle_initial"] == 50 and fc["cpu_throttle_increment"] == 25, res
    assert fc["tailslow"] is True and fc["max_throttle_percent"] >= 50, res
    assert fc["max_throttle_percent"] >= max(seen), (res, seen)
    # The progress showed the throttle, in the details and in the words,
    # when it lasted more than its first step: a guest that TCG starves on a
    # loaded machine dirties slowly and converged within the first (50%)
    # round, before a progress update (a clean make check saw that).
    if fc["max_throttle_percent"] > fc["cpu_throttle_initial"]:
        assert max(seen) >= 50, seen
        assert any(re.fullmatch(r"copying memory \(vCPUs throttled \d+%, --force-converge\)",
                                w) for w in words), words
    wait_until(lambda: hosts_of(h1, "busy") == ["h2"], 30, what="busy on h2")
    counter_goes_on(h2, "busy")
    nothing_at(h1, vm_id)
