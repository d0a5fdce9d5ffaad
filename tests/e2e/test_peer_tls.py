"""vireod's HTTPS listener (mutual TLS) with a real guest: the console
upgrade of a VM on host h2 works from host h1's namespace over TLS with h1's
certificate, and without a certificate it is refused before any upgrade."""

import os
import subprocess
import sys

from vireo_harness import BOOT_MARKER

CLIENT = r'''
import socket, ssl, sys, time
host, port, ca, cert, key, vm, tag = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=ca)
if cert != "-":
    ctx.load_cert_chain(cert, key)
s = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=20),
                    server_hostname=host)
s.sendall(f"GET /v1/vms/{vm}/console HTTP/1.1\r\nHost: {host}\r\n"
          "Connection: Upgrade\r\nUpgrade: vireo-console\r\n\r\n".encode())
data = b""
while b"\r\n\r\n" not in data:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
head, _, rest = data.partition(b"\r\n\r\n")
print(head.split(b"\r\n")[0].decode(), flush=True)
if b" 101 " not in head.split(b"\r\n")[0]:
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
              if l.lower().startswith(b"content-length:")]
    while length and len(rest) < length[0]:
        chunk = s.recv(4096)
        if not chunk:
            break
        rest += chunk
    print(rest.decode(errors="replace"))
    sys.exit(0)
# The marker is printed from octal escapes: only the command's output has it.
s.sendall(f"\nprintf '\\074%s\\076\\n' {tag}\n".encode())
out, deadline = rest, time.monotonic() + 60
s.settimeout(2)
while f"<{tag}>".encode() not in out and time.monotonic() < deadline:
    try:
        chunk = s.recv(4096)
    except socket.timeout:
        s.sendall(f"printf '\\074%s\\076\\n' {tag}\n".encode())
        continue
    if not chunk:
        break
    out += chunk
print("MARKER" if f"<{tag}>".encode() in out else "NO MARKER: " + out.decode(errors="replace"))
'''


def console_over_tls(src, dst, vm, cert=True):
    script = os.path.join(dst.tmp, "console-client.py")
    with open(script, "w") as f:
        f.write(CLIENT)
    args = [dst.address, str(dst.port), dst.ca, src.cert if cert else "-",
            src.key if cert else "-", vm, "m4rk3r"]
    p = subprocess.run(["ip", "netns", "exec", src.host_netns.name, sys.executable, script, *args],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_console_of_a_vm_over_mutual_tls(cluster):
    c = cluster(2, driver="qemu")
    h1, h2 = c.hosts
    h2.create_and_boot("vm1")
    h2.wait_console("vm1", BOOT_MARKER)
    out = console_over_tls(h1, h2, "vm1")
    assert out.startswith("HTTP/1.1 101"), out
    assert "MARKER" in out.splitlines()[1], out
    # No client certificate: 401 with the error, no console.
    out = console_over_tls(h1, h2, "vm1", cert=False)
    assert out.startswith("HTTP/1.1 401"), out
    assert '"unauthenticated"' in out
    # The API's own refusals pass over TLS too.
    out = console_over_tls(h1, h2, "nope")
    assert out.startswith("HTTP/1.1 404"), out
