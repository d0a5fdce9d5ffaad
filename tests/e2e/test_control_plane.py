"""Control-plane tests on the fake driver (no QEMU): tasks, injected faults,
state persistence across vireod restarts, many VMs. The real-VM path is
covered by test_lifecycle.py; these exercise what is around it cheaply."""

from vireo_harness import inject


def test_injected_start_fault_fails_task_and_leaves_vm_startable(faults):
    d = faults
    d.cli("vm", "create", "f1")
    inject(d, "start", "EIO")
    p = d.cli("vm", "start", "f1", check=False)
    assert p.returncode == 1
    assert "injected fault" in p.stderr
    vm = d.vm("f1")
    assert vm["state"] == "defined"
    assert "start failed" in vm["exit_reason"]
    task = d.api("GET", "/v1/tasks")["tasks"][0]
    assert task["kind"] == "start" and task["state"] == "failed"
    assert task["error"]["code"] == "internal" and "injected" in task["error"]["message"]
    # The fault is used up: the next start works.
    d.cli("vm", "start", "f1")
    assert d.vm("f1")["state"] == "running"


def test_injected_pause_fault_keeps_state(faults):
    d = faults
    d.cli("vm", "create", "f2")
    d.cli("vm", "start", "f2")
    inject(d, "pause", "EBUSY")
    p = d.cli("vm", "pause", "f2", check=False)
    assert p.returncode == 1
    assert d.vm("f2")["state"] == "running"


def test_async_returns_task_id(fake_daemon):
    d = fake_daemon
    d.cli("vm", "create", "as1")
    out = d.cli("vm", "start", "as1", "--async").stdout.strip()
    task = d.wait_task({"id": out.split()[-1], "kind": "start"})
    assert task["state"] == "succeeded", task
    shown = d.cli_json("task", "show", task["id"])
    assert shown["id"] == task["id"] and shown["target"] == "as1"


def test_states_persist_across_restart(fake_daemon):
    d = fake_daemon
    for name in ("p-run", "p-pause", "p-stop"):
        d.cli("vm", "create", name)
    d.cli("vm", "start", "p-run")
    d.cli("vm", "start", "p-pause")
    d.cli("vm", "pause", "p-pause")
    d.kill9()
    d.start()
    states = {v["name"]: v["state"] for v in d.cli_json("vm", "list")["vms"]}
    assert states == {"p-run": "running", "p-pause": "paused", "p-stop": "defined"}
    d.cli("vm", "resume", "p-pause")
    d.cli("vm", "stop", "p-run")
    assert d.vm("p-run")["state"] == "stopped"


def test_many_vms_list_sorted_and_complete(fake_daemon):
    d = fake_daemon
    names = [f"m-{i:03d}" for i in range(60)]
    tasks = [d.api("POST", "/v1/vms", {"name": n, "memory_mib": 64}, expect=202)["task"]
             for n in reversed(names)]
    for t in tasks:
        assert d.wait_task(t)["state"] == "succeeded"
    listed = [v["name"] for v in d.cli_json("vm", "list")["vms"]]
    assert listed == names
    table = d.cli("vm", "list").stdout.splitlines()
    assert len(table) == 61 and table[0].split()[0] == "NAME"


def test_concurrent_creates_of_one_name_make_one_vm(fake_daemon):
    import threading
    d = fake_daemon
    results = []

    def create():
        results.append(d.request("POST", "/v1/vms", {"name": "race"})[0])

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [202] + [409] * 7
    assert [v["name"] for v in d.api("GET", "/v1/vms")["vms"]] == ["race"]
