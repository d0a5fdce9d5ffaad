"""netns_relay.py: relays TCP connections made to ADDR:PORT in one network
namespace to the same ADDR:PORT in the namespace this process runs in.

    ip netns exec SERVER_NS python3 netns_relay.py CLIENT_NS 127.0.0.1 8443

The web UI test runs Chromium in a namespace of its own: in vireod's, every
tap, bridge or address that vireod makes (a VM started, a NIC hot-plugged,
a network created) is a network change for Chromium, which then aborts the
requests in flight (net::ERR_NETWORK_CHANGED), and a lazily loaded part of
the app never arrives. A user's browser runs elsewhere and never sees that.

The listening socket is made with this thread switched into CLIENT_NS
(setns(2) acts on the calling thread; a socket keeps the namespace it was
made in), then the thread switches back: every connection to vireod is
made here. Prints "ready" once listening; ends on SIGTERM or stdin's end."""
import ctypes
import os
import socket
import sys
import threading

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)


def setns(fd):
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


def listen_in(ns_name, addr, port):
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns_name}", os.O_RDONLY)
    try:
        setns(target)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, port))
        s.listen(64)
    finally:
        setns(home)
        os.close(home)
        os.close(target)
    return s


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


def serve(client, addr, port):
    try:
        server = socket.create_connection((addr, port), timeout=30)
        server.settimeout(None)
    except OSError:
        client.close()
        return
    a = threading.Thread(target=pump, args=(client, server), daemon=True)
    b = threading.Thread(target=pump, args=(server, client), daemon=True)
    a.start()
    b.start()
    a.join()
    b.join()
    client.close()
    server.close()


def main():
    ns_name, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    listener = listen_in(ns_name, addr, port)
    print("ready", flush=True)
    # stdin's end (the test gone) ends the relay too.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, addr, port), daemon=True).start()


if __name__ == "__main__":
    main()
