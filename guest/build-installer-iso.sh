#!/usr/bin/env bash
# build-installer-iso.sh - build a small bootable installer ISO (BIOS) from
# Debian packages, for testing ISO installs under vireo.
#
# Usage: guest/build-installer-iso.sh OUTDIR
#
# Produces OUTDIR/installer.iso: GRUB for BIOS (grub-mkrescue, xorriso,
# grub-pc-bin) that boots the default image's kernel (the same Debian
# package, as a bzImage) with an installer initramfs (busybox). On the
# serial console the installer:
#   * partitions the VM's empty virtio disk /dev/vda (one MBR partition from
#     1 MiB to the end) and makes an ext2 file system on it (busybox mke2fs);
#   * copies a small busybox root file system onto it with the kernel and an
#     initramfs that mounts it (and loads the AHCI CD-ROM and iso9660
#     drivers, so the installed system can read /dev/sr0);
#   * installs GRUB: boot.img in the MBR, a core.img (grub-mkimage, with the
#     disk's partition and ext2 drivers) after it, GRUB's modules and a
#     grub.cfg under /boot/grub;
#   * prints "vireo-installer: done" and powers off.
# The installed system prints "vireo-installed: booted from disk" and then
# boots like the default image (a shell on the serial console).
#
# Console markers: "vireo-installer: started", "vireo-installer: done",
# "vireo-installer: FAILED ..." on error (then it powers off too).
#
# If OUTDIR/installer.iso exists nothing is done (a cache, like the default
# image). Needs what build-image.sh needs plus grub-mkrescue, grub-mkimage
# (grub-common, grub-pc-bin) and xorriso.

set -Eeuo pipefail

# The installer's and the installed system's drivers (with dependencies).
readonly INSTALLER_MODULES="virtio_pci virtio_blk ext4"
readonly INSTALLED_MODULES="virtio_pci virtio_blk virtio_net ext4 button evdev ahci sr_mod isofs"
readonly GRUB_DIR=/usr/lib/grub/i386-pc
# What GRUB on the disk needs before it reads its modules from the disk.
readonly CORE_MODULES="biosdisk part_msdos ext2 normal linux serial terminal echo"
readonly KCMDLINE="console=ttyS0 quiet panic=-1 cryptomgr.notests"

GUEST_MODULES=$INSTALLED_MODULES
# shellcheck source=guest/build-image.sh
source "$(dirname "${BASH_SOURCE[0]}")/build-image.sh"

require_iso_tools() {
    local tool missing=()
    for tool in grub-mkrescue grub-mkimage xorriso; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [[ -f $GRUB_DIR/boot.img ]] || missing+=("$GRUB_DIR/boot.img")
    ((${#missing[@]} == 0)) ||
        die "missing: ${missing[*]} (apt-get install grub-pc-bin grub-common xorriso)"
}

write_installer_init() {
    cat >"$1" <<'INIT'
#!/bin/sh
# vireo test installer: installs /payload onto the VM's empty disk, then
# powers off. Everything is logged on the serial console.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "vireo-installer: started"

fail() {
    echo "vireo-installer: FAILED: $*"
    sync
    poweroff -f
}

modules=
while read -r mod; do modules="$modules $mod"; done </etc/modules
busybox modprobe -a $modules || fail "cannot load the drivers"

disk=/dev/vda
tries=0
while [ ! -b $disk ] && [ $tries -lt 100 ]; do sleep 0.05; tries=$((tries + 1)); done
[ -b $disk ] || fail "no disk $disk (does the VM have a virtio disk?)"
sectors=$(cat /sys/block/vda/size)
[ "$sectors" -ge 65536 ] || fail "$disk is too small ($sectors sectors; at least 32 MiB)"
echo "vireo-installer: installing onto $disk ($sectors sectors)"

# Little-endian 32-bit value $1 as 4 raw bytes.
le32() {
    for s in 0 8 16 24; do
        printf "\\$(printf %o $((($1 >> s) & 255)))"
    done
}

# MBR: GRUB's boot code, one bootable Linux partition from sector 2048 to
# the end, the signature; GRUB's core image in the gap (sectors 1..2047).
start=2048
dd if=/payload/grub/boot.img of=$disk bs=440 count=1 conv=notrunc 2>/dev/null ||
    fail "cannot write the MBR"
{
    printf '\200\376\377\377\203\376\377\377'
    le32 $start
    le32 $((sectors - start))
} | dd of=$disk bs=1 seek=446 conv=notrunc 2>/dev/null || fail "cannot write the partition table"
printf '\125\252' | dd of=$disk bs=1 seek=510 conv=notrunc 2>/dev/null || fail "cannot sign the MBR"
dd if=/payload/grub/core.img of=$disk bs=512 seek=1 conv=notrunc 2>/dev/null ||
    fail "cannot write GRUB's core image"
sync
blockdev --rereadpt $disk || fail "the kernel does not see the new partition table"
tries=0
while [ ! -b ${disk}1 ] && [ $tries -lt 100 ]; do sleep 0.05; tries=$((tries + 1)); done
[ -b ${disk}1 ] || fail "no partition ${disk}1"
echo "vireo-installer: partitioned"

mke2fs -L vireo-root ${disk}1 >/dev/null || fail "mke2fs ${disk}1"
mkdir -p /target
mount -t ext2 ${disk}1 /target || fail "cannot mount ${disk}1"
cp -a /payload/root/. /target/ || fail "cannot copy the root file system"
mkdir -p /target/boot/grub/i386-pc
cp /payload/vmlinuz /target/boot/vmlinuz
cp /payload/initrd.img /target/boot/initrd.img
cp /payload/grub/grub.cfg /target/boot/grub/grub.cfg
cp /payload/grub/i386-pc/* /target/boot/grub/i386-pc/ || fail "cannot copy GRUB's modules"
sync
umount /target || fail "cannot unmount ${disk}1"
echo "vireo-installer: done"
poweroff -f
INIT
    chmod 755 "$1"
}

# The installed system's /sbin/init: its marker, then the default image's init.
write_installed_init() {
    cat >"$1" <<'INIT'
#!/bin/sh
echo "vireo-installed: booted from disk" >/dev/ttyS0
exec /sbin/init.guest
INIT
    chmod 755 "$1"
}

# build_installer_initrd KERNEL_ROOT KVER BUSYBOX PAYLOAD OUT
build_installer_initrd() {
    local kroot=$1 kver=$2 busybox=$3 payload=$4 out=$5 dir
    dir=$(mktemp -d "$WORK/installer.XXXXXX")
    local imods="$dir/lib/modules/$kver"
    mkdir -p "$dir"/{dev,proc,sys,etc} "$imods"
    install_busybox "$busybox" "$dir"
    GUEST_MODULES=$INSTALLER_MODULES module_load_order "$kroot" "$kver" >"$WORK/installer.list"
    copy_modules "$kroot/lib/modules/$kver" "$imods" "$WORK/installer.list"
    sed 's/\.ko.*$/.ko/' "$WORK/installer.list" >"$imods/modules.order"
    cp "$kroot/lib/modules/$kver/modules.builtin" "$kroot/lib/modules/$kver/modules.builtin.modinfo" "$imods/"
    depmod -b "$dir" "$kver"
    sed 's|.*/||; s/\.ko.*$//' "$WORK/installer.list" >"$dir/etc/modules"
    write_installer_init "$dir/init"
    cp -a "$payload" "$dir/payload"
    (cd "$dir" && find . -mindepth 1 | LC_ALL=C sort |
        cpio --quiet -o -H newc -R 0:0) | gzip -1 >"$out"
}

# The installed root file system (a directory): the default image's.
build_installed_root() {
    local busybox=$1 root=$2
    mkdir -p "$root"/{dev,proc,sys,tmp,run,root,etc,mnt,boot,var/log}
    chmod 755 "$root"
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"
    install_busybox "$busybox" "$root"
    write_hotplug_script "$root/sbin/vireo-hotplug"
    rm -f "$root/sbin/init"
    write_guest_init "$root/sbin/init.guest"
    write_installed_init "$root/sbin/init"
    write_etc "$root/etc"
}

build_grub_payload() {
    local out=$1
    mkdir -p "$out/i386-pc"
    cp "$GRUB_DIR/boot.img" "$out/boot.img"
    # shellcheck disable=SC2086  # CORE_MODULES is a word list
    grub-mkimage -O i386-pc -o "$out/core.img" -p '(hd0,msdos1)/boot/grub' $CORE_MODULES
    (($(stat -c %s "$out/core.img") < 2047 * 512)) || die "GRUB's core image is too big"
    cp "$GRUB_DIR"/*.mod "$GRUB_DIR"/*.lst "$out/i386-pc/"
    cat >"$out/grub.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry "vireo installed system" {
    linux /boot/vmlinuz root=/dev/vda1 rootfstype=ext2 rw $KCMDLINE
    initrd /boot/initrd.img
}
EOF
}

iso_main() {
    (($# == 1)) || { echo "usage: $0 OUTDIR" >&2; exit 2; }
    local outdir
    outdir=$(realpath -m "$1") # the module paths below are absolute
    [[ -f $outdir/installer.iso ]] && exit 0
    require_tools
    require_iso_tools
    mkdir -p "$outdir"
    exec 9>"$outdir/.installer.lock"
    flock 9
    [[ -f $outdir/installer.iso ]] && exit 0

    WORK=$(mktemp -d "$outdir/.installer.build.XXXXXX")
    trap cleanup EXIT
    trap 'log "error: command failed at line $LINENO: $BASH_COMMAND"' ERR
    local debs=${VIREO_GUEST_CACHE:-$WORK/debs} kroot="$WORK/kernel" bbroot="$WORK/busybox"
    mkdir -p "$debs"
    local kdeb bbdeb kver busybox="$bbroot/bin/busybox"
    kdeb=$(download_deb "$(kernel_package)" "$debs")
    bbdeb=$(download_deb busybox-static "$debs")
    log "extracting $(basename "$kdeb") and $(basename "$bbdeb")"
    dpkg -x "$kdeb" "$kroot"
    dpkg -x "$bbdeb" "$bbroot"
    kver=$(basename "$(compgen -G "$kroot/lib/modules/*" | head -n 1 || true)")
    [[ -n $kver && -f $kroot/boot/vmlinuz-$kver ]] || die "unexpected layout of $kdeb"

    local payload="$WORK/payload" iso="$WORK/iso"
    mkdir -p "$payload" "$iso/boot/grub"
    cp "$kroot/boot/vmlinuz-$kver" "$payload/vmlinuz"
    log "building the installed system's initrd (modules: $INSTALLED_MODULES)"
    build_initrd "$kroot" "$kver" "$busybox" "$payload/initrd.img"
    build_installed_root "$busybox" "$payload/root"
    build_grub_payload "$payload/grub"
    log "building the installer"
    cp "$kroot/boot/vmlinuz-$kver" "$iso/boot/vmlinuz"
    build_installer_initrd "$kroot" "$kver" "$busybox" "$payload" "$iso/boot/installer.img"
    cat >"$iso/boot/grub/grub.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry "vireo installer" {
    linux /boot/vmlinuz $KCMDLINE
    initrd /boot/installer.img
}
EOF
    grub-mkrescue -d "$GRUB_DIR" -o "$WORK/installer.iso" "$iso" -- -volid VIREO_INSTALLER \
        >"$WORK/mkrescue.log" 2>&1 || { cat "$WORK/mkrescue.log" >&2; die "grub-mkrescue failed"; }
    mv "$WORK/installer.iso" "$outdir/installer.iso"
    log "installer ISO ready: $outdir/installer.iso"
}

iso_main "$@"
