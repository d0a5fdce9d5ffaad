"""System test of a VM's graphical console (docs/guests.md, "Graphical
console") on a real TCG guest: a blank VM boots an ISO made here whose GRUB
shows a menu (vireo's installer ISO boots at once: its GRUB has timeout=0,
so it has no menu to reach) on VGA and serial. With --cdrom the VM gets a
VGA display by default; QEMU serves it over VNC on a Unix socket in its run
dir. A screenshot (GET .../screenshot, vireo vm screenshot) is a PNG, decoded
here with zlib, that is not blank; send-keys moves GRUB's highlight (the
screen changes) and chooses the second entry (its marker on the serial
console); the VNC stream over a WebSocket and through `vireo console --vnc`
both complete RFB's no-auth handshake. Off loopback, `vireo console --vnc
--listen 0.0.0.0:0` prints a one-time password: RFB's VNC authentication (DES
challenge, through OpenSSL's libcrypto by ctypes) passes with it and fails
without it, with a wrong one and after it expired. Bad input (an unknown key,
a VM without display, a stopped VM, a bad ttl) is a 4xx and changes nothing.
One VM boot serves the module."""

import base64
import ctypes
import ctypes.util
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import time
import zlib

import pytest

from vireo_harness import VIREO, Daemon, UnixHTTPConnection, wait_until

MENU_TIMEOUT = 240

pytestmark = pytest.mark.skipif(not shutil.which("grub-mkrescue") or not shutil.which("xorriso"),
                                reason="needs grub-mkrescue and xorriso (grub-pc-bin)")

GRUB_CFG = """serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=-1
menuentry "first entry" {
    echo "vnc-test: first entry chosen"
    sleep 3600
}
menuentry "second entry" {
    echo "vnc-test: second entry chosen"
    sleep 3600
}
"""


def make_menu_iso(tmp):
    root = os.path.join(tmp, "iso")
    os.makedirs(os.path.join(root, "boot", "grub"))
    with open(os.path.join(root, "boot", "grub", "grub.cfg"), "w") as f:
        f.write(GRUB_CFG)
    out = os.path.join(tmp, "menu.iso")
    subprocess.run(["grub-mkrescue", "-o", out, root, "--", "-volid", "VNCTEST"], check=True,
                   capture_output=True, timeout=120)
    return out


def png_pixels(data):
    """(width, height, rows of bytes) of a PNG, decoded with zlib alone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
        if kind == b"IEND":
            break
    width, height, depth, color, _, _, interlace = ihdr
    assert depth == 8 and color in (2, 6) and interlace == 0, ihdr
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 0xff
            elif ftype == 2:
                line[x] = (line[x] + b) & 0xff
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xff
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xff
        rows.append(bytes(line))
        prev = line
    return width, height, rows


def rows_differing(a, b):
    """How many pixel rows of two screens differ (text mode's blinking cursor
    changes a few: a key's effect on a menu, many more)."""
    return sum(1 for x, y in zip(a, b) if x != y) + abs(len(a) - len(b))


# Below this many differing rows two screens are the same but for the cursor.
CURSOR_ROWS = 8
# GRUB's highlight moving between two menu lines repaints both (16 rows each).
MENU_MOVE_ROWS = 24


def settled_screen(daemon, name, timeout=120):
    """Waits until GRUB has drawn its menu on the screen too (the serial
    terminal may get it first; TCG under load draws slowly): a screen that
    is not blank, three screenshots in a row (over two seconds) the same but
    for the cursor. (Two blank ones in a row passed for settled on a loaded
    machine: the menu came later and the next screenshot differed.)"""
    last = []

    def same():
        status, _, png = screenshot(daemon, name)
        rows = png_pixels(png)[2] if status == 200 else None
        if rows is None or len(set(rows)) <= 10:  # not yet drawn
            last.clear()
            return False
        last.append(rows)
        del last[:-3]
        return len(last) == 3 and all(rows_differing(r, rows) <= CURSOR_ROWS for r in last)
    wait_until(same, timeout, interval=1, what="the menu drawn on the screen")


def screenshot(daemon, name):
    conn = UnixHTTPConnection(daemon.socket, timeout=60)
    try:
        conn.request("GET", f"/v1/vms/{name}/screenshot")
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read()
    finally:
        conn.close()


def error_of(status_doc):
    status, doc = status_doc
    return status, doc.get("error", {}).get("message", "") if isinstance(doc, dict) else doc


def rfb_handshake(recv_exact, send):
    """RFB 3.8 with security None, up to ServerInit: the screen's size."""
    assert recv_exact(12) == b"RFB 003.008\n"
    send(b"RFB 003.008\n")
    (n,) = recv_exact(1)
    types = recv_exact(n)
    assert 1 in types, types  # None
    send(b"\x01")
    assert recv_exact(4) == b"\0\0\0\0"  # SecurityResult OK
    send(b"\x01")  # ClientInit: shared
    width, height = struct.unpack(">HH", recv_exact(4))
    recv_exact(16)  # pixel format
    (name_len,) = struct.unpack(">I", recv_exact(4))
    return width, height, recv_exact(name_len)


class WebSocket:
    """A minimal RFC 6455 client over vireod's Unix socket."""

    def __init__(self, path, vm, origin=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(path)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /v1/vms/{vm}/vnc HTTP/1.1\r\nHost: vireod\r\n"
                           "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           "Sec-WebSocket-Protocol: binary\r\n"
                           + (f"Origin: {origin}\r\n" if origin else "") + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, head
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        self.head = head.decode()
        want = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.accept_ok = f"sec-websocket-accept: {want.lower()}" in self.head.lower()
        self.data = b""

    def _frame(self):
        while True:
            if len(self.buf) >= 2:
                length, pos = self.buf[1] & 0x7f, 2
                if length == 126 and len(self.buf) >= 4:
                    (length,), pos = struct.unpack(">H", self.buf[2:4]), 4
                elif length == 127 and len(self.buf) >= 10:
                    (length,), pos = struct.unpack(">Q", self.buf[2:10]), 10
                if length < 126 and len(self.buf) >= pos + length:
                    op, payload = self.buf[0] & 0x0f, self.buf[pos:pos + length]
                    self.buf = self.buf[pos + length:]
                    return op, payload
            chunk = self.sock.recv(65536)
            assert chunk, "the WebSocket closed"
            self.buf += chunk

    def recv_exact(self, n):
        while len(self.data) < n:
            op, payload = self._frame()
            assert op in (0, 2), (op, payload)
            self.data += payload
        out, self.data = self.data[:n], self.data[n:]
        return out

    def send(self, payload, op=2):
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x80 | op, 0x80 | len(payload)]) + mask + masked)

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def menu_vm(tmp_path_factory):
    """A running VM at GRUB's menu (VGA display by default: it has --cdrom)."""
    tmp = str(tmp_path_factory.mktemp("display"))
    d = Daemon()
    try:
        d.cli("volume", "import", "default/menu", make_menu_iso(tmp))
        d.cli("vm", "create", "menu", "--blank", "--disk-size", "64M", "--memory", "256M",
              "--cdrom", "default/menu", "--boot", "cdrom,disk")
        assert d.vm("menu")["display"] == "vga"
        d.cli("vm", "start", "menu")
        d.qemu_pids.add(d.vm("menu")["pid"])
        d.wait_console("menu", "second entry", timeout=MENU_TIMEOUT)
        settled_screen(d, "menu")
        yield d, tmp
    finally:
        d.cleanup()


def test_display_setting_and_refusals(menu_vm):
    d, tmp = menu_vm
    # the run dir has the VNC socket, QEMU's argv no TCP VNC port
    cmdline = open(f"/proc/{d.vm('menu')['pid']}/cmdline").read().split("\0")
    vnc = cmdline[cmdline.index("-vnc") + 1]
    assert vnc.startswith("unix:") and vnc.endswith("/vnc.sock,share=ignore"), vnc
    # beside it the VNC server that asks for a password (none set: nobody in)
    ticket = [a for a in cmdline if a.startswith("unix:") and "vnc-ticket.sock" in a]
    assert ticket and ticket[0].endswith(",share=ignore,password=on,id=vnc-ticket"), cmdline
    # the default image's VM: no display, so no VNC; --display sets one
    d.cli("vm", "create", "plain", "--memory", "128M")
    assert "display" not in d.vm("plain")
    status, msg = error_of(d.request("POST", "/v1/vms/plain/send-keys", {"keys": ["ret"]}))
    assert status == 409 and "no display" in msg and "--display vga" in msg, (status, msg)
    status, _, body = screenshot(d, "plain")
    assert status == 409 and b"no display" in body, (status, body)
    d.cli("vm", "set", "plain", "--display", "virtio")
    assert d.vm("plain")["display"] == "virtio"
    shown = [l.split() for l in d.cli("vm", "show", "plain").stdout.splitlines()
             if l.startswith("display:")]
    assert shown == [["display:", "virtio"]], shown
    # with a display but stopped: 409 not running, for every display route
    status, _, body = screenshot(d, "plain")
    assert status == 409 and b"not running" in body, (status, body)
    status, msg = error_of(d.request("GET", "/v1/vms/plain/vnc", headers={
        "Connection": "Upgrade", "Upgrade": "vireo-vnc"}))
    assert status == 409 and "not running" in msg, (status, msg)
    p = d.cli("vm", "screenshot", "plain", os.path.join(tmp, "no.png"), check=False)
    assert p.returncode == 1 and "not running" in p.stderr, p.stderr
    assert not os.path.exists(os.path.join(tmp, "no.png"))
    # bad values: 400, nothing changed
    status, msg = error_of(d.request("PATCH", "/v1/vms/plain", {"display": "spice"}))
    assert status == 400 and "spice" in msg, (status, msg)
    status, msg = error_of(d.request("POST", "/v1/vms", {"name": "bad", "display": "spice"}))
    assert status == 400 and "display" in msg, (status, msg)
    assert d.request("GET", "/v1/vms/bad")[0] == 404
    assert d.vm("plain")["display"] == "virtio"
    # a running VM's display changes only while stopped
    status, msg = error_of(d.request("PATCH", "/v1/vms/menu", {"display": "none"}))
    assert status == 409 and "stop it" in msg, (status, msg)
    assert d.vm("menu")["display"] == "vga"
    d.cli("vm", "set", "plain", "--display", "none")
    assert "display" not in d.vm("plain")


def test_screenshot_and_send_keys_reach_the_boot_menu(menu_vm):
    d, tmp = menu_vm
    status, ctype, png = screenshot(d, "menu")
    assert status == 200 and ctype == "image/png", (status, ctype, png[:200])
    width, height, rows = png_pixels(png)
    assert width >= 640 and height >= 400, (width, height)
    assert len(set(rows)) > 10, "the screen is blank"
    # the file QEMU wrote in the run dir is gone
    cmdline = open(f"/proc/{d.vm('menu')['pid']}/cmdline").read().split("\0")
    run_dir = os.path.dirname(cmdline[cmdline.index("-vnc") + 1][len("unix:"):].split(",")[0])
    assert os.path.exists(os.path.join(run_dir, "vnc.sock"))
    assert not os.path.exists(os.path.join(run_dir, "screendump.png"))
    # the CLI's copy is the same screen
    out = os.path.join(tmp, "cli.png")
    d.cli("vm", "screenshot", "menu", out)
    diff = rows_differing(png_pixels(open(out, "rb").read())[2], rows)
    assert diff <= CURSOR_ROWS, diff
    # bad keys: 400 naming the key, nothing pressed
    for body, want in (({"keys": ["ctrl-alt-nope"]}, "unknown key 'nope'"),
                       ({"keys": "ret"}, "keys: expected an array"),
                       ({"keys": ["ret"] * 129}, "at most 128"),
                       ({"text": "\u00e9"}, "has no key"),
                       ({}, "give keys")):
        status, msg = error_of(d.request("POST", "/v1/vms/menu/send-keys", body))
        assert status == 400 and want in msg, (body, status, msg)
    p = d.cli("vm", "send-keys", "menu", "bogus", check=False)
    assert p.returncode == 1 and "unknown key 'bogus'" in p.stderr, p.stderr
    diff = rows_differing(png_pixels(screenshot(d, "menu")[2])[2], rows)
    assert diff <= CURSOR_ROWS, diff
    # down: GRUB's highlight moves (the screen changes)
    assert d.api("POST", "/v1/vms/menu/send-keys", {"keys": ["down"]}) == {"sent": 1}
    wait_until(lambda: rows_differing(png_pixels(screenshot(d, "menu")[2])[2], rows)
               >= MENU_MOVE_ROWS, 60, interval=0.3, what="the screen to change after a key")
    # enter (through the CLI): the second entry runs and says so on serial
    d.cli("vm", "send-keys", "menu", "ret")
    d.wait_console("menu", "vnc-test: second entry chosen", timeout=60)
    assert "vnc-test: first entry chosen" not in d.console_log("menu")


def test_vnc_over_websocket_and_cli(menu_vm):
    d, tmp = menu_vm
    ws = WebSocket(d.socket, "menu")
    try:
        assert ws.head.startswith("HTTP/1.1 101"), ws.head
        assert ws.accept_ok, ws.head
        assert "sec-websocket-protocol: binary" in ws.head.lower(), ws.head
        width, height, _ = rfb_handshake(ws.recv_exact, ws.send)
        assert width >= 640 and height >= 400
    finally:
        ws.close()
    # a browser's page of another origin may not open it (403); its own may
    for origin, want in (("https://evil.example", "HTTP/1.1 403"),
                         ("http://vireod", "HTTP/1.1 101")):
        ws = WebSocket(d.socket, "menu", origin=origin)
        try:
            assert ws.head.startswith(want), (origin, ws.head)
        finally:
            ws.close()
    # a plain GET without the upgrade is a 400 that says how
    status, msg = error_of(d.request("GET", "/v1/vms/menu/vnc"))
    assert status == 400 and "Upgrade: websocket" in msg, (status, msg)

    # vireo console --vnc: a loopback port, one stream per viewer
    p = d.cli("console", "plain-missing", "--vnc", "--listen", "127.0.0.1:0", check=False)
    assert p.returncode == 1 and "does not exist" in p.stderr, p.stderr
    proc = subprocess.Popen([VIREO, "--socket", d.socket, "console", "menu", "--vnc", "--listen",
                             "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert " on 127.0.0.1:" in line, (line, proc.poll())
        port = int(line.split(" on 127.0.0.1:")[1].split()[0])
        for _ in range(2):  # the first stream (opened at start), then a new one
            with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
                def recv_exact(n, c=c):
                    out = b""
                    while len(out) < n:
                        chunk = c.recv(n - len(out))
                        assert chunk, out
                        out += chunk
                    return out
                width, _, _ = rfb_handshake(recv_exact, c.sendall)
                assert width >= 640
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def raw_vnc_request(path, vm, query="", with_rest=False):
    """A raw upgrade to the VNC stream: the socket and vireod's answer head
    (with_rest: and the stream's bytes read after it)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(path)
    s.sendall(f"GET /v1/vms/{vm}/vnc{query} HTTP/1.1\r\nHost: vireod\r\nConnection: Upgrade\r\n"
              "Upgrade: vireo-vnc\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    head = head.decode(errors="replace")
    if not head.startswith("HTTP/1.1 101"):  # an error's JSON body
        length = [int(l.split(":", 1)[1]) for l in head.splitlines()
                  if l.lower().startswith("content-length:")]
        while length and len(body) < length[0]:
            chunk = s.recv(4096)
            assert chunk, body
            body += chunk
        head += "\n" + body.decode(errors="replace")
    return (s, head, body) if with_rest else (s, head)


def test_vnc_server_that_takes_no_connection(menu_vm):
    """A VNC server that accepts nothing (QEMU stuck; here a listener of the
    test's in place of QEMU's socket): vireod's connect is bounded and
    answers 409 instead of holding its thread for ever."""
    d, _ = menu_vm
    cmdline = open(f"/proc/{d.vm('menu')['pid']}/cmdline").read().split("\0")
    vnc = cmdline[cmdline.index("-vnc") + 1][len("unix:"):].split(",")[0]
    aside = vnc + ".aside"
    os.rename(vnc, aside)
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    held = []
    try:
        stuck.bind(vnc)
        stuck.listen(0)  # one connection waits in the backlog; the next one would block
        for _ in range(3):
            s, head = raw_vnc_request(d.socket, "menu")
            held.append(s)
            if not head.startswith("HTTP/1.1 101"):
                break
        assert head.startswith("HTTP/1.1 409") and "does not answer" in head, head
    finally:
        for s in held:
            s.close()
        stuck.close()
        os.unlink(vnc)
        os.rename(aside, vnc)
    # QEMU's own server again
    s, head = raw_vnc_request(d.socket, "menu")
    try:
        assert head.startswith("HTTP/1.1 101"), head
    finally:
        s.close()


_libcrypto = ctypes.CDLL(ctypes.util.find_library("crypto"))


def des_ecb(key, block):
    """One DES block (OpenSSL's DES_ecb_encrypt): Python has no DES."""
    schedule = ctypes.create_string_buffer(128)  # DES_key_schedule
    _libcrypto.DES_set_key_unchecked(key, schedule)
    out = ctypes.create_string_buffer(8)
    _libcrypto.DES_ecb_encrypt(block, out, schedule, 1)
    return out.raw


def vnc_auth_response(password, challenge):
    """RFB's VNC authentication: the 16-byte challenge encrypted with DES
    whose key is the password (8 bytes, zero-padded), each byte's bits reversed."""
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in password.encode()[:8].ljust(8, b"\0"))
    return des_ecb(key, challenge[:8]) + des_ecb(key, challenge[8:])


def rfb_password_handshake(sock, password, pending=b""):
    """RFB 3.8 offering only VNC authentication (type 2). With password: the
    SecurityResult (True: passed, and ServerInit read); password None asks
    for security None instead, which the server must refuse."""
    buf = [pending]

    def recv_exact(n):
        out, buf[0] = buf[0][:n], buf[0][n:]
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                return out
            out += chunk
        return out
    assert recv_exact(12) == b"RFB 003.008\n"
    sock.sendall(b"RFB 003.008\n")
    (n,) = recv_exact(1)
    types = recv_exact(n)
    assert list(types) == [2], types  # VNC authentication only, never None
    if password is None:
        sock.sendall(b"\x01")  # None: not offered
        return recv_exact(4) == b"\0\0\0\0"
    sock.sendall(b"\x02")
    challenge = recv_exact(16)
    assert len(challenge) == 16
    sock.sendall(vnc_auth_response(password, challenge))
    if recv_exact(4) != b"\0\0\0\0":
        return False
    sock.sendall(b"\x01")  # ClientInit: shared
    width, height = struct.unpack(">HH", recv_exact(4))
    recv_exact(16)
    (name_len,) = struct.unpack(">I", recv_exact(4))
    recv_exact(name_len)
    return width >= 640 and height >= 400


def test_des_matches_the_standard_vector():
    """The test's DES is DES (FIPS 46 worked example), so a refusal below is
    QEMU's and not a broken cipher's."""
    assert des_ecb(bytes.fromhex("133457799BBCDFF1"),
                   bytes.fromhex("0123456789ABCDEF")) == bytes.fromhex("85E813540F0AB405")


def test_vnc_one_time_password_off_loopback(menu_vm):
    d, tmp = menu_vm
    # bad ttls and a VM without display: 4xx, nothing set
    for ttl in (1, 3601, "x"):
        status, msg = error_of(d.request("POST", "/v1/vms/menu/vnc-ticket", {"ttl_seconds": ttl}))
        assert status == 400, (ttl, status, msg)
    d.cli("vm", "create", "nodisplay", "--memory", "128M")
    status, msg = error_of(d.request("POST", "/v1/vms/nodisplay/vnc-ticket", {}))
    assert status == 409 and "no display" in msg, (status, msg)
    p = d.cli("console", "menu", "--vnc", "--listen", "127.0.0.1:0", "--password-ttl", "9",
              check=False)
    assert p.returncode == 2 and "off loopback" in p.stderr, p.stderr
    # a misspelt ?password= is refused, not served by the passwordless server
    for query in ("?password=on", "?password=True", "?password=", "?password"):
        s, head = raw_vnc_request(d.socket, "menu", query=query)
        s.close()
        assert head.startswith("HTTP/1.1 400") and "is not true or false" in head, head
    # before any password is issued the password server admits nobody
    s, head, rest = raw_vnc_request(d.socket, "menu", query="?password=true", with_rest=True)
    try:
        assert head.startswith("HTTP/1.1 101"), head
        assert rfb_password_handshake(s, "anything", rest) is False
    finally:
        s.close()

    ttl = 6
    proc = subprocess.Popen([VIREO, "--socket", d.socket, "console", "menu", "--vnc", "--listen",
                             "0.0.0.0:0", "--password-ttl", str(ttl)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        issued = time.monotonic()
        assert " on 0.0.0.0:" in line, (line, proc.poll())
        port = int(line.split(" on 0.0.0.0:")[1].split()[0])
        line = proc.stdout.readline()
        assert line.startswith("VNC password: "), line
        password = line.split()[2]
        assert len(password) == 8 and password.isalnum(), password
        wrong = "x" + password[1:] if password[0] != "x" else "y" + password[1:]

        def viewer(pw):
            c = socket.create_connection(("127.0.0.1", port), timeout=60)
            c.settimeout(60)
            return c, rfb_password_handshake(c, pw)
        kept, ok = viewer(password)  # stays connected after the expiry
        assert ok, "the one-time password was refused"
        for pw in (None, wrong):
            c, ok = viewer(pw)
            c.close()
            assert ok is False, pw
        c, ok = viewer(password)  # within the ttl: any number of viewers
        c.close()
        assert ok
        # the web UI's passwordless stream is untouched by the password
        ws = WebSocket(d.socket, "menu")
        try:
            assert rfb_handshake(ws.recv_exact, ws.send)[0] >= 640
        finally:
            ws.close()
        # a peer that connects and stays silent (no password given)
        idle = socket.create_connection(("127.0.0.1", port), timeout=60)
        assert idle.recv(12) == b"RFB 003.008\n"
        time.sleep(max(0.0, issued + ttl + 1 - time.monotonic()))
        # QEMU's password server refuses the expired password...
        s, head, rest = raw_vnc_request(d.socket, "menu", query="?password=true",
                                        with_rest=True)
        try:
            assert head.startswith("HTTP/1.1 101"), head
            assert rfb_password_handshake(s, password, rest) is False, \
                "the password still admits a viewer after it expired"
        finally:
            s.close()
        # ... and the CLI's port, open to the network, holds nothing for a
        # viewer that can no longer get in: the silent one is disconnected,
        # a new one at once (no greeting: no stream was opened for it)
        idle.settimeout(15)
        assert idle.recv(64) == b"", "a silent viewer outlived the password"
        idle.close()
        c = socket.create_connection(("127.0.0.1", port), timeout=15)
        assert c.recv(64) == b"", "a viewer after the expiry was relayed"
        c.close()
        # the viewer that got in before the expiry is still served: a
        # FramebufferUpdateRequest is answered with a FramebufferUpdate (0)
        kept.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, 64, 64))
        assert kept.recv(1) == b"\0"
        kept.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    # a QEMU without the password server (one started by an older vireod:
    # here its socket set aside) cannot take a password: 409, and the CLI
    # says so before it listens
    cmdline = open(f"/proc/{d.vm('menu')['pid']}/cmdline").read().split("\0")
    ticket = [a for a in cmdline if "vnc-ticket.sock" in a][0][len("unix:"):].split(",")[0]
    os.rename(ticket, ticket + ".aside")
    try:
        status, msg = error_of(d.request("POST", "/v1/vms/menu/vnc-ticket", {}))
        assert status == 409 and "older vireod" in msg and "stop and start" in msg, (status, msg)
        p = d.cli("console", "menu", "--vnc", "--listen", "0.0.0.0:0", check=False)
        assert p.returncode == 1 and "older vireod" in p.stderr, p.stderr
    finally:
        os.rename(ticket + ".aside", ticket)
