"""System tests of the QEMU guest agent with vireo's default image (qemu-ga
on the virtio-serial channel org.qemu.guest_agent.0) under TCG: `vm show`
reports the guest's hostname and IP, `vm exec` runs commands, a backup of the
running VM freezes the guest's file systems (a file written just before,
never synced, is in the backup), a memory snapshot is quiesced too, `vm
stop` goes through the agent; and a guest whose agent is gone gives a clear
409 at once, an unquiesced backup that says why, and still stops (ACPI).
Two VM boots."""

import json
import os
import threading

from vireo_harness import BOOT_MARKER, ext4_files, wait_until

AGENT_GONE = "the guest agent does not answer"


def guest_info(daemon, vm):
    return daemon.vm(vm)["guest"]


def wait_agent(daemon, vm, timeout=60):
    """Waits until the agent answers and reports an IPv4 address."""
    def ready():
        g = guest_info(daemon, vm)
        return g if g["agent"] and any("." in ip for ip in g.get("ips", [])) else None
    return wait_until(ready, timeout, interval=0.5, what=f"{vm}'s guest agent and address")


def exec_api(daemon, vm, command, expect=200, **body):
    return daemon.api("POST", f"/v1/vms/{vm}/exec", {"command": command, **body}, expect=expect)


def stop(daemon, vm):
    doc = daemon.api("POST", f"/v1/vms/{vm}/stop", {}, expect=202)
    task = daemon.wait_task(doc["task"], timeout=120)
    assert task["state"] == "succeeded", task
    return task


def backup(daemon, vm):
    doc = daemon.api("POST", f"/v1/vms/{vm}/backups", {}, expect=202)
    task = daemon.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task
    return daemon.api("GET", f"/v1/backups/{task['result']['backup']}")


def file_in_backup(daemon, b, tmp_path, path):
    """The contents of path in the ext4 root file system of the backup's
    disk 0 (None when missing), read without booting it (qemu-img convert,
    then debugfs)."""
    pool = daemon.api("GET", f"/v1/pools/{b['pool']}")
    disk = os.path.join(pool["path"], b["id"], b["disks"][0]["file"])
    return ext4_files(disk, tmp_path, path)[0]


def test_agent_show_exec_quiesced_backup_and_stop(daemon, tmp_path):
    vm = daemon.create_and_boot("ga1")
    ip = daemon.nic_ip("ga1")
    guest = wait_agent(daemon, "ga1")
    # What the guest says of itself: its hostname (the image takes the VM's
    # name) and the address DHCP gave it, on its NIC's MAC.
    assert guest["hostname"] == "ga1", guest
    assert ip in guest["ips"], guest
    eth0 = [i for i in guest["interfaces"] if i["name"] == "eth0"][0]
    assert eth0["mac"] == vm["nics"][0]["mac"] and any(a.startswith(ip + "/")
                                                       for a in eth0["addresses"]), guest
    assert guest["os"]["kernel_release"], guest
    # The list leaves the guest out (never waits on agents).
    listed = daemon.api("GET", "/v1/vms")["vms"]
    assert all("guest" not in v for v in listed)
    shown = daemon.cli("vm", "show", "ga1").stdout
    assert "guest agent:" in shown and "ga1" in shown and ip in shown, shown

    # exec: uname -r is the image's kernel; stdout, stderr and the status
    # come back as the guest's command left them.
    kernel = json.load(open(os.path.join(os.environ["VIREO_TEST_IMAGE"],
                                         "image.json")))["kernel_version"]
    p = daemon.cli("vm", "exec", "ga1", "--", "uname", "-r")
    assert p.stdout == kernel + "\n" and p.returncode == 0, p
    p = daemon.cli("vm", "exec", "ga1", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                   check=False)
    assert (p.returncode, p.stdout, p.stderr) == (3, "out\n", "err\n"), p
    res = exec_api(daemon, "ga1", ["cat"], input="to stdin\n")
    assert res["exit_code"] == 0 and res["stdout"] == "to stdin\n", res
    # Bad input: what to fix.
    err = exec_api(daemon, "ga1", "uname -r", expect=400)
    assert "command" in err["error"]["message"]
    err = exec_api(daemon, "ga1", [], expect=400)
    assert "command" in err["error"]["message"]
    err = exec_api(daemon, "ga1", ["/no/such/program"], expect=400)
    assert "guest-exec" in err["error"]["message"], err
    exec_api(daemon, "ga1", ["true"], timeout_s=0, expect=400)

    # A file written just before the backup and never synced: the freeze
    # flushes it, so the backup has it.
    token = os.urandom(8).hex()
    res = exec_api(daemon, "ga1", ["sh", "-c", f"echo {token} > /root/marker"])
    assert res["exit_code"] == 0, res
    b = backup(daemon, "ga1")
    assert b["quiesced"] is True and b["quiesce_reason"] is None, b
    assert file_in_backup(daemon, b, tmp_path, "/root/marker") == f"{token}\n"  # None: missing
    # Thawed after: the guest writes again.
    res = exec_api(daemon, "ga1", ["sh", "-c", "echo again > /root/after && sync && cat /root/after"],
                   timeout_s=20)
    assert res["stdout"] == "again\n", res

    # A snapshot with memory is quiesced the same way, and thaws after.
    doc = daemon.api("POST", "/v1/vms/ga1/snapshots", {"name": "s1", "memory": True},
                     expect=202)
    task = daemon.wait_task(doc["task"], timeout=300)
    assert task["state"] == "succeeded", task
    snap = daemon.api("GET", "/v1/vms/ga1/snapshots/s1")
    assert snap["quiesced"] is True and snap["quiesce_reason"] is None, snap
    res = exec_api(daemon, "ga1", ["sh", "-c", "echo thawed > /root/after && sync && cat /root/after"],
                   timeout_s=20)
    assert res["stdout"] == "thawed\n", res

    # A long command holds nothing: another exec runs beside it, a stop goes
    # on at once (through the agent), and the long one's request says the VM
    # stopped under it.
    answer = {}
    long_exec = threading.Thread(target=lambda: answer.update(got=daemon.request(
        "POST", "/v1/vms/ga1/exec", {"command": ["sleep", "100"], "timeout_s": 120},
        timeout=150)))
    long_exec.start()
    wait_until(lambda: "sleep 100" in exec_api(daemon, "ga1", ["ps"])["stdout"], 30,
               what="the long command running in the guest")
    task = stop(daemon, "ga1")
    assert task["result"]["stopped"] == "shut down by the guest agent", task
    long_exec.join(60)
    assert not long_exec.is_alive()
    status, doc = answer["got"]
    assert status == 409 and "stopped while the command ran" in doc["error"]["message"], doc
    assert "vireo-guest: guest agent shutdown" in daemon.console_log("ga1")
    # A stopped VM: the agent cannot answer, and says why.
    assert daemon.vm("ga1")["guest"]["agent"] is False
    err = exec_api(daemon, "ga1", ["true"], expect=409)
    assert AGENT_GONE in err["error"]["message"] and "stopped" in err["error"]["message"]


def test_agent_gone_answers_at_once_and_stop_still_works(daemon):
    daemon.create_and_boot("ga2")
    wait_agent(daemon, "ga2")
    # The agent ends itself a second after exec answered.
    res = exec_api(daemon, "ga2", ["sh", "-c",
                                   "(sleep 1; kill $(pidof qemu-ga)) </dev/null >/dev/null 2>&1 &"])
    assert res["exit_code"] == 0, res
    wait_until(lambda: not guest_info(daemon, "ga2")["agent"], 30, interval=0.5,
               what="the guest agent to be gone")
    guest = guest_info(daemon, "ga2")
    assert AGENT_GONE in guest["reason"], guest
    assert "guest agent: no answer" in daemon.cli("vm", "show", "ga2").stdout

    err = exec_api(daemon, "ga2", ["uname", "-r"], expect=409)
    assert err["error"]["code"] == "invalid-state" and AGENT_GONE in err["error"]["message"]
    p = daemon.cli("vm", "exec", "ga2", "--", "uname", "-r", check=False)
    assert p.returncode == 1 and AGENT_GONE in p.stderr, p

    # A backup still works, unquiesced, and says why.
    b = backup(daemon, "ga2")
    assert b["quiesced"] is False and AGENT_GONE in b["quiesce_reason"], b

    # stop: the agent cannot, ACPI does.
    task = stop(daemon, "ga2")
    assert task["result"]["stopped"] == "powered off by ACPI", task
    assert "power button pressed" in daemon.console_log("ga2")
    daemon.wait_state("ga2", "stopped")
