"""cluster_harness: N vireo hosts on one machine, for the cluster's system
tests. Each host is a network namespace with one link (eth0) to a bridge
("the switch") in a namespace of its own, an address 10.77.X.N/24 of this
run's (only inside the namespaces made here), its own vireod (own state and
run dirs and Unix socket; the HTTPS API with mutual TLS on ADDRESS:8443,
with a host certificate the harness made with `openssl` under a CA of this
run's), and more per-host processes (etcd, ...) registered by PID. All
hosts see one shared directory (for shared pools).

    c = Cluster(3, driver="fake")
    h1, h2, h3 = c.hosts
    h1.cli("vm", "list"); h1.api("GET", "/v1/host")      # Unix socket
    h2.https("GET", "/v1/host", via=h1)                    # h1 -> h2, mTLS
    c.cut_link(h2); c.heal_link(h2); c.kill_host(h3)
    c.cleanup()   # every process (by PID), namespace, directory

Every wait is bounded; everything made is removed, even when a test fails
(use the `cluster` fixture, or call cleanup() in a finally)."""

import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid

from vireo_harness import Daemon, Netns, netns_pids, pid_alive, send_stop, wait_stopped, wait_until

API_PORT = 8443
_runs = itertools.count(1)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True)


class Pki:
    """A CA (EC P-256) and host certificates it signs (EC P-256; SAN: the
    host's IPs and name; serverAuth and clientAuth), as the cluster's are."""

    def __init__(self, directory, cn="vireo test CA"):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.ca_cert = os.path.join(directory, "ca.crt")
        self.ca_key = os.path.join(directory, "ca.key")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", self.ca_key, "-out", self.ca_cert, "-days", "30",
                "-subj", f"/CN={cn}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)

    def host_cert(self, name, ips, usage="serverAuth,clientAuth"):
        """(cert, key) paths for a host certificate naming ips and name."""
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        crt = os.path.join(self.dir, f"{name}.crt")
        ext = os.path.join(self.dir, f"{name}.ext")
        san = ",".join([f"IP:{ip}" for ip in ips] + [f"DNS:{name}"])
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\nextendedKeyUsage={usage}\n"
                    "keyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", f"/CN={name}", cwd=self.dir)
        openssl("x509", "-req", "-in", csr, "-CA", self.ca_cert, "-CAkey", self.ca_key,
                "-CAcreateserial", "-out", crt, "-days", "30", "-extfile", ext, cwd=self.dir)
        os.chmod(key, 0o600)
        return crt, key


class Host(Daemon):
    """One host: a vireo_harness.Daemon in the cluster's namespace for it,
    with the HTTPS listener on its address. cli(), api(), request() talk to
    its Unix socket; https() to its TCP listener from some host's namespace."""

    def __init__(self, cluster, index, driver, image, extra_args=(), listen=True):
        self.cluster = cluster
        self.index = index
        self.name = f"h{index}"
        self.address = f"{cluster.prefix}.{index}"
        self.port = API_PORT
        self.url = f"https://{self.address}:{self.port}"
        self.veth = self.name  # the switch's end of its link
        self.extra_pids = set()
        self.killed = False
        self.cert, self.key = cluster.pki.host_cert(self.name, [self.address, "127.0.0.1"])
        self.ca = cluster.pki.ca_cert
        ns = Netns(f"{cluster.tag}-{self.name}")
        self.host_netns = ns
        cluster.namespaces.append(ns)
        sw = cluster.switch.name
        subprocess.run(["ip", "-n", sw, "link", "add", self.veth, "type", "veth",
                        "peer", "name", "eth0", "netns", ns.name], check=True)
        subprocess.run(["ip", "-n", sw, "link", "set", self.veth, "master", "br0", "up"],
                       check=True)
        subprocess.run(["ip", "-n", ns.name, "addr", "add", f"{self.address}/24", "dev", "eth0"],
                       check=True)
        subprocess.run(["ip", "-n", ns.name, "link", "set", "eth0", "up"], check=True)
        # listen=False: no listener of the harness's; vireod brings its own
        # once the host is in a cluster (vireo cluster init/join).
        listen_args = ["--listen", f"{self.address}:{self.port}", "--tls-cert", self.cert,
                       "--tls-key", self.key, "--tls-ca", self.ca] if listen else []
        super().__init__(driver=driver, image=image, netns=ns,
                         args=["--name", self.name, *listen_args, *extra_args]
                         if not listen else [*listen_args, *extra_args])

    def use_cluster_certs(self):
        """https() with the certificates vireod made when the host formed or
        joined a cluster (STATE/cluster/{host.crt,host.key,ca.crt})."""
        d = os.path.join(self.state_dir, "cluster")
        self.cert, self.key, self.ca = (os.path.join(d, "host.crt"),
                                        os.path.join(d, "host.key"), os.path.join(d, "ca.crt"))

    def etcd_pid(self):
        """The pid of the host's etcd member (RUN/etcd.pid), or None."""
        try:
            with open(os.path.join(self.run_dir, "etcd.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def fence_pid(self):
        """The pid of the host's vireo-fence process (RUN/fence.pid, checked
        against /proc/PID/cmdline: pids get reused, and the parallel test
        runs have vireo-fence processes of their own: it must name this
        host's directory, as vireod's is_our_fence checks), or None."""
        try:
            with open(os.path.join(self.run_dir, "fence.pid")) as f:
                pid = int(f.read().strip())
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except (OSError, ValueError):
            return None
        ours = any(self.tmp.encode() in a for a in argv[1:])
        return pid if argv and argv[0].endswith(b"vireo-fence") and ours else None

    def kill_fence(self):
        """SIGKILL to the host's fence process alone (by PID); returns that
        PID once it is gone (reaped by vireod, its parent, or by init), or
        None when the host has none."""
        pid = self.fence_pid()
        if pid is None:
            return None
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), 10, what=f"{self.name}: fence {pid} to die")
        return pid

    # -- HTTPS, from inside a host's namespace -----------------------------
    def https(self, method, path, body=None, via=None, cert=True, client=None, timeout=10):
        """METHOD this host's https://ADDRESS:8443/path with curl, run in the
        namespace of `via` (default this host), with via's certificate
        (cert=False: none; client=(cert, key): those). Returns (status,
        document or text); status None when no HTTP answer came (refused
        handshake, unreachable: the text says curl's error)."""
        via = via or self
        cmd = ["curl", "-sS", "--max-time", str(timeout), "--cacert", self.ca, "-X", method,
               "-o", "-", "-w", "\n%{http_code}"]
        if client:
            cmd += ["--cert", client[0], "--key", client[1]]
        elif cert:
            cmd += ["--cert", via.cert, "--key", via.key]
        if body is not None:
            cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
        p = subprocess.run(["ip", "netns", "exec", via.host_netns.name, *cmd, self.url + path],
                           capture_output=True, text=True, timeout=timeout + 10)
        text, _, code = p.stdout.rpartition("\n")
        if p.returncode != 0 or code in ("", "000"):
            return None, p.stderr.strip()
        try:
            return int(code), json.loads(text)
        except ValueError:
            return int(code), text

    def reaches(self, other, timeout=3):
        """True when `other` answers GET /v1/host over HTTPS from this host."""
        return other.https("GET", "/v1/host", via=self, timeout=timeout)[0] == 200

    # -- processes ---------------------------------------------------------
    def spawn(self, *cmd, **popen):
        """Starts cmd in this host's namespace and registers it as one of the
        host's processes (kill_host ends it, cleanup too)."""
        popen.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(["ip", "netns", "exec", self.host_netns.name, *cmd], **popen)
        self.extra_pids.add(proc.pid)
        self.cluster.popens.append(proc)
        return proc

    def add_pid(self, pid):
        """Registers a process (started by the test, etcd say) as this host's."""
        self.extra_pids.add(pid)

    def pids(self):
        """Every process of this host: vireod, its descendants, what the run
        dir's pidfiles name (QEMU, dnsmasq, etcd, vireo-fence), the registered ones, and every
        process in the host's network namespace; found by PID, never by name."""
        pids = set(self.extra_pids)
        if self.proc and self.proc.poll() is None:
            pids.add(self.proc.pid)
        fence = self.fence_pid()  # setsid: no child of vireod once adopted
        if fence is not None:
            pids.add(fence)
        self.remember_qemu_pids()
        pids |= set(self.qemu_pids)  # checked to be ours (OwnProcs)
        pids |= netns_pids(self.host_netns.name)
        pids |= descendants(pids)
        return {p for p in pids if pid_alive(p)}


def descendants(roots):
    """Every process below roots, from /proc's parent links."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


class Cluster:
    """n hosts on one switch; see the module's comment."""

    def __init__(self, n, driver="fake", image=True, extra_args=(), listen=True):
        run = next(_runs)
        self.tag = f"vireo-t-{os.getpid()}-{run}-{uuid.uuid4().hex[:4]}"
        # Only inside this run's namespaces: the same prefix in another run's
        # would not meet this one.
        self.prefix = f"10.77.{(os.getpid() + run) % 250 + 1}"
        self.tmp = tempfile.mkdtemp(prefix="vireo-cluster-")
        self.shared_dir = os.path.join(self.tmp, "shared")
        os.makedirs(self.shared_dir)
        self.namespaces = []
        self.popens = []
        self.hosts = []
        self.driver = driver
        self.image = image
        self.extra_args = list(extra_args)
        self.listen = listen
        try:
            self.pki = Pki(os.path.join(self.tmp, "pki"))
            self.switch = Netns(f"{self.tag}-sw")
            self.namespaces.append(self.switch)
            subprocess.run(["ip", "-n", self.switch.name, "link", "add", "br0", "type", "bridge"],
                           check=True)
            subprocess.run(["ip", "-n", self.switch.name, "link", "set", "br0", "up"], check=True)
            for _ in range(n):
                self.add_host()
        except BaseException:
            self.cleanup()
            raise

    def add_host(self, driver=None, extra_args=()):
        """One more host (h<N+1>). Should it fail, what it made is either
        removed already (the Daemon's own) or in self.namespaces."""
        index = len(self.hosts) + 1
        host = Host(self, index, driver or self.driver, self.image,
                    [*self.extra_args, *extra_args], listen=self.listen)
        self.hosts.append(host)
        return host

    def add_netns(self, label, index):
        """A namespace of the test's own on the switch, for a service every
        host reaches (a Ceph, say): (Netns, its address PREFIX.index); index
        must be no host's. Deleted by cleanup(), with what still runs in it."""
        ns = Netns(f"{self.tag}-{label}")
        self.namespaces.append(ns)
        address = f"{self.prefix}.{index}"
        sw = self.switch.name
        subprocess.run(["ip", "-n", sw, "link", "add", label, "type", "veth",
                        "peer", "name", "eth0", "netns", ns.name], check=True)
        subprocess.run(["ip", "-n", sw, "link", "set", label, "master", "br0", "up"], check=True)
        subprocess.run(["ip", "-n", ns.name, "addr", "add", f"{address}/24", "dev", "eth0"],
                       check=True)
        subprocess.run(["ip", "-n", ns.name, "link", "set", "eth0", "up"], check=True)
        return ns, address

    # -- faults ------------------------------------------------------------
    def cut_link(self, host):
        """The host's link to the switch goes down: it reaches no other host."""
        subprocess.run(["ip", "-n", self.switch.name, "link", "set", host.veth, "down"],
                       check=True)

    def heal_link(self, host):
        subprocess.run(["ip", "-n", self.switch.name, "link", "set", host.veth, "up"],
                       check=True)

    def kill_host(self, host, timeout=10):
        """SIGKILL to every process of the host (Host.pids), as if it lost
        power, until none is left; returns the PIDs killed."""
        killed = set()
        deadline = time.monotonic() + timeout
        # Every process stopped first, then killed: killed one by one,
        # vireod could see its QEMU die and record the VM crashed before
        # its own end, which no power loss does (and HA restarts no VM
        # last seen crashed: bench/chaos lost one so). Stopped means every
        # thread stopped: a SIGSTOP is queued on one thread, and vireod's
        # others run on a moment (tests/e2e/test_stop_process.py).
        stopping = host.pids()
        for pid in stopping:
            send_stop(pid, host.qemu_pids.signal)
        for pid in stopping:
            wait_stopped(pid, max(1.0, deadline - time.monotonic()))
        while True:
            pids = host.pids()
            if not pids:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{host.name}: processes {sorted(pids)} survive SIGKILL")
            for pid in pids:
                # A remembered QEMU through its pidfd (its pid may be reused).
                if host.qemu_pids.signal(pid, signal.SIGKILL):
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            killed |= pids
            for p in self.popens + ([host.proc] if host.proc else []):
                if p.pid in pids:
                    try:
                        p.wait(timeout=max(0.1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:
                        pass
            time.sleep(0.05)
        host.killed = True
        return killed

    # -- the end -------------------------------------------------------------
    def cleanup_host(self, host):
        try:
            if not host.killed:
                host.cleanup()  # vireod stopped, QEMU and dnsmasq killed by PID
            self.kill_host(host)
            host.qemu_pids.close()
            # A killed host skipped Daemon.cleanup: its directory goes here.
            shutil.rmtree(host.tmp, ignore_errors=True)
        except Exception as e:  # keep going: the rest must go too
            print(f"cluster cleanup: {host.name}: {e}")

    def cleanup(self):
        # Every host at once, each in a thread of its own (every step is
        # bounded): a host's processes take seconds to end (vireod ~1 s, its
        # etcd member ~2 s), and one host after another made each cluster
        # test's teardown ~15 s of make check's wall time.
        threads = [threading.Thread(target=self.cleanup_host, args=(host,))
                   for host in self.hosts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for p in self.popens:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for ns in reversed(self.namespaces):
            try:
                ns.end_processes()
            except TimeoutError as e:  # keep going: the rest must go too
                print(f"cluster cleanup: {e}")
            ns.delete()
        self.namespaces = []
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_reachability(src, dst, expected, timeout=15):
    """Waits until src reaches dst over HTTPS (or, expected False, does not)."""
    return wait_until(lambda: src.reaches(dst) == expected, timeout,
                      interval=0.2, what=f"{src.name} -> {dst.name} reachable={expected}")
