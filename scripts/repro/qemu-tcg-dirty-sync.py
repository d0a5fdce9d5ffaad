#!/usr/bin/python3
"""qemu-tcg-dirty-sync.py: a reproducer, with plain QEMU and no vireo, of the
QEMU defect vireo pads TCG boot memory for (docs/qemu-defects.md): a TCG
guest's writes to its boot memory are lost in a live migration when another
RAM block (here a virtio-mem device's backend) comes first in QEMU's RAM
address space.

    scripts/repro/qemu-tcg-dirty-sync.py IMAGE_DIR [--runs N] [--pad] [--no-virtio-mem]
                                         [--boot-marker TEXT]

IMAGE_DIR is a guest image in vireo's layout (build/guest/default after
`make image`): an image.json naming its kernel, initrd, disk and kernel
command line, for a Linux guest that prints "vireo-guest: booted" on ttyS0
and gives a shell there (another guest: write such an image.json and pass
--boot-marker with what it prints once booted). Each run boots a source QEMU (q35, TCG, 256 MiB boot memory,
maxmem 512 MiB, a virtio-mem device), starts a shell loop that keeps writing
in the guest, migrates over a unix socket to a destination started with
-incoming and -S, holds the migration iterating (a 1 ms downtime limit for 6
dirty-bitmap syncs, then 300 ms), and once both sides are paused compares
their boot memory (pmemsave) page by page. --pad adds 8 KiB to the boot
memory (not a multiple of 256 KiB: QEMU's per-page sync path), which is
vireo's workaround; --no-virtio-mem leaves the device out (the boot memory
is then the only RAM block: the control). Prints one line per run and a summary; exits 1 when any
run's memories differ. Bounded: every wait and every QMP answer has a
deadline; the QEMUs and the run's directory are removed on any end
(SIGTERM and Ctrl-C included). Uses only the Python standard library.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BOOT_MIB = 256
MAX_MIB = 512
PAD_KIB = 8
PAGE = 4096
HOLD_SYNCS = 6
BOOT_MARKER = "vireo-guest: booted"
QMP_ANSWER_S = 120  # the longest a QMP command may take (pmemsave of the boot memory)


class Qmp:
    """A QMP connection: one command at a time, events skipped."""

    def __init__(self, path, deadline, proc):
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if proc.poll() is not None:
                    raise RuntimeError(f"QEMU exited ({proc.returncode}) before its QMP answered")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"QMP socket {path} never answered")
                time.sleep(0.1)
        self.sock.settimeout(QMP_ANSWER_S)  # a QEMU that stops answering ends the run
        self.file = self.sock.makefile("rwb")
        self._read()  # greeting
        self.cmd("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise RuntimeError("QEMU closed its QMP socket")
        return json.loads(line)

    def cmd(self, name, **args):
        self.file.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        self.file.flush()
        while True:
            msg = self._read()
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise RuntimeError(f"{name}: {msg['error']['desc']}")


def qemu_argv(image, work, side, pad, virtio_mem):
    meta = json.load(open(os.path.join(image, "image.json")))
    boot_k = BOOT_MIB * 1024 + (PAD_KIB if pad else 0)
    max_k = MAX_MIB * 1024 + (PAD_KIB if pad else 0)
    # The -object backend is made before the machine's RAM: it becomes the
    # first RAM block, at RAM address 0, and the boot memory comes after it.
    memory = ["-m", f"{boot_k}k,maxmem={max_k}k",
              "-object", f"memory-backend-ram,id=mem-hotplug0,size={MAX_MIB - BOOT_MIB}M",
              "-device", "virtio-mem-pci,id=vmem0,memdev=mem-hotplug0,requested-size=0"]
    return [
        "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
        "-machine", "q35,accel=tcg", "-smp", "1",
        *(memory if virtio_mem else ["-m", f"{boot_k}k"]),
        "-kernel", os.path.join(image, meta["kernel"]),
        "-initrd", os.path.join(image, meta["initrd"]),
        "-append", meta["cmdline"],
        "-drive", f"file={os.path.join(work, 'disk.qcow2')},if=virtio,format=qcow2",
        "-serial", f"unix:{work}/{side}.serial,server=on,wait=off",
        "-qmp", f"unix:{work}/{side}.qmp,server=on,wait=off",
    ]


def wait_console(path, marker, deadline, send=None):
    """Reads the serial console until marker appears (after sending send)."""
    while True:
        try:
            con = socket.socket(socket.AF_UNIX)
            con.connect(path)
            break
        except OSError:
            con.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"console {path} never answered")
            time.sleep(0.1)
    con.settimeout(1)
    if send:
        con.sendall(send)
    seen = b""
    while marker not in seen:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {marker!r} on the console; last: {seen[-300:]!r}")
        try:
            seen += con.recv(4096)
        except socket.timeout:
            pass
    con.close()


def wait_until(what, check, deadline, step=0.05):
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)


def one_run(image, pad, virtio_mem, marker):
    work = tempfile.mkdtemp(prefix="qemu-dirty-sync-")
    procs = []
    try:
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        os.path.join(image, json.load(open(os.path.join(image, "image.json")))["disk"]),
                        os.path.join(work, "disk.qcow2")], check=True)
        procs.append(subprocess.Popen(qemu_argv(image, work, "src", pad, virtio_mem)))
        deadline = time.monotonic() + 180
        src = Qmp(f"{work}/src.qmp", deadline, procs[0])
        wait_console(f"{work}/src.serial", marker, deadline)
        # A shell loop on the only vCPU: it keeps writing its variable.
        wait_console(f"{work}/src.serial", b"dirtying-started", deadline,
                     send=b"\n(while :; do i=$((i+1)); done) & echo dirty\"\"ing-started\n")
        procs.append(subprocess.Popen(qemu_argv(image, work, "dst", pad, virtio_mem) +
                                      ["-incoming", f"unix:{work}/mig.sock", "-S"]))
        dst = Qmp(f"{work}/dst.qmp", deadline, procs[1])
        src.cmd("migrate-set-parameters", **{"downtime-limit": 1})
        src.cmd("migrate", uri=f"unix:{work}/mig.sock")
        syncs = 0

        def held():
            nonlocal syncs
            info = src.cmd("query-migrate")
            syncs = info.get("ram", {}).get("dirty-sync-count", 0)
            return info.get("status") not in ("setup", "active") or syncs >= HOLD_SYNCS
        wait_until("the migration's dirty syncs", held, time.monotonic() + 300)
        src.cmd("migrate-set-parameters", **{"downtime-limit": 300})
        wait_until("the migration's end",
                   lambda: src.cmd("query-migrate").get("status") in ("completed", "failed", "cancelled"),
                   time.monotonic() + 300)
        status = src.cmd("query-migrate")["status"]
        if status != "completed":
            raise RuntimeError(f"migration {status}")
        wait_until("the destination to load", lambda: dst.cmd("query-status")["status"] != "inmigrate",
                   time.monotonic() + 60)
        size = BOOT_MIB << 20  # the boot memory the guest saw at boot (low RAM from 0)
        for side, q in (("src", src), ("dst", dst)):
            q.cmd("pmemsave", val=0, size=size, filename=f"{work}/{side}.ram")
        a = open(f"{work}/src.ram", "rb").read()
        b = open(f"{work}/dst.ram", "rb").read()
        differing = [off for off in range(0, size, PAGE) if a[off:off + PAGE] != b[off:off + PAGE]]
        return syncs, differing
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"QEMU {p.pid} outlived SIGKILL by 30 s", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image_dir")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--pad", action="store_true", help="add 8 KiB to the boot memory (the workaround)")
    ap.add_argument("--no-virtio-mem", action="store_true",
                    help="no virtio-mem device: the boot memory is the only RAM block (the control)")
    ap.add_argument("--boot-marker", default=BOOT_MARKER,
                    help="what the guest prints on ttyS0 once booted (default: %(default)s)")
    args = ap.parse_args()
    # SIGTERM ends the run as Ctrl-C does: its QEMUs and directory go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    args.image_dir = os.path.abspath(args.image_dir)
    version = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    print(f"{version}; boot memory {BOOT_MIB} MiB{' + 8 KiB' if args.pad else ''}, "
          f"{'no virtio-mem, ' if args.no_virtio_mem else ''}{args.runs} run(s)", flush=True)
    failed = 0
    for n in range(1, args.runs + 1):
        syncs, differing = one_run(args.image_dir, args.pad, not args.no_virtio_mem,
                                  args.boot_marker.encode())
        if differing:
            failed += 1
            shown = ", ".join(f"{off:#x}" for off in differing[:8])
            print(f"run {n}: {syncs} syncs, {len(differing)} page(s) differ: {shown}", flush=True)
        else:
            print(f"run {n}: {syncs} syncs, boot memory identical", flush=True)
    print(f"{failed} of {args.runs} run(s) lost guest writes")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
