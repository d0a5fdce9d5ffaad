#!/usr/bin/env bash
# The demo behind `make demo`: builds the default guest image into the state
# dir (once), starts vireod if it is not already answering, creates and boots
# the VM "demo", shows it running and how to reach its console.
set -euo pipefail
BUILD=${1:-build}
STATE_DIR=${2:-/var/lib/vireo}
RUN_DIR=${3:-/run/vireo}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
VIREOD="$top/$BUILD/src/daemon/vireod"
VIREO="$top/$BUILD/cli/vireo"
SOCK="$RUN_DIR/vireod.sock"
LOG=/var/log/vireod.log
export VIREO_SOCKET="$SOCK"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "default guest image (built once, cached in $STATE_DIR/images/default)"
bash guest/build-image.sh "$STATE_DIR/images/default"

step "vireod"
if "$VIREO" host show >/dev/null 2>&1; then
    echo "vireod already answers on $SOCK"
else
    # vireod never forks itself; setsid detaches it from this terminal.
    setsid "$VIREOD" --state-dir "$STATE_DIR" --run-dir "$RUN_DIR" >>"$LOG" 2>&1 < /dev/null &
    for _ in $(seq 100); do
        "$VIREO" host show >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$VIREO" host show >/dev/null || { echo "vireod did not start; see $LOG" >&2; exit 1; }
    echo "vireod started (pid $!, log $LOG)"
fi
"$VIREO" host show

step "create and boot the VM 'demo'"
if ! "$VIREO" vm show demo >/dev/null 2>&1; then
    "$VIREO" vm create demo --memory 256M
fi
state=$("$VIREO" vm show demo --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
if [ "$state" != running ]; then
    "$VIREO" vm start demo
fi
for _ in $(seq 300); do
    "$VIREO" console demo --log | grep -q 'vireo-guest: booted' && break
    sleep 0.2
done

# Its address on the default network, once DHCP has given it one.
ip=""
for _ in $(seq 100); do
    ip=$("$VIREO" vm show demo --output json |
         python3 -c 'import json,sys; n=json.load(sys.stdin)["nics"]; print(n[0].get("ip") or "" if n else "")')
    [ -n "$ip" ] && break
    sleep 0.2
done

step "it runs"
"$VIREO" vm list
echo
"$VIREO" vm show demo
echo
echo "Its serial console so far:"
"$VIREO" console demo --log | grep -a "vireo-guest"

step "web UI"
# The first admin: made once, its password printed this once (vireo user
# passwd admin sets another).
password=""
if ! "$VIREO" user list 2>/dev/null | grep -qw admin; then
    password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(12))')
    printf '%s\n' "$password" | "$VIREO" user create admin --role admin --password-file - >/dev/null
fi
host=$(hostname -I 2>/dev/null | awk '{print $1}')
echo "Open https://${host:-127.0.0.1}:8443/ui/ (the certificate is self-signed: its CA is $STATE_DIR/https/ca.crt)"
if [ -n "$password" ]; then
    echo "Log in as admin with the password: $password   (shown only now)"
else
    echo "Log in as admin (made by an earlier 'make demo'; 'vireo user passwd admin' sets a new password)"
fi

cat <<MSG

Its address on the default network:   ${ip:-(not yet)}   (try: ping ${ip:-ADDRESS})
Reach its console (Ctrl-] detaches):  $VIREO console demo
Everything else:                      $VIREO --help   (socket: $SOCK)
Stop it:                              $VIREO vm stop demo
MSG
