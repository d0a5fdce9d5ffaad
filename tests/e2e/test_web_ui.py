"""The web UI (docs/web.md) in a real Chromium: Debian's /usr/bin/chromium,
headless, driven by npm's playwright-core (web_ui_driver.mjs, one scenario
per run) against a real vireod serving web/dist on its HTTPS listener.

One QEMU vireod for the module (its own network namespace, HTTPS on
127.0.0.1:8443 there, --metrics-interval 1) and one guest for the whole
file: the wizard creates it (with a VGA display), the UI starts it, its
serial console, its screen (noVNC), graphs, a viewer's session, a second
session's actions and a failed action are shown on it; the installer ISO
goes in and out of its CD-ROM drive, stopped and running; stopped, its
snapshots are taken, reverted and deleted, and the UI deletes it. The admin
pages make and remove a user and a token (no VM); the projects page makes
a project whose quota refuses the wizard's create (no VM made) and whose
delete is refused while the VM is in it; a volume and a network are made
in a project from the browser, and the project's user sees only its
volumes; the schedules page runs a
snapshot schedule of the VM now. Before that, without a browser: the files are
served with their types and a strict CSP, no path leaves the UI's
directory, and the console's WebSocket checks its Origin; poll-kit.js (a
project's user's polls) runs in node against a fake tab. With
VIREO_WEB_SHOTS=1, screenshots of the main pages go to BUILD/web-ui/
(docs/web.md shows them); the admin's browser session is kept from one
scenario to the next (web_ui_driver.mjs)."""

import json
import os
import re
import select
import signal
import subprocess
import sys

import pytest

import vireo_harness as h
from test_iso_install import tiny_iso
from test_project_objects import store_write

HERE = os.path.dirname(os.path.abspath(__file__))
WEB_DIST = os.environ.get("VIREO_WEB_DIST", os.path.join(HERE, "..", "..", "web", "dist"))
DRIVER = os.path.join(HERE, "web_ui_driver.mjs")
RELAY = os.path.join(HERE, "netns_relay.py")
# The browsers (web_ui_driver.mjs drives either): the executable and the
# Debian package scripts/install-deps.sh installs it from.
BROWSERS = {"chromium": ("/usr/bin/chromium", "chromium"),
            "firefox": ("/usr/bin/firefox-esr", "firefox-esr")}
SHOTS = os.path.join(h.BUILD, "web-ui")
ADMIN_PASSWORD = "admin-pass-1"
VIEWER_PASSWORD = "viewer-pass-1"
VM = "web1"
ISO = os.environ.get("VIREO_TEST_ISO", os.path.join(h.BUILD, "guest", "installer", "installer.iso"))
ISO_VOLUME = "default/installer"

# Plain HTTPS requests from inside the namespace (the browser's origin is
# https://127.0.0.1:8443), and a WebSocket handshake read to its first frame.
CLIENT = r'''
import base64, http.client, json, os, socket, ssl, sys
ca, reqs = sys.argv[1], json.load(sys.stdin)
ctx = ssl.create_default_context(cafile=ca)
out = []
for r in reqs:
    if r.get("raw"):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", 8443), timeout=30),
                            server_hostname="127.0.0.1")
        s.sendall(r["raw"].encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = int(head.split()[1]) if head else 0
        length = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
                  if l.lower().startswith(b"content-length:")]
        while status != 101 and length and len(rest) < length[0]:
            chunk = s.recv(4096)
            if not chunk:
                break
            rest += chunk
        if status == 101 and r.get("send"):
            payload = r["send"].encode()
            mask = os.urandom(4)
            s.sendall(bytes([0x81, 0x80 | len(payload)]) + mask +
                      bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
            # The server's frames, unmasked: their payloads joined (a frame
            # boundary may fall inside the expected text).
            want, raw, text = r["expect"].encode(), rest, b""
            while want not in text:
                while len(raw) >= 2:
                    n, at = raw[1] & 0x7f, 2
                    if n >= 126:
                        size = 2 if n == 126 else 8
                        if len(raw) < 2 + size:
                            break
                        n, at = int.from_bytes(raw[2:2 + size], "big"), 2 + size
                    if len(raw) < at + n:
                        break
                    text += raw[at:at + n]
                    raw = raw[at + n:]
                if want in text:
                    break
                chunk = s.recv(65536)
                if not chunk:
                    break
                raw += chunk
            rest = text
        out.append({"status": status, "head": head.decode(errors="replace"),
                    "rest": rest.decode(errors="replace")})
        s.close()
        continue
    c = http.client.HTTPSConnection("127.0.0.1", 8443, context=ctx, timeout=30)
    c.request(r["method"], r["path"], headers=r.get("headers") or {})
    resp = c.getresponse()
    body = resp.read()
    out.append({"status": resp.status, "len": len(body), "body": body[:2000].decode(errors="replace"),
                "headers": {k.lower(): v for k, v in resp.getheaders()}})
    c.close()
json.dump(out, sys.stdout)
'''


class Web:
    """The module's vireod, its HTTPS client and its browser scenarios."""

    def __init__(self, d, engine="chromium"):
        self.d = d
        self.engine = engine  # a key of BROWSERS
        self.ca = os.path.join(d.state_dir, "https", "ca.crt")
        self.driver = None  # the browser (web_ui_driver.mjs), started on first use
        self.relay = self.browser_ns = None  # started with the browser
        self.client = os.path.join(d.tmp, "web-client.py")
        with open(self.client, "w") as f:
            f.write(CLIENT)

    def requests(self, reqs):
        p = self.d.ns(sys.executable, self.client, self.ca, input=json.dumps(reqs), check=False,
                      timeout=120)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    def get(self, path, headers=None):
        return self.requests([{"method": "GET", "path": path, "headers": headers}])[0]

    def browser(self, scenario, timeout=240, **extra):
        """Runs one scenario in the module's browser (started on first use)
        and returns its result."""
        if self.driver is None:
            exe, package = BROWSERS[self.engine]
            assert os.access(exe, os.X_OK), \
                f"{exe} is missing: scripts/install-deps.sh installs Debian's {package}"
            # The browser in a namespace of its own, reaching vireod's
            # 127.0.0.1:8443 through a relay (netns_relay.py): in vireod's,
            # each tap or bridge vireod makes is a network change that makes
            # Chromium abort its requests in flight (ERR_NETWORK_CHANGED).
            self.browser_ns = h.Netns()
            self.relay = subprocess.Popen(
                ["ip", "netns", "exec", self.d.netns.name, sys.executable, RELAY,
                 self.browser_ns.name, "127.0.0.1", "8443"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            ready, _, _ = select.select([self.relay.stdout], [], [], 30)
            assert ready and self.relay.stdout.readline().strip() == "ready", \
                f"the browser's relay did not start (exit {self.relay.poll()})"
            # HOME: the browser writes its crash dumps under it; TMPDIR: its
            # profile (playwright-core's and puppeteer-core's are temporary
            # directories), removed with the test's directory even when the
            # driver dies before it removes it.
            self.driver_log = open(os.path.join(self.d.tmp, f"web-ui-driver-{self.engine}.log"), "w")
            self.driver = subprocess.Popen(
                ["ip", "netns", "exec", self.browser_ns.name, "node", DRIVER],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.driver_log, text=True,
                env={**os.environ, "HOME": self.d.tmp, "TMPDIR": self.d.tmp,
                     "VIREO_BROWSER": self.engine, f"VIREO_{self.engine.upper()}": exe})
        cfg = {"scenario": scenario, "url": "https://127.0.0.1:8443", "user": "admin",
               "password": ADMIN_PASSWORD, "viewer": "vera", "viewer_password": VIEWER_PASSWORD,
               "vm": VM, "shots": SHOTS, "image": "default", "network": "default",
               "memory_mib": 256, "display": "vga", "boot_marker": h.BOOT_MARKER, "boot_ms": 150000, **extra}
        self.driver.stdin.write(json.dumps(cfg) + "\n")
        self.driver.stdin.flush()
        ready, _, _ = select.select([self.driver.stdout], [], [], timeout)
        line = self.driver.stdout.readline() if ready else ""
        assert line, f"scenario {scenario}: no answer from the browser in {timeout} s " \
                     f"(exit {self.driver.poll()}); see {self.driver_log.name}"
        answer = json.loads(line)
        assert answer["ok"], (f"{answer['error']}\nthe page said:\n{answer.get('page', '')[:3000]}"
                              f"\n{self.d.log()[-3000:]}")
        return answer["result"]

    def close(self):
        """Ends the browser: end of input, then (bounded) its driver's pid;
        then whatever is left in its namespace (the browser's processes,
        when the driver died or was killed before closing it), its relay
        and the namespace. Also after a start that failed half-way."""
        if self.driver is not None:
            self.driver.stdin.close()
            try:
                self.driver.wait(timeout=20)
            except subprocess.TimeoutExpired:
                h.kill_pid(self.driver.pid)
                self.driver.wait(timeout=10)
            self.driver.stdout.close()
            self.driver_log.close()
            self.driver = None
        if self.browser_ns is not None:
            self.browser_ns.end_processes()
        if self.relay is not None:
            h.kill_pid(self.relay.pid)
            self.relay.wait(timeout=10)
            self.relay.stdin.close()
            self.relay.stdout.close()
            self.relay = None
        if self.browser_ns is not None:
            self.browser_ns.delete()
            self.browser_ns = None


# poll-kit.js alone in node (no browser, no vireod): a fake document whose
# tab is hidden or shown, reads that fail, succeed or take longer than the
# poll's period.
POLL_KIT_CHECK = r'''
const doc = { hidden: false, handlers: new Set(),
              addEventListener(_, f) { this.handlers.add(f); },
              removeEventListener(_, f) { this.handlers.delete(f); } };
globalThis.document = doc;
const { pollWhileShown } = await import(process.argv[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = { errors: [], reads: 0, most_at_once: 0 };
let running = 0;
const results = [false, true, true];
const stop = pollWhileShown(async () => {
  out.reads++;
  out.most_at_once = Math.max(out.most_at_once, ++running);
  await sleep(30);  // longer than the period: never two at once
  running--;
  const ok = results.length ? results.shift() : true;
  if (!ok) out.errors.push('read failed');
  return ok;
}, { ms: 10, setError: (e) => out.errors.push(e) });
while (out.reads < 4) await sleep(5);
doc.hidden = true;
await sleep(60);  // the read under way ends; none starts while hidden
const hidden_at = out.reads;
await sleep(100);
out.reads_while_hidden = out.reads - hidden_at;
doc.hidden = false;
doc.handlers.forEach((f) => f());
for (let i = 0; i < 500 && out.reads === hidden_at; i++) await sleep(10);  // a loaded machine
out.read_when_shown = out.reads > hidden_at;
stop();
const stopped_at = out.reads;
await sleep(100);
out.reads_after_stop = out.reads - stopped_at;
out.handlers_left = doc.handlers.size;
console.log(JSON.stringify(out));
'''


def test_poll_kit_retries_and_waits_while_hidden():
    """A project's user's lists are read again (poll-kit.js): a failed
    read's message is taken away by the next read that succeeds (the pool
    page's stayed after the page was current again), never two reads at
    once, none while the tab is hidden, reads again when shown, none after
    the stop."""
    kit = os.path.join(HERE, "..", "..", "web", "src", "poll-kit.js")
    got = subprocess.run(["node", "--input-type=module", "-e", POLL_KIT_CHECK,
                          "file://" + os.path.abspath(kit)],
                         capture_output=True, text=True, check=True)
    out = json.loads(got.stdout)
    assert out["errors"] == ["read failed", None], out
    assert out["most_at_once"] == 1 and out["reads_while_hidden"] == 0, out
    assert out["read_when_shown"] and out["reads_after_stop"] == 0, out
    assert out["handlers_left"] == 0, out


def serve_web(engine="chromium"):
    """The module's vireod (its admin and viewer made) and its browser
    (Web), ended after the module: test_web_firefox.py's in Firefox."""
    assert os.path.exists(os.path.join(WEB_DIST, "index.html")), \
        f"{WEB_DIST}: the web UI is not built ('make build' runs npm ci and vite in web/)"
    os.makedirs(SHOTS, exist_ok=True)
    d = h.Daemon(args=["--https", "127.0.0.1:8443", "--metrics-interval", "1",
                       "--web-dir", WEB_DIST])
    try:
        d.cli("user", "create", "admin", "--role", "admin", "--password-file", "-",
              input=ADMIN_PASSWORD + "\n")
        d.cli("user", "create", "vera", "--role", "viewer", "--password-file", "-",
              input=VIEWER_PASSWORD + "\n")
        web = Web(d, engine)
        try:
            yield web
        finally:
            web.close()
    finally:
        status, vm = d.request("GET", f"/v1/vms/{VM}")
        if status == 200 and vm.get("pid"):
            d.qemu_pids.add(vm["pid"])
        d.cleanup()


@pytest.fixture(scope="module")
def web():
    yield from serve_web()


def test_files_types_csp_and_no_escape(web):
    """/ sends the browser to /ui/; the files have their types, a strict
    CSP, gzip when accepted; no path leaves the directory (dot segments,
    escapes, hidden files, a symlink out); the API is not shadowed; the Unix
    socket serves no UI."""
    secret = os.path.join(web.d.tmp, "secret.txt")
    with open(secret, "w") as f:
        f.write("not for the web\n")
    link = os.path.join(WEB_DIST, "escape-link.txt")
    if os.path.lexists(link):
        os.unlink(link)
    os.symlink(secret, link)
    # Dot segments enough to climb from the UI's directory to "/", then the
    # secret's own path: a traversal that escaped would read it.
    up = "../" * (os.path.abspath(WEB_DIST).count("/") + 1) + secret.lstrip("/")
    try:
        root, index, index_gz, bad_dots, bad_enc, hidden, sym, missing, api = web.requests([
            {"method": "GET", "path": "/"},
            {"method": "GET", "path": "/ui/"},
            {"method": "GET", "path": "/ui/", "headers": {"Accept-Encoding": "gzip"}},
            {"method": "GET", "path": "/ui/assets/../" + up},
            {"method": "GET", "path": "/ui/" + up.replace("..", "%2e%2e")},
            {"method": "GET", "path": "/ui/.vite/manifest.json"},
            {"method": "GET", "path": "/ui/escape-link.txt"},
            {"method": "GET", "path": "/ui/nothing.js"},
            {"method": "GET", "path": "/v1/vms"},
        ])
    finally:
        os.unlink(link)
    assert root["status"] == 302 and root["headers"]["location"] == "/ui/", root
    assert index["status"] == 200, index
    assert index["headers"]["content-type"] == "text/html; charset=utf-8"
    csp = index["headers"]["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp, csp
    assert "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp, csp
    assert index["headers"]["x-content-type-options"] == "nosniff"
    assert "<div id=\"app\">" in index["body"]
    assert index_gz["headers"].get("content-encoding") == "gzip", index_gz["headers"]
    assert index_gz["len"] < index["len"]
    for bad in (bad_dots, bad_enc, hidden, sym, missing):
        assert bad["status"] in (400, 404), bad
        assert "not for the web" not in bad["body"], bad
    assert sym["status"] == 404 and missing["status"] == 404
    assert api["status"] == 401, api  # the API still wants credentials
    # A script of the app: its type, cached for ever (named by its content).
    script = next(n for n in os.listdir(os.path.join(WEB_DIST, "assets")) if n.endswith(".js"))
    js = web.get("/ui/assets/" + script, {"Accept-Encoding": "gzip"})
    assert js["status"] == 200 and js["headers"]["content-type"].startswith("text/javascript")
    assert js["headers"]["content-encoding"] == "gzip"
    assert "immutable" in js["headers"]["cache-control"]
    status, _ = web.d.request("GET", "/ui/")
    assert status == 404


def test_driver_calls_fail_as_playwrights(web):
    """The browser driver's own calls on a page of their own (a data: URL,
    no vireod): an option that is not there, a row hidden but still in the
    page and a box its click leaves unchecked are errors, as Playwright's
    (web_ui_firefox.mjs answers the same in Firefox); an option that comes
    late is waited for; emptying a field is an input event; :has-text()
    and :text-is() match as Playwright's."""
    r = web.browser("driver_calls")
    assert r["select_absent_refused"] and r["picked"] == "late", r
    assert r["hidden_row_detached_refused"] and r["check_refused"], r
    assert r["emptied_seen"] == "", r  # fill('') is an input event
    assert r["has_text"] == "Two  words here" and r["text_is"] == "two", r


def test_login(web):
    r = web.browser("login")
    assert r["url"].endswith("/ui/"), r
    assert "wrong" in r["wrong"].lower() or "password" in r["wrong"].lower(), r
    assert "admin" in r["who"], r


def test_wizard_creates_the_vm(web):
    r = web.browser("create", mac="52:54:00:0E:00:01")  # the NIC's MAC, as given
    assert r["state"] in ("defined", "stopped") and r["hash"] == f"#/vm/{VM}", r
    vm = web.d.vm(VM)
    assert vm["memory_mib"] == 256 and vm["vcpus"] == 1, vm
    assert [(n["network"], n["mac"]) for n in vm["nics"]] == [("default", "52:54:00:0e:00:01")], vm
    assert vm["display"] == "vga", vm


def test_cdrom_insert_on_the_stopped_vm(web):
    """The installer ISO (a tiny one when it is not built) imported through
    the API into the dir pool is offered on the Hardware tab and inserted
    with the keyboard into the VM that has no drive yet (the definition
    gets one): shown in the drive, the VM's `cdrom` says so; the boot order
    shown is the default."""
    iso = ISO if os.path.exists(ISO) else tiny_iso(os.path.join(web.d.tmp, "tiny.iso"))
    web.d.task_ok("POST", "/v1/pools/default/volumes", {"name": "installer", "import_path": iso})
    r = web.browser("cdrom", iso=ISO_VOLUME, cdrom_steps=["insert"])
    assert ISO_VOLUME in r["shown"][0] and "disk, cdrom" in r["boot"], r
    assert web.d.vm(VM)["cdrom"] == {"volume": ISO_VOLUME}


def test_start_shows_running_live(web):
    r = web.browser("start")
    assert r["no_reload"], r
    vm = web.d.vm(VM)
    if vm.get("pid"):
        web.d.qemu_pids.add(vm["pid"])
    assert vm["state"] == "running"
    # The qemu driver says it always (confined or not): the page shows it.
    assert r["qemu_uid"] is not None and r["qemu_uid"] == str(vm.get("qemu_uid")), (r, vm)


def test_console_tab_boot_marker_and_a_command(web):
    r = web.browser("console")
    assert r["ok"]


def test_console_websocket_checks_its_origin(web):
    """The serial console's WebSocket: 101 and the guest's answer to a
    command (an API token, no Origin: not a browser); 403 from another
    origin; the raw upgrade of `vireo console` still works (its route)."""
    tok = web.d.cli_json("token", "create", "--role", "operator")["secret"]
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    head = (f"GET /v1/vms/{VM}/console HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n"
            f"Authorization: Bearer {tok}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n")
    viewer = web.d.cli_json("token", "create", "--role", "viewer", "--expires", "1h")["secret"]
    vnc = head.replace("/console ", "/vnc ")
    good, evil, evil_vnc, viewer_vnc = web.requests([
        {"raw": head + "\r\n", "send": "echo ws-$((40+2))\n", "expect": "ws-42"},
        {"raw": head + "Origin: https://evil.example\r\n\r\n"},
        # noVNC's route (the Screen tab) checks it the same way, and only
        # for the operator role (keys and mouse reach the guest).
        {"raw": vnc + "Origin: https://evil.example\r\n\r\n"},
        {"raw": vnc.replace(tok, viewer) + "\r\n"},
    ])
    assert evil_vnc["status"] == 403 and "Origin" in evil_vnc["rest"], evil_vnc
    assert viewer_vnc["status"] == 403 and "needs the operator role" in viewer_vnc["rest"], viewer_vnc
    assert good["status"] == 101, good
    assert "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in good["head"], good["head"]
    assert "ws-42" in good["rest"], good
    assert evil["status"] == 403 and "Origin" in evil["rest"], evil


def test_screen_tab_shows_the_guest_and_takes_keys(web):
    """The graphical console (noVNC over GET /v1/vms/ID/vnc): its canvas
    holds the pixels of the API's screenshot; a line typed on it reaches the
    guest's first VT (a reader started there through the serial console
    prints it on the serial console)."""
    tok = web.d.cli_json("token", "create", "--role", "operator")["secret"]
    head = (f"GET /v1/vms/{VM}/console HTTP/1.1\r\nHost: 127.0.0.1:8443\r\n"
            f"Authorization: Bearer {tok}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    reader, = web.requests([{"raw": head, "expect": "tty1-7",
                             "send": "(read l </dev/tty1; echo vnc-key-$l) & echo tty1-$((3+4))\n"}])
    assert "tty1-7" in reader["rest"], reader
    r = web.browser("screen", keys="hello")
    assert r["csp_violations"] == [], r
    cmp = r["compare"]
    assert cmp["canvas"] == cmp["screenshot"], r
    assert cmp["colours"] >= 2 and cmp["same"] > 0.98, r
    h.wait_until(lambda: "vnc-key-hello" in web.d.console_log(VM), 30,
                 what="the line typed in noVNC on the guest's serial console")


def test_graphs_show_points(web):
    r = web.browser("graphs")
    assert r["points"]["cpu"] >= 2 and r["points"]["memory"] >= 2, r
    assert r["canvases"] == 4, r
    assert int(r["day_points"]) >= 1, r


def test_viewer_cannot_stop(web):
    """A viewer: the actions are disabled, the API answers 403; and the
    admin pages are not there for them."""
    r = web.browser("viewer")
    assert r["stop_disabled"] and r["start_disabled"] and r["delete_disabled"], r
    assert r["clone_disabled"], r
    assert dict(r["cdrom_disabled"]) == {"cdrom-insert": True, "cdrom-eject": True,
                                         "start-from-cdrom": True}, r
    assert r["api"]["status"] == 403, r
    assert r["api"]["body"]["error"]["code"] == "permission-denied", r
    # No admin pages: no links, the page says why, the API refuses (403).
    assert r["admin_links"] == 0 and "admin role" in r["admin_page"], r
    assert r["users_api"] == 403, r
    assert web.d.vm(VM)["state"] == "running"


def test_standalone_hosts_page_has_the_ha_limit(web):
    """A standalone host's page (linked from the cluster page, which says
    the host is standalone) has HA's restart limit (the cluster page's
    form): it follows a change made elsewhere; an edit in progress keeps the
    typed number, says the stored ones changed, and its Save changes only
    that number; a viewer's form is read-only."""
    try:
        r = web.browser("host_ha")
        assert r["before"] == "3/10" and r["display"] == "flex", r
        assert r["followed"] == "7", r
        assert r["typed"] == ["4", "20"] and "25 minutes" in r["changed_note"], r
        assert r["saved_window"] == "25" and r["notes_after"] == 0, r
        assert web.d.api("GET", "/v1/cluster/ha") == {"max_restarts": 4, "window_minutes": 25}
        assert r["viewer_disabled"] and r["viewer_save"] == 0, r
    finally:
        web.d.api("PATCH", "/v1/cluster/ha", {"max_restarts": 3, "window_minutes": 10})


def test_admin_pages_users_and_tokens(web):
    """An admin makes an operator and a viewer token for them: the secret
    is shown once and works; revoked, it is refused; the user is deleted."""
    r = web.browser("admin", new_user="olga", new_password="olga-pass-1")
    assert ["olga", "operator"] in r["users"], r
    assert r["own_delete"] == 0, r  # no deleting oneself by a slip
    secret = r["secret"]
    assert secret.startswith("vireo_") and not r["secret_again"], r
    assert secret not in r["page_text"], r
    role, user, by = r["token_row"][1:4]
    assert (role, user, by) == ("viewer", "olga", "user:admin"), r
    assert r["status_before"] == 200 and r["status_after"] == 401, r
    # Its screenshot (BUILD/web-ui/, copied to docs/images/) shows no secret.
    assert r["secret_shot_colours"] == 1, r
    token_id = secret.split("_")[1]
    assert token_id not in [t["id"] for t in web.d.api("GET", "/v1/tokens")]
    assert "olga" not in [u["name"] for u in web.d.api("GET", "/v1/users")]


def test_another_sessions_action_shows_live(web):
    r = web.browser("live")
    assert "paused" in r["summary"] and r["no_reload"], r
    assert web.d.vm(VM)["state"] == "running"


def test_failed_action_shows_the_apis_message(web):
    status, body = web.d.request("POST", f"/v1/vms/{VM}/start", {})
    message = body["error"]["message"]
    assert status == 409, (status, body)
    r = web.browser("failure")
    assert message in r["shown"], (message, r)


def guest_devices(web, present, absent=()):
    """The guest's block devices and network interfaces and vdb's size in
    sectors (one command on its serial console) when it has every device of
    present and none of absent, else None."""
    out = web.d.guest(VM, "ls /sys/block /sys/class/net; echo size=$(cat /sys/block/vdb/size 2>/dev/null)")
    devices = set(out.split())
    if present <= devices and not devices & set(absent):
        return devices, out.rpartition("size=")[2].strip()
    return None


def test_hardware_tab(web):
    """The running VM's Hardware tab: vCPUs beyond its maximum and a display
    change refused with the API's messages (nothing changed); a 64 MiB disk
    and a NIC hot-plugged (the guest sees vdb and eth1), then removed (the
    guest loses them; the disk's volume stays)."""
    r = web.browser("hardware", too_many_vcpus=2)
    assert "at most 1 vCPUs (max_vcpus)" in r["cpu_refused"], r
    assert "stop it before changing" in r["display_refused"] and "display" in r["display_refused"], r
    assert "live" in r["live_note"] and r["task"] == "succeeded", r
    vm = web.d.vm(VM)
    assert vm["vcpus"] == 1 and vm["display"] == "vga", vm
    assert [d["volume"] for d in vm["disks"]][1:] == [r["disk"]], (vm["disks"], r)
    assert [n["network"] for n in vm["nics"]] == ["default", "default"] and r["nic"][1] == "default", vm
    # The guest sees both at once (hot-plug): vdb of 64 MiB, eth1.
    devices, sectors = h.wait_until(lambda: guest_devices(web, {"vdb", "eth1"}), 60, interval=0.5,
                                    what="vdb and eth1 in the guest")
    assert int(sectors) * 512 == 64 << 20, (devices, sectors)
    r2 = web.browser("hardware_remove")
    assert r2["disks"] == [vm["disks"][0]["volume"]] and r2["nics"] == ["default"], r2
    vm = web.d.vm(VM)
    assert len(vm["disks"]) == 1 and len(vm["nics"]) == 1, vm
    # A removal's task succeeds once the guest released the device.
    h.wait_until(lambda: guest_devices(web, {"vda", "eth0"}, {"vdb", "eth1"}), 30, interval=0.5,
                 what="vdb and eth1 gone from the guest")
    pool, name = r["disk"].split("/")
    kept = web.d.api("GET", f"/v1/pools/{pool}/volumes/{name}")
    assert kept["attached_to"] is None, kept
    web.kept_volume = name


def test_cdrom_eject_and_insert_while_running(web):
    """On the running VM (started with the ISO in its drive): ejected,
    inserted again and ejected from the Hardware tab, each shown when its
    task ends; the drive stays, empty (QEMU's medium changed live)."""
    assert web.d.vm(VM)["state"] == "running"
    r = web.browser("cdrom", iso=ISO_VOLUME, cdrom_steps=["eject", "insert", "eject"])
    assert "empty" in r["shown"][0] and ISO_VOLUME in r["shown"][1] and "empty" in r["shown"][2], r
    vm = web.d.vm(VM)
    assert vm["state"] == "running" and vm["cdrom"] == {}, vm


def test_backups_tab(web):
    """The running VM's Backups tab: a full and an incremental backup listed
    (kind, parent, size); the incremental verified; a restore over the
    running VM refused with the API's message; restored as a new VM (made,
    not started); the incremental deleted. An operator's restore offers no
    new VM (the API's 403: test_access.py)."""
    copy = f"{VM}-copy"
    web.d.cli("user", "create", "otto", "--role", "operator", "--password-file", "-",
              input="otto-pass-1\n")
    r = web.browser("backups", copy=copy, operator="otto", operator_password="otto-pass-1",
                    timeout=400)
    assert r["operator_as"] == [True, "needs the admin role (yours: operator)"], r
    (full_id, full_kind, _, _), (inc_id, inc_kind, _, inc_stored) = r["rows"]
    assert full_kind == "full" and inc_kind == f"incremental of {full_id}", r
    assert inc_stored.split()[-1] in ("B", "KiB", "MiB", "GiB"), r
    status, body = web.d.request("POST", f"/v1/backups/{full_id}/restore", {})
    assert status == 409 and body["error"]["message"] in r["restore_refused"], (status, body, r)
    assert r["left"] == ["full"], r
    backups = web.d.api("GET", f"/v1/backups?vm={VM}")
    assert [(b["id"], b["kind"]) for b in backups] == [(full_id, "full")], backups
    restored = web.d.vm(copy)
    assert restored["state"] in ("defined", "stopped"), restored
    web.d.wait_task(web.d.api("DELETE", f"/v1/vms/{copy}", expect=202)["task"])
    assert web.d.vm(VM)["state"] == "running"


def test_pool_page(web):
    """The default pool's page: its capacity, the VM's boot volume used by
    the VM (its delete refused with the API's message); a volume made and
    deleted; one made elsewhere shown on the open page (polled for the
    cluster's admin too) and deleted; the volume the Hardware tab's removal
    kept deleted."""
    kept = getattr(web, "kept_volume", None)
    assert kept, "test_hardware_tab leaves a volume for this test"
    r = web.browser("pool", pool="default", volume="webui-vol", kept=kept, other="webui-other")
    assert r["other_made"] == 202, r
    pool = web.d.api("GET", "/v1/pools/default")
    assert r["capacity"] == pool["capacity_bytes"] > 0, (r, pool)
    assert r["used_by"] == VM, r
    assert r["row"][:3] == ["webui-vol", "32 MiB", "qcow2"], r
    assert VM in r["refused"], r
    names = [v["name"] for v in web.d.api("GET", "/v1/volumes?pool=default")["volumes"]]
    assert "webui-vol" not in names and kept not in names and f"{VM}-disk0" in names, names
    assert "webui-other" not in names, names
    assert "webui-vol" not in r["left"] and kept not in r["left"], r


def test_network_page(web):
    """The networks: an isolated one made with a subnet (its DHCP range
    shown), the default network's page (subnet, DHCP range and the VM's
    lease as the API gives them), its delete refused while the VM's NIC is
    on it, the new one deleted (gone from the API)."""
    r = web.browser("network", net="webnet", subnet="10.123.45.0/24")
    assert r["made"]["subnet"] == "10.123.45.0/24" and r["made"]["dhcp"] == "10.123.45.2 – 10.123.45.253", r
    net = web.d.api("GET", "/v1/networks/default")
    rng = net["dhcp_range"]
    assert r["default"]["subnet"] == net["subnet"] and r["default"]["dhcp"] == f"{rng['start']} – {rng['end']}", r
    assert r["default"]["gateway"] == net["gateway"], (r, net)
    nic = web.d.vm(VM)["nics"][0]
    assert r["lease"] == nic["ip"] and VM in r["default"]["nics"], (r, nic)
    assert VM in r["refused"], r
    assert "webnet" not in r["left"], r
    assert "webnet" not in [n["name"] for n in web.d.api("GET", "/v1/networks")["networks"]]


def test_stop_from_the_page(web):
    """Force stop on the running VM's page: the tree and the summary say
    stopped, live; so does the API."""
    assert web.d.vm(VM)["state"] == "running"
    r = web.browser("stop")
    assert "stopped" in r["state"], r
    assert web.d.vm(VM)["state"] == "stopped"


def test_snapshots_tab(web):
    """The snapshots of the stopped VM (qemu-img: no guest work): two taken,
    a taken name refused with the API's message, revert to the first (its
    task shown), delete the second."""
    if web.d.vm(VM)["state"] not in ("stopped", "defined"):
        web.d.cli("vm", "stop", VM, "--force")
    r = web.browser("snapshots")
    assert r["parent_of_two"] == "one" and r["task"] == "succeeded", r
    assert "one" in r["taken"] and r["left"] == ["one"], r
    assert r["kept_name"] == "one", r  # the refused form keeps what was typed
    doc = web.d.api("GET", f"/v1/vms/{VM}/snapshots")
    assert [s["name"] for s in doc["snapshots"]] == ["one"] and doc["current"] == "one", doc


def test_projects_page(web):
    """Projects (no VM started): one made with quotas; the wizard's create
    into it over its 0-VM quota refused with the API's message (nothing
    made); its quota raised, the VM moved in and counted; its delete
    refused while it holds the VM; a role on it granted and revoked on the
    users page; then deleted."""
    r = web.browser("projects", project="team-a")
    assert r["created"] == {"vcpus": "0 / 4", "memory_mib": "0 B / 1.0 GiB", "vms": "0 / 0",
                            "disk_bytes": "0 B / ∞"}, r
    assert "quota-exceeded" in r["over_quota"] or "quota vms is 0" in r["over_quota"], r
    assert r["move_in"] == 200 and r["move_out"] == 200, r
    assert r["with_vm"]["vms"] == "1 / 1" and r["with_vm"]["vcpus"] == "1 / 4", r
    assert VM in r["delete_refused"], r
    assert r["grant"].startswith("team-a: operator"), r
    assert "over-quota" not in [v["name"] for v in web.d.api("GET", "/v1/vms")["vms"]]
    assert "team-a" not in [p["name"] for p in web.d.api("GET", "/v1/projects")["projects"]]
    vera = next(u for u in web.d.api("GET", "/v1/users") if u["name"] == "vera")
    assert not vera.get("grants"), vera
    assert web.d.vm(VM)["project"] == "default"


def delete_vm(web, name):
    """Deletes a VM made for a test once its create has ended."""
    h.wait_until(lambda: web.d.vm(name)["state"] in ("defined", "stopped"), 120,
                 what=f"VM {name} made")
    web.d.task_ok("DELETE", f"/v1/vms/{name}")


def test_project_volumes_and_networks(web):
    """A project's volumes and networks in the browser (docs/projects.md):
    a volume and a network made in project P from the admin's forms show P
    (and the API says P), a volume of no project moved into P, P's use of
    disk and its counts on the projects page; P's user (admin there, no
    role on the cluster) sees the pool with only P's volumes (not the VM's
    disk of the default project), may create only in P, and makes a volume
    there (its task followed by id: such a user has no event stream), sees
    the admin's new volume in P on the open pool page (polled), and may act
    on a VM of P (its role there, not the cluster's). The projects page's
    counts are the cluster's: another host's volume and network of P count."""
    p, volume, free, uvolume, net = "team-p", "pvol", "pfree", "uvol", "pnet"
    avolume, pvm = "avol", "pvm"
    web.d.api("POST", "/v1/projects", {"name": p, "quotas": {"disk_bytes": 1500 << 20}}, expect=201)
    usage = f"cluster/project-usage/{p}/"  # another host's volume and network of P
    store_write(web.d, {usage + "volume:h-far:far:v": {"kind": "volume", "object": "far/v",
                                                       "scope": "h-far", "host": "h-far",
                                                       "disk_bytes": 0},
                        usage + "network:h-far:nfar": {"kind": "network", "object": "nfar",
                                                       "scope": "h-far", "host": "h-far",
                                                       "disk_bytes": 0}})
    web.d.wait_task(web.d.api("POST", "/v1/pools/default/volumes",
                              {"name": free, "size_bytes": 4 << 20}, expect=202)["task"])
    web.d.cli("user", "create", "pia", "--role", "none", "--password-file", "-",
              input="pia-pass-12\n")
    web.d.cli("user", "grant", "pia", "--role", "admin", "--project", p)
    try:
        r = web.browser("project_objects", project=p, pool="default", volume=volume, free=free,
                        uvolume=uvolume, net=net, puser="pia", ppassword="pia-pass-12",
                        avolume=avolume, pvm=pvm, counts={"volumes": "3", "networks": "2"})
        assert r["admin_vm"] == 202 and r["admin_volume"] == 202, r
        # Its actions enabled on P's VM (admin there): start, stop..., clone, delete;
        # Migrate… stays disabled: one host (and a project's user reads no hosts).
        actions = dict(r["user_vm_actions"])
        assert actions.pop("migrate") is False, r
        assert all(actions.values()) and len(actions) == 8, r
        delete_vm(web, pvm)  # before P's disk use is compared with its volumes'
        vols = {v["name"]: v for v in web.d.api("GET", "/v1/volumes?pool=default")["volumes"]}
        assert r["admin_default"] == "default", r  # the form's first choice
        assert r["volume_project"] == p == vols[volume]["project"], (r, vols[volume])
        assert r["moved"] == p == vols[free]["project"], (r, vols[free])
        assert r["network_project"].startswith(p), r
        assert web.d.api("GET", f"/v1/networks/{net}")["project"] == p
        disk = sum(vols[n]["virtual_size_bytes"] for n in (volume, free, uvolume, avolume))
        used = web.d.api("GET", f"/v1/projects/{p}")["usage"]["disk_bytes"]
        assert used == disk, (used, disk)
        assert not r["usage"]["disk_bytes"].endswith(" / ∞") and r["usage"]["volumes"] == "3", r
        # Its quotas saved from the page keep the disk's 1500 MiB.
        assert r["quota_form_valid"], r
        quotas = web.d.api("GET", f"/v1/projects/{p}")["quotas"]
        assert quotas["vcpus"] == 8 and quotas["disk_bytes"] == 1500 << 20, quotas
        assert r["usage"]["networks"] == "2" and r["usage"]["vms"] == "0 / ∞", r
        # P's user: only P's volumes, P the only choice, no refusal shown.
        assert f"{VM}-disk0" in r["admin_volumes"], r
        assert sorted(r["user_volumes"]) == sorted([volume, free, uvolume]), r
        assert r["user_sees_admin_volume"], r  # without opening the page again
        assert set(r["user_projects"]) == {p}, r
        assert r["user_choices"] == [p] and not r["user_error"], r
        assert vols[uvolume]["project"] == p, vols[uvolume]
        assert net in r["user_networks"] and "default" in r["user_networks"], r
        # The pool's count is of the volumes the page lists, not the pool's all.
        assert r["user_pool_count"] == ["2", 2], r
        # Polled: VMs and networks every 5 s, the pools once a minute, not
        # while the tab is hidden, at once when shown again.
        polls = r["user_polls"]
        assert polls["vms"] >= 2 and polls["pools"] <= 1, polls
        assert polls["hidden"] == [] and polls["shown"], polls
    finally:
        store_write(web.d, delete_like=usage + "%:h-far:%")
        if web.d.request("GET", f"/v1/vms/{pvm}")[0] == 200:
            delete_vm(web, pvm)
        for name in (volume, free, uvolume, avolume):
            status, body = web.d.request("DELETE", f"/v1/pools/default/volumes/{name}")
            if status == 202:
                web.d.wait_task(body["task"])
        web.d.request("DELETE", f"/v1/networks/{net}")
        web.d.request("DELETE", "/v1/users/pia")
        web.d.request("DELETE", f"/v1/projects/{p}")
    assert p not in [x["name"] for x in web.d.api("GET", "/v1/projects")["projects"]]


def test_schedules_page(web):
    """A snapshot schedule of the (stopped) VM made in the page, run now:
    its task shown in the page and the task log, requested by the schedule,
    the snapshot on the VM's tab; then deleted (its snapshot stays)."""
    r = web.browser("schedules", schedule="webui-snap")
    name, kind, selects, timing, retention = r["row"][:5]
    assert (name, kind, selects, timing, retention) == \
        ("webui-snap", "snapshot", f"VM {VM}", "cron 30 3 * * sun", "keep last 2"), r
    assert r["row"][5] not in ("", "–"), r  # the next run
    assert r["log_row"][1] == "snapshot-create" and r["log_row"][3] == "schedule:webui-snap", r
    assert f"{VM}: succeeded" in r["row_after"][6], r
    snaps = [s["name"] for s in web.d.api("GET", f"/v1/vms/{VM}/snapshots")["snapshots"]]
    assert r["snapshot"] in snaps and r["snapshot"].startswith("webui-snap-"), (r, snaps)
    status, _ = web.d.request("GET", "/v1/schedules/webui-snap")
    assert status == 404


def test_clone_from_the_page(web):
    """Clone of the stopped VM from its page: the task succeeds, the new VM
    shows in the tree, with a MAC of its own; its disk in a dir pool, the
    full copy box is checked and cannot be cleared (a linked clone would be
    refused)."""
    if web.d.vm(VM)["state"] not in ("stopped", "defined"):
        web.d.cli("vm", "stop", VM, "--force")
    r = web.browser("clone", clone="web1-copy")
    assert r["full_checked"] and r["full_disabled"] and r["in_tree"], r
    clone = web.d.vm("web1-copy")
    assert clone["nics"][0]["mac"] != web.d.vm(VM)["nics"][0]["mac"], clone
    web.d.task_ok("DELETE", "/v1/vms/web1-copy")


def test_delete_with_confirmation(web):
    if web.d.vm(VM)["state"] not in ("stopped", "defined"):
        web.d.cli("vm", "stop", VM, "--force")
    r = web.browser("delete")
    assert VM in r["asked"] and r["gone"], r
    status, _ = web.d.request("GET", f"/v1/vms/{VM}")
    assert status == 404


def test_first_load_size_and_paint(web):
    """The goal (docs/benchmarks.md): under 300 KB compressed, first paint
    under 1 s locally; asserted with room for a loaded test machine."""
    r = web.browser("firstload")
    print(f"web UI first load: {r['transferred_bytes']} bytes, first paint "
          f"{r['first_paint_ms']} ms")
    assert r["transferred_bytes"] < 300 * 1024, r
    # The views loaded when first shown stay out of it (lazy.jsx): none of
    # their chunks is fetched, and the page is far under the goal (14.6 KB
    # on the wire: a view built into the first chunk by a static import,
    # the smallest of the graphs, uPlot, 24 KB, or noVNC, 56 KB, passes
    # 32 KB).
    lazy = [p for p in r["fetched"]
            if re.search(r"/assets/(graphs|serial|vnc|snapshots|admin|admin-kit|projects|schedules|wizard|pages|"
                         r"hardware|backups|task-kit|pool-page|network-page|host-page|cluster-page)-",
                         p)]
    assert not lazy, r
    assert r["transferred_bytes"] < 32 * 1024, r
    assert r["first_paint_ms"] is not None and r["first_paint_ms"] < 5000, r


def test_browser_ends_with_its_processes_and_profile(web):
    """Web.close() ends every process of the browser even when its driver
    (node) died without closing it (killed, as close() kills one that
    hangs), and the browser's profile is in the test's directory (removed
    with it)."""
    web.browser("driver_calls")  # the browser started (this test alone)
    node = web.driver.pid
    browser, profiles = [], []
    for pid in h.netns_pids(web.browser_ns.name) - {node}:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue
        browser.append(pid)
        profiles += [a.partition("=")[2] for a in args if a.startswith("--user-data-dir=")]
        profiles += [b for a, b in zip(args, args[1:]) if a in ("-profile", "--profile")]
    assert browser and profiles, (browser, profiles)
    os.kill(node, signal.SIGKILL)
    web.close()
    assert [pid for pid in browser if h.pid_alive(pid)] == [], browser
    assert all(p.startswith(web.d.tmp + os.sep) for p in profiles), profiles
