"""iscsi_target: a real iSCSI target for system tests: Debian tgt's tgtd in
the foreground, inside the test's network namespace, on 127.0.0.1 (or an address given) and a
control port of its own (so parallel tests never share a tgtd), with LUNs
backed by files. Stopped by its PID, held through the Popen object (the
child is not reaped before it is killed, so the PID cannot be another's).
Every wait is bounded."""

import os
import random
import subprocess

from vireo_harness import wait_until


class TgtTarget:
    def __init__(self, netns, workdir, iqn="iqn.2026-12.org.vireo.test:t1", luns=None,
                 chap=None, address="127.0.0.1"):
        """netns: the namespace's name; luns: {lun number: backing file};
        chap: (user, secret) the target requires, or None; address: where
        the portal listens (another than 127.0.0.1: an address of the
        namespace every host of a cluster reaches)."""
        self.netns = netns
        self.address = address
        self.workdir = workdir
        self.iqn = iqn
        self.luns = dict(luns or {})
        self.chap = chap
        self.port = random.randint(20000, 29999)
        self.control_port = random.randint(10000, 19999)  # tgtd takes up to 32767
        self.proc = None
        try:
            self.start()
        except BaseException:
            self.stop()  # a tgtd that started is not left running
            raise

    @property
    def portal(self):
        return f"{self.address}:{self.port}"

    def url(self, lun):
        return f"iscsi://{self.portal}/{self.iqn}/{lun}"

    def _ns(self, *cmd, check=True):
        return subprocess.run(["ip", "netns", "exec", self.netns, *cmd], capture_output=True,
                              text=True, check=check, timeout=30)

    def adm(self, *args, check=True):
        return self._ns("tgtadm", "-C", str(self.control_port), "--lld", "iscsi", *args,
                        check=check)

    def start(self, without=()):
        """Starts tgtd and configures the target and its LUNs (again after
        stop(): the same portal, target and LUNs, but those in without)."""
        log = open(os.path.join(self.workdir, "tgtd.log"), "ab")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, "tgtd", "-f", "-C", str(self.control_port),
             "--iscsi", f"portal={self.portal}"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        wait_until(lambda: self.proc.poll() is not None or
                   self.adm("--op", "show", "--mode", "target", check=False).returncode == 0,
                   15, interval=0.1, what="tgtd to answer")
        assert self.proc.poll() is None, "tgtd exited: see tgtd.log"
        self.adm("--op", "new", "--mode", "target", "--tid", "1", "-T", self.iqn)
        for lun in sorted(set(self.luns) - set(without)):
            self.add_lun(lun)
        if self.chap:
            user, secret = self.chap
            self.adm("--op", "new", "--mode", "account", "--user", user, "--password", secret)
            self.adm("--op", "bind", "--mode", "account", "--tid", "1", "--user", user)
        self.adm("--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL")

    def add_lun(self, lun):
        self.adm("--op", "new", "--mode", "logicalunit", "--tid", "1", "--lun", str(lun),
                 "-b", self.luns[lun])

    def stop(self):
        """Kills tgtd (SIGKILL: the target is lost, as a crashed SAN)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=15)
        self.proc = None
