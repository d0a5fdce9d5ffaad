"""Live migration and cold move of UEFI VMs (OVMF, a per-VM NVRAM volume)
between two hosts. u1 has its NVRAM in a shared pool: it migrates (guest
memory verified by the product's digest on both sides), runs on the
destination, and boots again there from the same NVRAM after a stop. u2
has its disk and NVRAM on h1's own pool and an ISO of the shared pool in
its CD-ROM: in OVMF's shell an EFI variable is set before the migration
and another while it runs (the memory copy limited to 1 MiB/s so the
write lands inside it); the migration (memory verified) mirrors the NVRAM
with the disk, the volumes become h2's (h1's files and documents gone),
the NVRAM file there holds both variables, h2's QEMU has the ISO, and the
shell on h2 lists both variables. Paused, u2 migrates back to h1 and
stays paused: h1's new NVRAM file holds both variables although its QEMU
never ran (only the mirror can have put them there: QEMU rewrites a
migrated flash to its file when it first runs). Stopped, u2 moves cold to
h2 (`vm move`) and boots there: OVMF reads both variables from the moved
NVRAM."""

import os
import re
import shutil
import subprocess
import time

import pytest

from vireo_harness import VIREO, console_detach, wait_until

from test_iso_install import make_iso
from test_migrate import create_on, form, hosts_of, qemu_of, shared_pool

OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
# OVMF's boot manager, on the serial console (no bootable disk: it says so).
OVMF_SAYS = "BdsDxe"
# No bootable disk: OVMF starts its UEFI shell, which reads the serial line.
SHELL = "Shell>"
# What OVMF's boot manager says when the shell returned at once: under TCG
# it sometimes does, right after clearing the screen (once in 20 runs at
# load 20 here, and twice in make check). The firmware then waits for a
# key; the VM is rebooted (its NVRAM stays) and the shell waited for again.
BDS_GAVE_UP = "No bootable option or device was found"
# A vendor GUID of the test's own (the EFI global one refuses new names).
GUID = "5b2e0a54-7f1c-4d33-9a61-0f1e2d3c4b5a"

pytestmark = pytest.mark.skipif(not os.path.exists(OVMF_CODE) or not shutil.which("xorriso"),
                                reason="needs OVMF (apt-get install ovmf) and xorriso")


def create_uefi(h, name, pool, **fields):
    create_on(h, name, pool=pool, memory=128, full_clone=False, blank=True,
              disk_size_bytes=16 << 20, firmware="uefi", **fields)


def console_mark(h, name):
    """Where VM name's console log ends now: its length and its last 200
    characters. The text alone is no mark: a VM started again prints the
    same screens, so the old boot's last lines come again in the new one
    (seen: the mark found in the new boot, its BdsDxe line before it)."""
    log = h.console_log(name)
    return (len(log), log[-200:])


def console_since(h, name, mark):
    """What VM name's console printed after mark ("" or None: all of it).
    The log rotates at 512 KiB (OVMF's screens fill it fast): when its text
    at the mark's length is not the mark's, the file is a new one, all of
    it printed since."""
    log = h.console_log(name)
    if not mark:
        return log
    length, tail = mark
    if len(log) >= length and log[length - len(tail):length] == tail:
        return log[length:]
    return log


def printed_since(h, name, mark, text):
    """Whether VM name printed text (or one of a tuple of texts) after mark."""
    since = console_since(h, name, mark)
    return any(t in since for t in ((text,) if isinstance(text, str) else text))


def what_the_vm_does(h, name, mark):
    """What a failed wait on VM name's console needs to be understood
    without a rerun: the VM's document, the console's raw bytes since mark,
    its QEMU's CPU time over a second, who holds its console socket, the
    load and vireod's lines about it."""
    vm = h.request("GET", f"/v1/vms/{name}")[1]
    lines = [f"VM {name} on {h.name}: {vm}",
             f"console since the mark (raw):\n{console_since(h, name, mark)[-3000:]!r}",
             f"load: {os.getloadavg()}"]
    vm_id = vm.get("id", "") if isinstance(vm, dict) else ""
    for pid in qemu_of(h, vm_id) if vm_id else []:
        def cpu():
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12]), fields[0]
        try:
            before, state = cpu()
            time.sleep(1)
            after, _ = cpu()
            lines.append(f"QEMU {pid}: state {state}, {after - before} ticks of CPU in 1 s")
            for tid in sorted(os.listdir(f"/proc/{pid}/task")):
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    comm = f.read().strip()
                with open(f"/proc/{pid}/task/{tid}/wchan") as f:
                    wchan = f.read().strip()
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                lines.append(f"  thread {tid} {comm}: {fields[0]} in {wchan}, "
                             f"{int(fields[11]) + int(fields[12])} ticks")
        except OSError as e:
            lines.append(f"QEMU {pid}: {e}")
    # QEMU's console socket: its listener, the connection it accepted and
    # who holds the other end (vireod, when the console is connected).
    ss = subprocess.run(["ip", "netns", "exec", h.netns.name, "ss", "-xpa"], capture_output=True,
                        text=True, timeout=30).stdout
    mine = [l for l in ss.splitlines() if vm_id and f"{vm_id}/console.sock" in l]
    peers = {f[7] for f in (l.split() for l in mine) if len(f) > 7 and f[7] != "0"}
    mine += [l for l in ss.splitlines() if len(l.split()) > 5 and l.split()[5] in peers]
    lines.append("console sockets:\n" + "\n".join(mine))
    lines.append("vireod about it:\n" + "\n".join(
        l for l in h.log().splitlines()[-4000:]
        if (name in l or " loop: " in l or "console:" in l) and "/console/log" not in l)[-4000:])
    return "\n".join(lines)


def qemu_cpu_seconds(h, name):
    """CPU time VM name's QEMU on h has used, in seconds (None: no QEMU)."""
    vm_id = h.vm(name)["id"]
    for pid in qemu_of(h, vm_id):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            pass
    return None


def wait_printed(h, name, mark, text, timeout, what):
    started = time.monotonic()
    try:
        wait_until(lambda: printed_since(h, name, mark, text), timeout, what=what)
    except TimeoutError as e:
        raise TimeoutError(f"{e}\n{what_the_vm_does(h, name, mark)}") from None
    print(f"{what}: after {time.monotonic() - started:.1f} s, its QEMU at "
          f"{qemu_cpu_seconds(h, name)} CPU-s, load {os.getloadavg()[0]:.1f}")


def shell_is_up(h, name, mark):
    """Whether OVMF's shell prompted after mark and did not return since."""
    since = console_since(h, name, mark)
    return since.rfind(SHELL) > since.rfind(BDS_GAVE_UP)


def type_into(h, name, text):
    """Types text into VM name's serial console (through `vireo console`)."""
    proc = subprocess.Popen([VIREO, "--socket", h.socket, "console", name],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        proc.stdin.write(text.encode())
        proc.stdin.flush()
        # What was typed is in the console's hands before the detach.
        time.sleep(0.5)
    finally:
        console_detach(proc)


def wait_prompt(h, name, mark, timeout, what):
    """Waits until the shell prompted after mark or returned (BDS_GAVE_UP).
    A prompt that does not come within a minute is asked for again with
    Enter, twice at most: under load OVMF's serial output loses bytes (seen
    in make check: the end of a dmpstore listing and the prompt's "hell> "
    gone, the shell idle, waiting for a key; docs/internals.md, Serial
    consoles), and a lost prompt would fail a test about NVRAM."""
    deadline = time.monotonic() + timeout
    for nudge in range(3):
        step = min(60, deadline - time.monotonic()) if nudge < 2 else deadline - time.monotonic()
        try:
            wait_printed(h, name, mark, (SHELL, BDS_GAVE_UP), max(step, 1), what)
            return
        except TimeoutError:
            if nudge == 2 or time.monotonic() >= deadline:
                raise
        print(f"{what}: no prompt after {step:.0f} s; console since the mark (raw):\n"
              f"{console_since(h, name, mark)[-1500:]!r}\npressing Enter")
        type_into(h, name, "\r")


def shell_is_up(h, name, mark):
    """Whether OVMF's shell prompted after mark and did not return since."""
    since = console_since(h, name, mark)
    return since.rfind(SHELL) > since.rfind(BDS_GAVE_UP)


def wait_shell(h, name, mark, timeout, what):
    """Waits until OVMF's shell prompts on VM name after mark; when the
    shell returned at once instead (BDS_GAVE_UP), reboots the VM once and
    waits again."""
    for attempt in range(2):
        wait_prompt(h, name, mark, timeout, what)
        if shell_is_up(h, name, mark):
            return
        print(f"{what}: OVMF's shell returned (attempt {attempt + 1}); console since the mark "
              f"(raw):\n{console_since(h, name, mark)[-3000:]!r}\nrebooting {name}")
        mark = console_mark(h, name)
        h.cli("vm", "reboot", name)
    raise AssertionError(f"{what}: OVMF's shell returned twice\n{what_the_vm_does(h, name, mark)}")


def shell(h, name, line, timeout=180):
    """Types line into OVMF's shell on VM name's serial console (through
    `vireo console` on h) and waits until the shell prompts again. A shell
    that returned meanwhile (BDS_GAVE_UP) is brought back and line typed
    again, once."""
    for attempt in range(2):
        mark = console_mark(h, name)
        type_into(h, name, line + "\r")
        wait_prompt(h, name, mark, timeout, f"the shell's answer to {line!r}")
        if shell_is_up(h, name, mark):
            return
        if attempt == 0:
            print(f"OVMF's shell returned while running {line!r}; console since the mark "
                  f"(raw):\n{console_since(h, name, mark)[-3000:]!r}\nrebooting {name}")
            mark = console_mark(h, name)
            h.cli("vm", "reboot", name)
            wait_shell(h, name, mark, 240, f"the shell back after {line!r}")
    raise AssertionError(f"OVMF's shell returned twice while running {line!r}")


def setvar(h, name, var, value):
    shell(h, name, f'setvar {var} -guid {GUID} -nv -bs -rt =L"{value}"')


def listed(h, name, want=frozenset({"VireoBefore", "VireoDuring"})):
    """The test's variables dmpstore lists (the running firmware's view):
    those printed after the command was typed, in up to three runs until
    all of want show. A clean make check once read one of two variables
    from a single run whose NVRAM file held both; a variable the firmware
    lacks shows in no run."""
    seen = set()
    for _ in range(3):
        mark = console_mark(h, name)
        shell(h, name, f"dmpstore -guid {GUID}")
        text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console_since(h, name, mark))  # highlighting
        seen |= set(re.findall(r"Variable NV\+RT\+BS '[0-9A-Fa-f-]+:(Vireo\w+)'", text))
        if want <= seen:
            break
        print(f"dmpstore on {name} listed {sorted(seen)} of {sorted(want)}; console:\n{text[-2000:]}"
              f"\nraw:\n{console_since(h, name, mark)[-3000:]!r}")
    return seen


def nvram_has(path, tmp_path, *values):
    """Whether the NVRAM volume's content (qcow2, read as raw) holds each
    value as the UTF-16 string setvar stored."""
    raw = tmp_path / "nvram.raw"
    subprocess.run(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", path, str(raw)],
                   check=True, capture_output=True, timeout=60)
    data = raw.read_bytes()
    raw.unlink()
    return all(v.encode("utf-16-le") in data for v in values)


def test_uefi_vms_migrate_and_move_with_their_nvram(cluster, tmp_path):
    c = cluster(2, driver="qemu", listen=False)
    form(c)
    h1, h2 = c.hosts
    shared_pool(c)
    h1.cli("volume", "import", "nfs/media", str(make_iso(tmp_path, "the media\n")),
           "--content", "iso")
    create_uefi(h1, "u1", "nfs")
    create_uefi(h1, "u2", "default", cdrom="nfs/media")
    assert h1.vm("u1")["nvram"] == "nfs/u1-nvram", h1.vm("u1")
    assert h1.vm("u2")["nvram"] == "default/u2-nvram", h1.vm("u2")
    h1.cli("vm", "start", "u1")
    h1.cli("vm", "start", "u2")

    # u1, NVRAM on the shared pool: it goes, with its memory verified, and
    # runs there.
    wait_printed(h1, "u1", "", OVMF_SAYS, 240, "OVMF's boot manager")
    out = h2.cli("vm", "migrate", "u1", "--to", "h2", "--verify-memory", timeout=600).stdout
    assert "u1: migrated to h2" in out and "memory verified" in out, out
    for h in (h1, h2):
        wait_until(lambda: hosts_of(h, "u1") == ["h2"], 30, what=f"u1 on h2 seen from {h.name}")
    assert h2.vm("u1")["state"] == "running"
    assert h2.vm("u1")["nvram"] == "nfs/u1-nvram"

    # Stopped and started on h2: OVMF boots again from the same NVRAM.
    h2.cli("vm", "stop", "u1", "--force")
    mark = console_mark(h2, "u1")
    h2.cli("vm", "start", "u1")
    wait_printed(h2, "u1", mark, OVMF_SAYS, 240, "OVMF's boot manager again on h2")
    assert hosts_of(h1, "u1") == ["h2"]
    h2.cli("vm", "stop", "u1", "--force")

    # u2, disk and NVRAM on h1's own pool: a variable set before.
    wait_shell(h1, "u2", "", 240, "OVMF's shell on u2")
    setvar(h1, "u2", "VireoBefore", "set-before")
    src = {n: h1.api("GET", f"/v1/pools/default/volumes/{n}")
           for n in ("u2-nvram", h1.vm("u2")["disks"][0]["volume"].split("/")[1])}
    vm_id = h1.vm("u2")["id"]

    # The migration, slowed to 1 MiB/s; a variable set while it copies.
    doc = h1.api("POST", "/v1/vms/u2/migrate",
                 {"to": "h2", "verify_memory": True, "bandwidth": "1M/s"}, expect=202)
    tid = doc["task"]["id"]
    wait_until(lambda: (h1.api("GET", f"/v1/tasks/{tid}").get("details") or {}).get("phase")
               == "memory", 300, what="the memory copy under way")
    setvar(h1, "u2", "VireoDuring", "set-during")
    assert h1.api("GET", f"/v1/tasks/{tid}")["state"] == "running", \
        "the migration ended before the write: it did not land during it"
    task = h1.wait_task(doc["task"], timeout=600)
    assert task["state"] == "succeeded", task
    res = task["result"]
    assert res["memory_verified"] is True and "default/u2-nvram" in res["volumes"], res
    for h in (h1, h2):
        wait_until(lambda: hosts_of(h, "u2") == ["h2"], 30, what=f"u2 on h2 seen from {h.name}")
    vm = h2.vm("u2")
    assert vm["state"] == "running" and vm["nvram"] == "default/u2-nvram", vm
    assert vm["cdrom"]["volume"] == "nfs/media", vm
    # The NVRAM volume is h2's, with both variables; nothing of it on h1.
    nv = h2.api("GET", "/v1/pools/default/volumes/u2-nvram")
    assert nv["attached_to"] == "u2" and nv["path"].startswith(h2.state_dir), nv
    assert nvram_has(nv["path"], tmp_path, "VireoBefore", "set-before", "VireoDuring",
                     "set-during")
    for name, v in src.items():
        assert not os.path.exists(v["path"]), v
        assert h1.request("GET", f"/v1/pools/default/volumes/{name}")[0] == 404
    # The ISO of the shared pool came along: h2's QEMU has it.
    iso = h1.api("GET", "/v1/pools/nfs/volumes/media")["path"]
    (pid,) = qemu_of(h2, vm_id)
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert iso.encode() in f.read()
    # The guest goes on on h2: its shell answers, with both variables.
    assert {"VireoBefore", "VireoDuring"} <= listed(h2, "u2")

    # Paused, u2 migrates back to h1 and stays paused there. Its QEMU on h1
    # never runs, so its flash writes nothing to the new (empty) NVRAM file
    # itself (QEMU rewrites a migrated flash to its file at the first run):
    # both variables are in that file all the same, carried by the mirror.
    h2.cli("vm", "pause", "u2")
    doc = h2.api("POST", "/v1/vms/u2/migrate", {"to": "h1"}, expect=202)
    task = h2.wait_task(doc["task"], timeout=600)
    assert task["state"] == "succeeded", task
    assert "default/u2-nvram" in task["result"]["volumes"], task
    assert h1.vm("u2")["state"] == "paused", h1.vm("u2")
    nv = h1.api("GET", "/v1/pools/default/volumes/u2-nvram")
    assert nv["path"].startswith(h1.state_dir), nv
    assert nvram_has(nv["path"], tmp_path, "VireoBefore", "set-before", "VireoDuring",
                     "set-during")

    # Stopped, moved cold to h2: the NVRAM goes with its disk, and OVMF
    # reads both variables from it there.
    h1.cli("vm", "stop", "u2", "--force")
    out = h1.cli("vm", "move", "u2", "--to", "h2", timeout=300).stdout
    assert "u2: moved to h2" in out, out
    assert h2.vm("u2")["nvram"] == "default/u2-nvram"
    assert not os.path.exists(nv["path"])
    mark = console_mark(h2, "u2")
    h2.cli("vm", "start", "u2")
    wait_shell(h2, "u2", mark, 240, "OVMF's shell on u2 on h2 after the move")
    assert {"VireoBefore", "VireoDuring"} <= listed(h2, "u2")
    h2.cli("vm", "stop", "u2", "--force")
