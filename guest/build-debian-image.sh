#!/usr/bin/env bash
# build-debian-image.sh - build a full Debian 12 (bookworm) guest image for
# vireo: systemd, cloud-init (NoCloud), qemu-guest-agent and openssh-server,
# installed with debootstrap from a Debian mirror.
#
# Usage: guest/build-debian-image.sh OUTDIR
#
# Produces, in OUTDIR (the same layout as guest/build-image.sh, so vireo
# boots it the same way: kernel beside the disk, no boot loader):
#   vmlinux     the uncompressed ELF kernel of the Debian kernel package
#               (QEMU boots it directly via PVH)
#   initrd.img  the small busybox initramfs of build-image.sh (virtio, ext4),
#               which switches to the root disk's /sbin/init (systemd)
#   disk.raw    a sparse ext4 root file system (VIREO_DEBIAN_DISK_SIZE,
#               default 2G) with the Debian system and the kernel's modules
#   image.json  with "cloud_init": true (a VM made from it gets a NoCloud
#               seed), "guest_agent": true, and "script": the SHA-256 of this
#               script and build-image.sh
#
# The guest: cloud-init reads only the NoCloud datasource (the `cidata`
# CD-ROM vireo attaches) and renders its network-config for
# systemd-networkd; qemu-guest-agent starts when its virtio-serial port
# appears; a getty runs on the serial console. No root password.
#
# Cached like the default image: if OUTDIR/image.json records this script's
# hash nothing is done; the image is built in a temporary directory next to
# OUTDIR and renamed into place. Needs root (debootstrap), debootstrap and
# network access to the mirror.
#
# Environment:
#   VIREO_DEBIAN_MIRROR     Debian mirror (default http://deb.debian.org/debian)
#   VIREO_DEBIAN_DISK_SIZE  root file system size (default 2G, sparse)
#   VIREO_GUEST_CACHE       keep downloaded .debs (debootstrap's and the kernel) here
#
# Time: 25 min on a 2-core machine at load ~25 (debootstrap 19 min of it,
# mostly unpacking and configuring), 475 MiB in the root file system.

set -Eeuo pipefail

# shellcheck source=guest/build-image.sh
source "$(dirname "${BASH_SOURCE[0]}")/build-image.sh"

readonly DEBIAN_IMAGE_NAME=debian
readonly DEBIAN_SUITE=bookworm
readonly DEBIAN_MIRROR=${VIREO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
readonly DEBIAN_DISK_SIZE=${VIREO_DEBIAN_DISK_SIZE:-2G}
# systemd's console is the serial port; net.ifnames=0 keeps the NIC eth0
# whatever PCI slot it gets; of build-image.sh's BOOT_COST (the same kernel:
# what a TCG boot can skip; docs/benchmarks.md) the cuts that weaken nothing,
# and its IDLE_COST (the HPET an idle guest need not wake QEMU for). Not
# init_on_alloc=0, rodata=off or mitigations=off: fine in a test guest, but
# this image is for users too (README.md), whose guests keep Debian's
# kernel hardening and speculation mitigations.
readonly DEBIAN_BOOT_COST="no_timer_check 8250.nr_uarts=1 i8042.noaux"
readonly DEBIAN_CMDLINE="console=ttyS0 root=/dev/vda rw quiet panic=-1 cryptomgr.notests net.ifnames=0 $DEBIAN_BOOT_COST $IDLE_COST"
# What debootstrap installs beyond its minbase (the init system), then what
# apt-get installs in the root (debootstrap's own ordering fails to configure
# cloud-init's python dependencies). The kernel is unpacked separately: its
# postinst would build an initramfs nobody uses.
readonly DEBIAN_BASE="systemd,systemd-sysv,udev,kmod,dbus,iproute2,netbase"
readonly DEBIAN_PACKAGES="cloud-init qemu-guest-agent openssh-server sudo ca-certificates"

# Replaces build-image.sh's cleanup: a failed debootstrap may leave file
# systems mounted in the root (proc, sys, a bind-mounted /dev): unmount them
# first, and never remove across a mount point.
cleanup() {
    [[ -n ${WORK:-} && -d $WORK ]] || return 0
    local m
    for m in $(awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$WORK"
    return 0
}

debian_script_hash() {
    cat "${BASH_SOURCE[0]}" "$(dirname "${BASH_SOURCE[0]}")/build-image.sh" | sha256sum | cut -d' ' -f1
}

debian_image_current() {
    [[ -f $1/image.json ]] && grep -q "\"script\":\"$(debian_script_hash)\"" "$1/image.json"
}

# configure_rootfs ROOT: the guest's configuration, written from outside.
configure_rootfs() {
    local root=$1
    printf '/dev/vda / ext4 rw,relatime 0 1\n' >"$root/etc/fstab"
    # The initramfs checks for an executable /sbin/init before switch_root:
    # systemd-sysv's absolute symlink would resolve into the initramfs's own
    # root there; a relative one reaches systemd on the disk.
    ln -sfn ../lib/systemd/systemd "$root/usr/sbin/init"
    echo debian >"$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n' >"$root/etc/hosts"
    # systemd makes a fresh machine-id at first boot.
    : >"$root/etc/machine-id"
    rm -f "$root/var/lib/dbus/machine-id"
    # cloud-init: the NoCloud seed only (no probing for cloud metadata
    # services), network through systemd-networkd.
    mkdir -p "$root/etc/cloud/cloud.cfg.d"
    cat >"$root/etc/cloud/cloud.cfg.d/90-vireo.cfg" <<'CFG'
# vireo: the settings come from the NoCloud seed (a CD-ROM labelled cidata).
datasource_list: [NoCloud, None]
# No locales package: C.UTF-8 (built into libc) needs no locale-gen.
locale: C.UTF-8
system_info:
  network:
    renderers: [networkd]
# One host key type (each new instance makes its keys; RSA's takes seconds
# under TCG): OpenSSH's own default type.
ssh_genkeytypes: [ed25519]
# Debian's module lists without the modules for software this image lacks
# and they do not install, for Ubuntu's tools or for other platforms and
# clouds (migrator, rsyslog, snap, ssh-import-id, keyboard, grub-dpkg, EC2
# metadata, byobu, fan, landscape, mcollective, RMC, RightScale, hotplug),
# each loaded in every stage's run. Kept: lxd, puppet, chef and salt-minion
# install their software when a user's user-data asks for it.
cloud_init_modules: [seed_random, bootcmd, write-files, growpart, resizefs, disk_setup, mounts,
                     set_hostname, update_hostname, update_etc_hosts, ca-certs, users-groups, ssh]
cloud_config_modules: [locale, set-passwords, apt-pipelining, apt-configure, ntp, timezone, runcmd]
cloud_final_modules: [package-update-upgrade-install, lxd, write-files-deferred, puppet, chef,
                      salt-minion, scripts-vendor, scripts-per-once, scripts-per-boot,
                      scripts-per-instance, scripts-user, ssh-authkey-fingerprints,
                      keys-to-console, phone-home, final-message, power-state-change]
CFG
    # Boot speed under TCG: nothing waits for the network; no timers that
    # start apt or man-db at boot.
    local unit
    for unit in systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
        man-db.timer e2scrub_all.timer fstrim.timer e2scrub_reap.service; do
        ln -sf /dev/null "$root/etc/systemd/system/$unit"
    done
    # systemd-networkd applies what cloud-init renders.
    mkdir -p "$root/etc/systemd/system/multi-user.target.wants" "$root/etc/systemd/system/sockets.target.wants"
    ln -sf /lib/systemd/system/systemd-networkd.service \
        "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
    ln -sf /lib/systemd/system/systemd-networkd.socket \
        "$root/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"
    # The host keys are made at first boot (by cloud-init), per VM.
    rm -f "$root"/etc/ssh/ssh_host_*
    # Space: no documentation, no package lists, no .debs.
    rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/var/cache/apt/archives/*.deb \
        "$root"/var/lib/apt/lists/* "$root"/usr/share/locale/*
    # /etc and /var are up to date with /usr (the stamp systemd-update-done
    # writes upstream; Debian has no such service, so the stamp would stay
    # missing): the boots skip systemd-sysusers (ConditionNeedsUpdate=/etc),
    # whose users the packages' scripts made here.
    local dir
    for dir in etc var; do
        printf 'TIMESTAMP_NSEC=%s\n' "$(stat -c %.9Y "$root/usr" | tr -d .)" >"$root/$dir/.updated"
        touch -r "$root/usr" "$root/$dir/.updated"
    done
}

# install_packages ROOT: apt-get install DEBIAN_PACKAGES in the root (proc,
# sys and /dev mounted for the maintainer scripts, no service started).
install_packages() {
    local root=$1 rc=0
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    # No fsync after each file dpkg writes: a crashed build is thrown away.
    echo force-unsafe-io >"$root/etc/dpkg/dpkg.cfg.d/vireo-build"
    cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --bind /dev "$root/dev"
    mount --bind /dev/pts "$root/dev/pts"
    # shellcheck disable=SC2086  # a word list
    { chroot "$root" apt-get -q update &&
        DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -q -y --no-install-recommends \
            install $DEBIAN_PACKAGES && chroot "$root" apt-get clean; } >"$WORK/apt.log" 2>&1 || rc=$?
    umount "$root/dev/pts" "$root/dev" "$root/sys" "$root/proc"
    rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf" "$root/etc/dpkg/dpkg.cfg.d/vireo-build"
    ((rc == 0)) || { tail -n 30 "$WORK/apt.log" >&2; die "apt-get install in the root failed"; }
}

# install_kernel ROOT DEBDIR: unpack the kernel package (modules, /boot)
# into ROOT without running its maintainer scripts; print its version.
install_kernel() {
    local root=$1 debs=$2 kpkg kdeb kver
    kpkg=$(kernel_package)
    kdeb=$(download_deb "$kpkg" "$debs")
    log "unpacking $(basename "$kdeb")"
    # Unpacked aside, then moved in: dpkg -x straight into the root would
    # replace merged /usr's /lib symlink by a directory (and lose the
    # dynamic linker behind it).
    local kroot="$WORK/kernel"
    dpkg -x "$kdeb" "$kroot"
    mkdir -p "$root/usr/lib/modules" "$root/boot"
    mv "$kroot"/lib/modules/* "$root/usr/lib/modules/"
    mv "$kroot"/boot/* "$root/boot/"
    [[ -L $root/lib ]] || die "the root's /lib is not merged /usr's symlink"
    kver=$(basename "$(compgen -G "$root/lib/modules/*" | head -n 1 || true)")
    [[ -n $kver && -f $root/boot/vmlinuz-$kver ]] || die "unexpected layout of $kdeb"
    grep -qx CONFIG_PVH=y "$root/boot/config-$kver" || die "kernel $kver lacks CONFIG_PVH"
    # Drivers a VM never needs (a smaller disk, a faster mke2fs).
    rm -rf "$root/lib/modules/$kver/kernel/drivers/"{gpu,net/wireless,media,infiniband,staging,bluetooth,iio,isdn} \
        "$root/lib/modules/$kver/kernel/sound"
    depmod -b "$root" "$kver"
    echo "$kver"
}

debian_main() {
    (($# == 1)) || { echo "usage: $0 OUTDIR" >&2; exit 2; }
    local outdir=${1%/}
    debian_image_current "$outdir" && exit 0
    ((EUID == 0)) || die "debootstrap needs root"
    command -v debootstrap >/dev/null || die "missing debootstrap (apt-get install debootstrap)"
    require_tools
    local parent name
    parent=$(dirname "$outdir")
    name=$(basename "$outdir")
    mkdir -p "$parent"
    exec 9>"$parent/.$name.lock"
    flock 9
    debian_image_current "$outdir" && exit 0

    WORK=$(mktemp -d "$parent/.$name.build.XXXXXX")
    trap cleanup EXIT
    trap 'log "error: command failed at line $LINENO: $BASH_COMMAND"' ERR
    local stage="$WORK/image" root="$WORK/rootfs" debs=${VIREO_GUEST_CACHE:-$WORK/debs}
    mkdir -p "$stage" "$debs"
    local t0=$SECONDS

    log "debootstrap $DEBIAN_SUITE from $DEBIAN_MIRROR"
    local -a cache=()
    [[ -n ${VIREO_GUEST_CACHE:-} ]] && cache=(--cache-dir="$(realpath "$debs")")
    debootstrap --variant=minbase --include="$DEBIAN_BASE" "${cache[@]}" \
        "$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -n 20 "$WORK/debootstrap.log" "$root/debootstrap/debootstrap.log" >&2 || true
          die "debootstrap failed"; }
    log "debootstrap done after $((SECONDS - t0)) s; installing $DEBIAN_PACKAGES"
    install_packages "$root"
    log "packages installed after $((SECONDS - t0)) s"

    local kver
    kver=$(install_kernel "$root" "$debs")
    configure_rootfs "$root"

    local bbdeb bbroot="$WORK/busybox"
    bbdeb=$(download_deb busybox-static "$debs")
    dpkg -x "$bbdeb" "$bbroot"
    log "kernel $kver: extracting vmlinux, building initrd.img"
    extract_vmlinux "$root/boot/vmlinuz-$kver" "$stage/vmlinux"
    build_initrd "$root" "$kver" "$bbroot/bin/busybox" "$stage/initrd.img"

    log "building disk.raw ($DEBIAN_DISK_SIZE, $(du -sm "$root" | cut -f1) MiB used)"
    mke2fs -q -t ext4 -L debian-root -m 0 -d "$root" \
        -E root_owner=0:0 -F "$stage/disk.raw" "$DEBIAN_DISK_SIZE" >/dev/null
    cat >"$stage/image.json" <<EOF
{"name":"$DEBIAN_IMAGE_NAME","disk":"disk.raw","format":"raw","kernel":"vmlinux","initrd":"initrd.img","cmdline":"$DEBIAN_CMDLINE","kernel_version":"$kver","guest_agent":true,"cloud_init":true,"script":"$(debian_script_hash)","built_at":"$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
EOF
    local old=
    if [[ -f $outdir/image.json ]]; then
        old="$WORK/old"
        mv -T "$outdir" "$old"
    fi
    mv -T "$stage" "$outdir" 2>/dev/null ||
        die "cannot rename the image to $outdir (exists without image.json? remove it)"
    log "image ready in $outdir after $((SECONDS - t0)) s"
}

# Sourced (tests/e2e/test_debian_guest.py reads DEBIAN_CMDLINE): no build.
[[ ${BASH_SOURCE[0]} != "$0" ]] || debian_main "$@"
