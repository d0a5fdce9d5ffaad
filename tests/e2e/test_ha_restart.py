"""HA recovery by the manager (docs/ha.md, "HA VMs and recovery") on a real
3-host cluster (cluster_harness: each host a network namespace with its own
vireod and etcd member; a shared pool is a directory every host sees) with
real TCG guests. Two HA VMs and a non-HA VM on one host; the host is killed
(every process of it by PID: vireod, its etcd member, its fence process,
its QEMUs): the HA VMs boot again on the other hosts (the time from the
kill to the boot marker on their console is printed), the non-HA VM stays
on the dead host, which shows offline. A sampler checks every 100 ms over
the whole test that no VM ever has two live QEMU processes, and no vireod
log shows a start failing on an image lock (fencing must not rely on
locks). Also: --ha on is refused for a VM with a local disk (naming it),
and a killed manager's own HA VM is recovered once another host took the
role."""

import threading
import time

from vireo_harness import BOOT_MARKER, qemu_processes, wait_until

from test_migrate import create_on, form, shared_pool


class QemuSampler:
    """Every 100 ms: the QEMU processes whose command line names each VM id
    (/proc/*/cmdline, every host shares the kernel); the most seen at once."""

    def __init__(self):
        self.ids = set()
        self.most = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            counts = {}
            for _, argv in qemu_processes():
                if b"qemu" not in argv[0]:
                    continue
                cmd = b"\0".join(argv).decode(errors="replace")
                for vm_id in list(self.ids):
                    if vm_id in cmd:
                        counts[vm_id] = counts.get(vm_id, 0) + 1
            for vm_id, n in counts.items():
                self.most[vm_id] = max(self.most.get(vm_id, 0), n)
            self.rounds += 1
            self.stop.wait(0.1)

    def __enter__(self):
        self.rounds = 0
        self.thread.start()
        return self

    def __exit__(self, *exc):
        # A sampler that died early (an exception in its thread) would let
        # the test pass without having looked: it must still run here.
        self.alive = self.thread.is_alive()
        self.stop.set()
        self.thread.join(5)

    def check(self, ids):
        """Sampled all along, and never two QEMUs of one VM."""
        assert self.alive, "the QEMU sampler stopped early"
        assert all(n == 1 for n in self.most.values()), self.most
        assert set(ids) <= set(self.most), self.most


def manager_of(h):
    m = h.api("GET", "/v1/cluster").get("manager")
    return m.get("name") if isinstance(m, dict) else m


def host_state(h, name):
    for x in h.api("GET", "/v1/hosts")["hosts"]:
        if x["name"] == name:
            return x["state"]
    return None


def vm_host(h, name):
    for v in h.api("GET", "/v1/vms?view=summary")["vms"]:
        if v["name"] == name:
            return v["host"], v["state"]
    return None, None


def make_ha(h, name):
    create_on(h, name)
    h.cli("vm", "set", name, "--ha", "on", "--ha-priority", "5")
    vm = h.vm(name)
    assert vm["ha"] is True and vm["ha_priority"] == 5, vm
    h.api("POST", f"/v1/vms/{name}/start", {}, expect=202)
    h.wait_console(name, BOOT_MARKER, timeout=180)
    return vm["id"]


def no_image_lock_failure(c):
    for h in c.hosts:
        try:
            log = h.log()
        except OSError:
            continue
        assert 'Failed to get "write" lock' not in log, h.name


def kill_and_recover(c, victim, ha_names, others):
    survivors = [h for h in c.hosts if h is not victim]
    t0 = time.monotonic()
    c.kill_host(victim)
    seen = survivors[0]
    for name in ha_names:
        try:
            wait_until(lambda: vm_host(seen, name)[0] in [h.name for h in survivors]
                       and vm_host(seen, name)[1] == "running", 120,
                       what=f"{name} running on another host")
        except TimeoutError:  # say what the survivors did with it
            print(f"\n{name}: {vm_host(seen, name)}, ha_state "
                  f"{seen.vm(name).get('ha_state')!r}")
            for h in survivors:
                print("".join(f"  {h.name}: {line}\n" for line in h.log().splitlines()
                              if " ha: " in line or name in line), end="")
            raise
        running_at = time.monotonic() - t0
        on = next(h for h in survivors if h.name == vm_host(seen, name)[0])
        on.wait_console(name, BOOT_MARKER, timeout=180)
        print(f"\nHA: {name} running again on {on.name} {running_at:.1f} s and booted "
              f"{time.monotonic() - t0:.1f} s after {victim.name} was killed")
        assert "restarted on" in (seen.vm(name).get("ha_state") or ""), seen.vm(name)
    for h in survivors:  # the manager's steps, with its own count of ms
        print("".join(f"  {h.name}: {line}\n" for line in h.log().splitlines()
                      if " ha: " in line and ("restarted" in line or "offline" in line)), end="")
    wait_until(lambda: host_state(seen, victim.name) == "offline", 30,
               what=f"{victim.name} offline")
    for name in others:
        assert vm_host(seen, name)[0] == victim.name
    return seen


def test_ha_vms_of_a_killed_host_run_elsewhere(cluster):
    c = cluster(3, driver="qemu", listen=False)
    form(c)
    shared_pool(c)
    mgr = manager_of(c.hosts[0])
    victim = next(h for h in c.hosts if h.name != mgr)
    with QemuSampler() as sampler:
        ids = [make_ha(victim, "ha1"), make_ha(victim, "ha2")]
        # Nothing looks inside the non-HA VM (it must stay on the dead
        # host): a blank disk, its firmware idle, no Linux boot to pay for.
        create_on(victim, "plain", memory=64, blank=True, disk_size_bytes=16 << 20)
        victim.api("POST", "/v1/vms/plain/start", {}, expect=202)
        victim.wait_state("plain", "running", timeout=120)
        sampler.ids |= set(ids) | {victim.vm("plain")["id"]}
        # A local disk cannot be HA: refused, naming the disk.
        create_on(victim, "local", pool=None)
        status, doc = victim.request("PATCH", "/v1/vms/local", {"ha": True})
        assert status == 409, doc
        assert "local" in doc["error"]["message"] and "shared pool" in doc["error"]["message"]
        assert victim.vm("local")["ha"] is False
        # Nor can an HA VM get a disk in a local pool.
        status, doc = victim.request("POST", "/v1/vms/ha1/disks", {"size_bytes": 1 << 20})
        assert status == 409 and "shared pool" in doc["error"]["message"], doc
        assert len(victim.api("GET", "/v1/vms/ha1/disks")["disks"]) == 1
        seen = kill_and_recover(c, victim, ["ha1", "ha2"], ["plain", "local"])
        seen.vm("ha1")  # (the sampler runs on meanwhile)
    sampler.check(ids)
    no_image_lock_failure(c)


def test_ha_vm_of_the_killed_manager_is_recovered(cluster):
    c = cluster(3, driver="qemu", listen=False)
    form(c)
    shared_pool(c)
    mgr = manager_of(c.hosts[0])
    victim = next(h for h in c.hosts if h.name == mgr)
    with QemuSampler() as sampler:
        sampler.ids.add(make_ha(victim, "ham"))
        kill_and_recover(c, victim, ["ham"], [])
        survivors = [h for h in c.hosts if h is not victim]
        assert manager_of(survivors[0]) in [h.name for h in survivors]
    sampler.check(sampler.ids)
    no_image_lock_failure(c)
