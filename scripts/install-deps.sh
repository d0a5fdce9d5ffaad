#!/usr/bin/env bash
# Installs everything vireo needs to build, test and run, from Debian packages.
# Idempotent: safe to run again; skips apt when every package is already present.
set -euo pipefail

BACKPORTS=/etc/apt/sources.list.d/vireo-bookworm-backports.list
PKGS=(build-essential meson ninja-build pkg-config
      libjansson-dev libsqlite3-dev libmicrohttpd-dev libcmocka-dev libcurl4-openssl-dev libssl-dev
      python3 python3-pytest python3-yaml curl
      python3-prometheus-client  # tests/e2e/test_metrics.py parses /metrics
      iproute2 nftables dnsmasq-base e2fsprogs cpio xz-utils zstd kmod
      busybox-static etcd-server etcd-client libgnutls28-dev openssl
      libsodium-dev  # argon2id password hashes (HTTPS access for users)
      libcrypt-dev  # the CLI hashes a guest password for cloud-init (crypt(3), SHA-512)
      libxml2-dev  # OVF and libvirt domain XML parsing (vireo vm import-ova, import-libvirt)
      ovmf  # UEFI firmware of VMs (--firmware uefi)
      grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools dosfstools efibootmgr  # guest/build-installer-iso.sh (BIOS+UEFI installer ISO)
      genisoimage  # vireod's cloud-init NoCloud seed ISO (xorriso also works)
      debootstrap openssh-client  # guest/build-debian-image.sh; the Debian guest test logs in over SSH
      clang llvm libclang-rt-14-dev  # libFuzzer (tests/fuzz) and llvm-symbolizer
      libiscsi-dev libiscsi-bin tgt  # iSCSI pools (docs/storage-san.md): vireod's initiator; tests' target
      librados-dev librbd-dev  # rbd pools (vireod talks to Ceph)
      ceph-mon ceph-mgr ceph-osd ceph-common  # tests/e2e/ceph_harness.py (a test Ceph)
      chromium  # tests/e2e/test_web_ui.py drives it headless (playwright-core, no browser download)
      firefox-esr)  # tests/e2e/test_web_firefox.py drives it headless (puppeteer-core over WebDriver BiDi)
# The web UI's build (web/: npm ci, vite): Debian's nodejs and npm unless a
# node with its npm is there already (another nodejs package ships its own npm).
if ! command -v npm >/dev/null 2>&1; then
    PKGS+=(nodejs npm)
fi
BPO_PKGS=(qemu-system-x86 qemu-utils qemu-block-extra)  # qemu-block-extra: QEMU's iscsi and rbd drivers

# One dpkg-query for all (make check calls this three times; one a package
# cost ~0.9 CPU-s a call): it fails when one is unknown. Each package named
# must have an "install ok installed" line of its own (not config-files,
# half-installed, ...): a package of two architectures has two lines, so
# counting lines could hide a missing one.
have_all() {
    local all=("${PKGS[@]}" "${BPO_PKGS[@]}") status
    status=$(dpkg-query -W -f='${Status} ${Package}\n' "${all[@]}" 2>/dev/null) || return 1
    [ -z "$(comm -23 <(printf '%s\n' "${all[@]}" | sort -u) \
            <(awk '$1 == "install" && $2 == "ok" && $3 == "installed" { print $4 }' <<<"$status" | sort -u))" ] ||
        return 1
    # QEMU must come from backports (>= 9.0): 7.2 corrupts guest RAM in TCG migration.
    local v; v=$(dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null || echo 0)
    dpkg --compare-versions "$v" ge 1:9.0 || return 1
}

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (apt-get needs it)" >&2
    exit 1
fi

if have_all; then
    exit 0
fi

if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" > "$BACKPORTS"
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${PKGS[@]}"
apt-get install -y -q --no-install-recommends -t bookworm-backports "${BPO_PKGS[@]}"
have_all || { echo "install-deps: packages still missing after apt-get" >&2; exit 1; }
