#!/usr/bin/env bash
# build-installer-iso.sh - build a small bootable installer ISO (BIOS and
# UEFI) from Debian packages, for testing ISO installs under vireo.
#
# Usage: guest/build-installer-iso.sh OUTDIR
#
# Produces OUTDIR/installer.iso: GRUB for BIOS and UEFI (grub-mkrescue,
# xorriso, grub-pc-bin, grub-efi-amd64-bin, mtools) that boots the default
# image's kernel (the same Debian package, as a bzImage) with an installer
# initramfs (busybox). On the serial console the installer:
#   * partitions the VM's empty virtio disk /dev/vda (BIOS: one MBR partition
#     from 1 MiB to the end; UEFI, when /sys/firmware/efi exists: an 8 MiB EFI
#     system partition vda1, then the root partition vda2) and makes an ext2
#     file system on the root partition (busybox mke2fs);
#   * copies a small busybox root file system onto it with the kernel and an
#     initramfs that mounts it (and loads the AHCI CD-ROM and iso9660
#     drivers, so the installed system can read /dev/sr0);
#   * installs GRUB. BIOS: boot.img in the MBR, a core.img (grub-mkimage, with
#     the disk's partition and ext2 drivers) after it, GRUB's modules and a
#     grub.cfg under /boot/grub. UEFI: the EFI system partition is a FAT image
#     made here (mkfs.vfat, mtools) holding GRUB for x86_64-efi as
#     \EFI\vireo\grubx64.efi and as the removable-media path
#     \EFI\BOOT\BOOTX64.EFI; GRUB's x86_64-efi modules and grub.cfg go under
#     /boot/grub on the root partition; efibootmgr (Debian's, copied in with
#     its libraries; the kernel's efivarfs module) adds the NVRAM boot entry
#     "vireo" and puts it first in BootOrder;
#   * prints "vireo-installer: done" and powers off.
# The installed system prints "vireo-installed: booted from disk" and then
# boots like the default image (a shell on the serial console).
#
# Console markers: "vireo-installer: started", "vireo-installer: done",
# "vireo-installer: FAILED ..." on error (then it powers off too).
#
# The installed system has the efivarfs module (a test mounts it and reads
# BootCurrent and the boot entries).
#
# If OUTDIR/installer.iso exists and OUTDIR/installer.version says it was built
# by this version of the script nothing is done (a cache, like the default
# image); an ISO of an older script is rebuilt. Needs what build-image.sh needs
# plus grub-mkrescue, grub-mkimage (grub-common, grub-pc-bin,
# grub-efi-amd64-bin), xorriso, mtools, mkfs.vfat (dosfstools) and efibootmgr.

set -Eeuo pipefail

# The installer's and the installed system's drivers (with dependencies).
readonly INSTALLER_MODULES="virtio_pci virtio_blk ext4 efivarfs"
# efivarfs last: on BIOS firmware it does not load (No such device), the
# others are loaded by then (the initrd reports module errors only on rescue).
readonly INSTALLED_MODULES="virtio_pci virtio_blk virtio_net ext4 button evdev ahci sr_mod isofs efivarfs"
readonly GRUB_DIR=/usr/lib/grub/i386-pc
readonly GRUB_EFI_DIR=/usr/lib/grub/x86_64-efi
# What GRUB for UEFI needs before it reads its modules from the root partition.
readonly EFI_CORE_MODULES="part_msdos ext2 search search_label normal linux serial terminal echo efi_gop"
# Bump when the ISO's contents change: an ISO built by an older script is rebuilt.
readonly ISO_VERSION=4
readonly ESP_SECTORS=16384
# What GRUB on the disk needs before it reads its modules from the disk.
readonly CORE_MODULES="biosdisk part_msdos ext2 normal linux serial terminal echo"
readonly KCMDLINE="console=ttyS0 quiet panic=-1 cryptomgr.notests"

GUEST_MODULES=$INSTALLED_MODULES
# shellcheck source=guest/build-image.sh
source "$(dirname "${BASH_SOURCE[0]}")/build-image.sh"

require_iso_tools() {
    local tool missing=()
    for tool in grub-mkrescue grub-mkimage xorriso mkfs.vfat mmd mcopy efibootmgr ldd; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [[ -f $GRUB_DIR/boot.img ]] || missing+=("$GRUB_DIR/boot.img")
    [[ -f $GRUB_EFI_DIR/linux.mod ]] || missing+=("$GRUB_EFI_DIR")
    ((${#missing[@]} == 0)) ||
        die "missing: ${missing[*]} (apt-get install grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools dosfstools efibootmgr)"
}

write_installer_init() {
    cat >"$1" <<'INIT'
#!/bin/sh
# vireo test installer: installs /payload onto the VM's empty disk, then
# powers off. Everything is logged on the serial console.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
ESP_SECTORS=@ESP_SECTORS@
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

# efivarfs loads only on UEFI firmware (below).
modules=
while read -r mod; do [ "$mod" = efivarfs ] || modules="$modules $mod"; done </etc/modules
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

efi=
[ -d /sys/firmware/efi ] && efi=1
if [ -n "$efi" ]; then
    echo "vireo-installer: UEFI mode"
    busybox modprobe efivarfs || fail "cannot load efivarfs"
    mount -t efivarfs efivarfs /sys/firmware/efi/efivars || fail "cannot mount efivarfs"
fi

# MBR: (BIOS) GRUB's boot code, one bootable Linux partition from sector 2048
# to the end, GRUB's core image in the gap (sectors 1..2047); (UEFI) an EFI
# system partition (type 0xef) then the root partition; a disk signature
# (firmware boot entries name the disk by it); the 0x55aa mark.
start=2048
if [ -n "$efi" ]; then
    root_start=$((start + ESP_SECTORS))
    root=${disk}2
    {
        printf '\000\376\377\377\357\376\377\377'
        le32 $start
        le32 $ESP_SECTORS
        printf '\000\376\377\377\203\376\377\377'
        le32 $root_start
        le32 $((sectors - root_start))
    } | dd of=$disk bs=1 seek=446 conv=notrunc 2>/dev/null || fail "cannot write the partition table"
else
    root=${disk}1
    dd if=/payload/grub/boot.img of=$disk bs=440 count=1 conv=notrunc 2>/dev/null ||
        fail "cannot write the MBR"
    {
        printf '\200\376\377\377\203\376\377\377'
        le32 $start
        le32 $((sectors - start))
    } | dd of=$disk bs=1 seek=446 conv=notrunc 2>/dev/null || fail "cannot write the partition table"
    dd if=/payload/grub/core.img of=$disk bs=512 seek=1 conv=notrunc 2>/dev/null ||
        fail "cannot write GRUB's core image"
fi
printf 'VIRE' | dd of=$disk bs=1 seek=440 conv=notrunc 2>/dev/null || fail "cannot write the disk signature"
printf '\125\252' | dd of=$disk bs=1 seek=510 conv=notrunc 2>/dev/null || fail "cannot sign the MBR"
sync
blockdev --rereadpt $disk || fail "the kernel does not see the new partition table"
tries=0
while [ ! -b $root ] && [ $tries -lt 100 ]; do sleep 0.05; tries=$((tries + 1)); done
[ -b $root ] || fail "no partition $root"
echo "vireo-installer: partitioned"

if [ -n "$efi" ]; then
    dd if=/payload/grub/esp.img of=${disk}1 bs=1M 2>/dev/null || fail "cannot write the EFI system partition"
fi
mke2fs -L vireo-root $root >/dev/null || fail "mke2fs $root"
mkdir -p /target
mount -t ext2 $root /target || fail "cannot mount $root"
cp -a /payload/root/. /target/ || fail "cannot copy the root file system"
cp /payload/vmlinuz /target/boot/vmlinuz
cp /payload/initrd.img /target/boot/initrd.img
if [ -n "$efi" ]; then
    mkdir -p /target/boot/grub/x86_64-efi
    cp /payload/grub/grub-efi.cfg /target/boot/grub/grub.cfg
    cp /payload/grub/x86_64-efi/* /target/boot/grub/x86_64-efi/ || fail "cannot copy GRUB's modules"
else
    mkdir -p /target/boot/grub/i386-pc
    cp /payload/grub/grub.cfg /target/boot/grub/grub.cfg
    cp /payload/grub/i386-pc/* /target/boot/grub/i386-pc/ || fail "cannot copy GRUB's modules"
fi
sync
umount /target || fail "cannot unmount $root"
if [ -n "$efi" ]; then
    # The NVRAM boot entry, first in BootOrder (efibootmgr -c does both).
    /efi/efibootmgr -q -c -d $disk -p 1 -L vireo -l '\EFI\vireo\grubx64.efi' ||
        fail "efibootmgr could not add the boot entry"
    /efi/efibootmgr | grep -q ' vireo' || fail "the boot entry is not in the NVRAM"
    echo "vireo-installer: boot entry added"
fi
echo "vireo-installer: done"
poweroff -f
INIT
    sed -i "s/@ESP_SECTORS@/$ESP_SECTORS/" "$1"
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
    install_efibootmgr "$dir/efi"
    cp -a "$payload" "$dir/payload"
    (cd "$dir" && find . -mindepth 1 | LC_ALL=C sort |
        cpio --quiet -o -H newc -R 0:0) | gzip -1 >"$out"
}

# Debian's efibootmgr with the libraries it links (from this host's packages)
# in DIR; DIR/efibootmgr runs it through the dynamic loader.
install_efibootmgr() {
    local dir=$1 bin lib loader
    bin=$(command -v efibootmgr)
    mkdir -p "$dir/lib"
    cp "$bin" "$dir/efibootmgr.bin"
    loader=$(ldd "$bin" | awk '/ld-linux/ { print $1 }')
    [[ -f $loader ]] || die "cannot find the dynamic loader of $bin"
    cp -L "$loader" "$dir/lib/ld.so"
    for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }'); do
        cp -L "$lib" "$dir/lib/"
    done
    cat >"$dir/efibootmgr" <<'WRAP'
#!/bin/sh
exec /efi/lib/ld.so --library-path /efi/lib /efi/efibootmgr.bin "$@"
WRAP
    chmod 755 "$dir/efibootmgr" "$dir/efibootmgr.bin" "$dir/lib/ld.so"
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
    local cfg root
    for cfg in grub.cfg grub-efi.cfg; do
        root=vda1
        [[ $cfg == grub-efi.cfg ]] && root=vda2
        cat >"$out/$cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
menuentry "vireo installed system" {
    linux /boot/vmlinuz root=/dev/$root rootfstype=ext2 rw $KCMDLINE
    initrd /boot/initrd.img
}
EOF
    done
    build_grub_efi_payload "$out"
}

# UEFI: GRUB for x86_64-efi finds the root partition by its label and reads
# its modules and grub.cfg from there; the EFI system partition is a FAT
# image holding that GRUB at the vendor path and the removable-media path.
build_grub_efi_payload() {
    local out=$1
    mkdir -p "$out/x86_64-efi"
    cat >"$WORK/grub-efi-early.cfg" <<'EOF'
search --no-floppy --label vireo-root --set=root
set prefix=($root)/boot/grub
EOF
    # shellcheck disable=SC2086  # EFI_CORE_MODULES is a word list
    grub-mkimage -O x86_64-efi -o "$WORK/grubx64.efi" -c "$WORK/grub-efi-early.cfg" \
        -p /boot/grub $EFI_CORE_MODULES
    cp "$GRUB_EFI_DIR"/*.mod "$GRUB_EFI_DIR"/*.lst "$out/x86_64-efi/"
    truncate -s $((ESP_SECTORS * 512)) "$out/esp.img"
    mkfs.vfat -n VIREO-ESP "$out/esp.img" >/dev/null
    mmd -i "$out/esp.img" ::/EFI ::/EFI/BOOT ::/EFI/vireo
    mcopy -i "$out/esp.img" "$WORK/grubx64.efi" ::/EFI/vireo/grubx64.efi
    mcopy -i "$out/esp.img" "$WORK/grubx64.efi" ::/EFI/BOOT/BOOTX64.EFI
}

# Whether OUTDIR holds an ISO built by this version of the script.
is_current() {
    [[ -f $1/installer.iso && $(cat "$1/installer.version" 2>/dev/null) == "$ISO_VERSION" ]]
}

iso_main() {
    (($# == 1)) || { echo "usage: $0 OUTDIR" >&2; exit 2; }
    local outdir
    outdir=$(realpath -m "$1") # the module paths below are absolute
    is_current "$outdir" && exit 0
    require_tools
    require_iso_tools
    mkdir -p "$outdir"
    exec 9>"$outdir/.installer.lock"
    flock 9
    is_current "$outdir" && exit 0
    rm -f "$outdir/installer.iso" "$outdir/installer.version"

    WORK=$(mktemp -d "$outdir/.installer.build.XXXXXX")
    trap cleanup EXIT
    trap 'log "error: command failed at line $LINENO: $BASH_COMMAND"' ERR
    local debs=${VIREO_GUEST_CACHE:-$WORK/debs} kroot="$WORK/kernel" bbroot="$WORK/busybox"
    mkdir -p "$debs"
    local kpkg kdeb bbdeb kver busybox="$bbroot/bin/busybox"
    kpkg=$(kernel_package)
    prefetch_debs "$debs" "$kpkg" busybox-static
    kdeb=$(download_deb "$kpkg" "$debs")
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
    # Without -d grub-mkrescue makes every installed platform bootable: BIOS
    # (i386-pc, El Torito) and UEFI (x86_64-efi, an EFI system partition image).
    grub-mkrescue -o "$WORK/installer.iso" "$iso" -- -volid VIREO_INSTALLER \
        >"$WORK/mkrescue.log" 2>&1 || { cat "$WORK/mkrescue.log" >&2; die "grub-mkrescue failed"; }
    mv "$WORK/installer.iso" "$outdir/installer.iso"
    echo "$ISO_VERSION" >"$outdir/installer.version"
    log "installer ISO ready: $outdir/installer.iso"
}

iso_main "$@"
