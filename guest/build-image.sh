#!/usr/bin/env bash
# build-image.sh - build vireo's default QEMU guest image from Debian packages.
#
# Usage: guest/build-image.sh OUTDIR
#
# Produces, in OUTDIR:
#   vmlinux     the uncompressed ELF kernel (QEMU boots it directly via PVH)
#   initrd.img  a small busybox initramfs (uncompressed newc cpio) that
#               loads the virtio/ext4 modules and switches to the root disk
#   disk.raw    a 64 MiB ext4 root filesystem: busybox, /sbin/init, DHCP,
#               an ACPI power-button watcher, a shell on the serial console
#               and QEMU's guest agent (qemu-ga, on the virtio-serial port
#               org.qemu.guest_agent.0; vireo.agent=off on the kernel
#               command line leaves it off)
#   image.json  the image description read by the vireo daemon; its
#               "script" is a SHA-256 of this file
#
# If OUTDIR/image.json already exists and was written by this very script
# (same "script" hash) nothing is done; an image built by an older script is
# rebuilt. The image is built in a temporary directory next to OUTDIR and
# renamed into place at the end, so a half-built image never appears. No
# mounts or loop devices are used.
#
# Environment:
#   VIREO_GUEST_CACHE        keep downloaded .debs in this directory
#   VIREO_GUEST_KERNEL_PKG   kernel package to use (default: the one that the
#                            apt candidate of linux-image-amd64 depends on)
#   VIREO_GUEST_DISK_SIZE    root filesystem size (default: 64M)
#
# Needs: apt-get, dpkg, kmod (depmod/modprobe), e2fsprogs (mke2fs -d), cpio,
# xz-utils, util-linux (flock), coreutils.

set -Eeuo pipefail

readonly IMAGE_NAME=default
# cryptomgr.notests skips the crypto self-tests (~0.5 s of boot under TCG).
# Hot-added memory (virtio-mem) is onlined by the kernel itself; auto-movable
# puts it in ZONE_MOVABLE while that stays safe, so it can be unplugged again.
# BOOT_COST: work a TCG boot can skip (docs/benchmarks.md, "Boot CPU of the
# default guest"): no_timer_check skips the IO-APIC timer test, which fails
# when the host is busy ("IO-APIC + timer doesn't work!": a panic, and
# panic=-1 boots the kernel again); init_on_alloc=0 stops zeroing every
# allocated page; rodata=off skips write-protecting the kernel and the W+X
# page table walk; mitigations=off drops the speculation workarounds
# (retpolines, RSB filling); 8250.nr_uarts=1 probes ttyS0 only; i8042.noaux
# skips the PS/2 mouse (the keyboard stays, for ctrl-alt-del).
readonly BOOT_COST="no_timer_check init_on_alloc=0 rodata=off mitigations=off 8250.nr_uarts=1 i8042.noaux"
# IDLE_COST: what an idle guest costs its host under TCG (docs/benchmarks.md,
# "Idle CPU of the default guest"): hpet=disable leaves the HPET alone (the
# kernel otherwise makes it its tick-broadcast device, and QEMU's main loop
# then wakes for its timer and interrupts: about a third of an idle guest's
# CPU); the clocksource stays the TSC, the ticks the local APIC's.
readonly IDLE_COST="hpet=disable"
readonly CMDLINE="console=ttyS0 root=/dev/vda rw quiet panic=-1 cryptomgr.notests memhp_default_state=online memory_hotplug.online_policy=auto-movable $BOOT_COST $IDLE_COST"
readonly DISK_SIZE=${VIREO_GUEST_DISK_SIZE:-64M}
# Modules the guest needs, beyond what the Debian kernel has built in; their
# dependencies (and soft dependencies, e.g. crc32c for ext4) are added.
# virtio_mem and virtio_balloon let vireo grow and shrink the memory of a
# running VM.
# (A script that sources this file may set GUEST_MODULES first.)
# virtio_console carries the guest agent's virtio-serial port.
GUEST_MODULES=${GUEST_MODULES:-"virtio_pci virtio_blk virtio_net ext4 button evdev virtio_mem virtio_balloon virtio_console"}
# QEMU's guest agent and the packages its libraries come from (only the
# shared libraries qemu-ga needs, by its ELF NEEDED entries, are copied).
readonly AGENT_PACKAGES="qemu-guest-agent libc6 libgcc-s1 libglib2.0-0 libffi8 libpcre2-8-0 libmount1 libblkid1 libselinux1 zlib1g libnuma1 libudev1 liburing2"
readonly AGENT_PORT=org.qemu.guest_agent.0
# crc32c-intel (a soft dependency of ext4) cannot load on QEMU's default CPU
# (no SSE4.2) and costs ~0.1 s trying; crc32c_generic does the job.
readonly SKIP_MODULES="crc32c_intel"

log() { echo "build-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

require_tools() {
    local tool missing=()
    for tool in apt-get apt-cache dpkg depmod modprobe mke2fs cpio xz od flock truncate readelf objcopy sha256sum; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    ((${#missing[@]} == 0)) ||
        die "missing tools: ${missing[*]} (apt-get install kmod e2fsprogs cpio xz-utils util-linux binutils)"
}

# --- Debian packages ------------------------------------------------------

# Candidate versions, filled by prefetch_debs. Each apt call loads the whole
# package cache (about 1 CPU-second, and several seconds of a loaded
# machine's wall), so the image's 16 packages are resolved in one
# apt-cache call and fetched in one apt-get call, not two calls each.
declare -A CANDIDATE=()

candidate_version() {
    if [[ -n ${CANDIDATE[$1]:-} ]]; then
        echo "${CANDIDATE[$1]}"
        return
    fi
    apt-cache policy "$1" | awk '$1 == "Candidate:" { print $2 }'
}

# apt-get's options: as root apt would warn about, and then skip, its _apt
# sandbox.
apt_get_opts() {
    echo -q
    ((EUID == 0)) && echo "-o APT::Sandbox::User=root"
    return 0
}

# prefetch_debs DIR PKG...: the candidate of each package (one apt-cache
# call) and, in one apt-get call, the .debs of them DIR does not hold yet.
# Run in the script's own shell (not $(...)): it fills CANDIDATE.
prefetch_debs() {
    local dir=$1 pkg version
    shift
    while read -r pkg version; do
        CANDIDATE[$pkg]=$version
    done < <(apt-cache policy "$@" |
        awk '/^[^ ]/ { pkg = $1; sub(/:$/, "", pkg) } $1 == "Candidate:" { print pkg, $2 }')
    local -a want=()
    for pkg; do
        version=${CANDIDATE[$pkg]:-}
        [[ -n $version && $version != "(none)" ]] || die "package $pkg not found (run apt-get update?)"
        compgen -G "$dir/${pkg}_${version//:/%3a}_*.deb" >/dev/null || want+=("$pkg=$version")
    done
    ((${#want[@]})) || return 0
    log "downloading ${#want[@]} packages: ${want[*]}"
    # shellcheck disable=SC2046 # the options are words
    (cd "$dir" && apt-get $(apt_get_opts) download "${want[@]}" >/dev/null) ||
        die "apt-get download ${want[*]} failed"
}

# The versioned kernel package (linux-image-6.1.0-NN-amd64) behind the
# candidate of the linux-image-amd64 meta package.
kernel_package() {
    if [[ -n ${VIREO_GUEST_KERNEL_PKG:-} ]]; then
        echo "$VIREO_GUEST_KERNEL_PKG"
        return
    fi
    local version pkg
    version=$(candidate_version linux-image-amd64)
    [[ -n $version && $version != "(none)" ]] ||
        die "no candidate for linux-image-amd64 (run apt-get update?)"
    pkg=$(apt-cache depends "linux-image-amd64=$version" |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
    [[ -n $pkg ]] || die "cannot resolve the kernel package of linux-image-amd64 $version"
    echo "$pkg"
}

# Download the candidate .deb of package $1 into directory $2 unless it is
# already there; print the path of the .deb.
download_deb() {
    local pkg=$1 dir=$2 version deb
    version=$(candidate_version "$pkg")
    [[ -n $version && $version != "(none)" ]] || die "package $pkg not found (run apt-get update?)"
    # apt-get download names files pkg_version_arch.deb, with ':' as %3a.
    local pattern="${pkg}_${version//:/%3a}_*.deb"
    deb=$(compgen -G "$dir/$pattern" | head -n 1 || true)
    if [[ -z $deb ]]; then
        log "downloading $pkg $version"
        # shellcheck disable=SC2046 # the options are words
        (cd "$dir" && apt-get $(apt_get_opts) download "$pkg=$version" >/dev/null) ||
            die "apt-get download $pkg=$version failed"
        deb=$(compgen -G "$dir/$pattern" | head -n 1 || true)
        [[ -n $deb ]] || die "downloaded $pkg but cannot find $dir/$pattern"
    fi
    echo "$deb"
}

# --- kernel ---------------------------------------------------------------

# Little-endian unsigned integer of $3 bytes at offset $2 of file $1.
read_le() {
    od -An -tu"$3" -j "$2" -N "$3" --endian=little "$1" | tr -d ' '
}

# Copy $3 bytes at offset $2 of file $1 to stdout.
read_bytes() {
    dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none
}

# Extract the ELF vmlinux from bzImage $1 into $2, using the payload location
# from the boot protocol header (setup_sects, payload_offset, payload_length).
extract_vmlinux() {
    local bzimage=$1 out=$2
    [[ $(od -An -c -j 514 -N 4 "$bzimage" | tr -d ' ') == HdrS ]] ||
        die "$bzimage is not a bzImage"
    local setup_sects payload_offset payload_length start magic
    setup_sects=$(read_le "$bzimage" 497 1)
    ((setup_sects == 0)) && setup_sects=4
    payload_offset=$(read_le "$bzimage" 584 4)
    payload_length=$(read_le "$bzimage" 588 4)
    start=$(((setup_sects + 1) * 512 + payload_offset))
    magic=$(od -An -tx1 -j "$start" -N 6 "$bzimage" | tr -d ' ')

    # xz and zstd payloads end with a 4-byte size that is not part of the
    # stream; gzip payloads do not.
    case $magic in
    fd377a585a00)
        read_bytes "$bzimage" "$start" "$((payload_length - 4))" | xz -dc --single-stream >"$out"
        ;;
    1f8b*)
        read_bytes "$bzimage" "$start" "$payload_length" | gzip -dc >"$out"
        ;;
    28b52ffd*)
        command -v zstd >/dev/null || die "kernel is zstd-compressed: apt-get install zstd"
        read_bytes "$bzimage" "$start" "$((payload_length - 4))" | zstd -dcq >"$out"
        ;;
    *) die "unsupported kernel compression (payload magic $magic); only xz, gzip and zstd are handled" ;;
    esac
    [[ $(od -An -tx1 -N 4 "$out" | tr -d ' ') == 7f454c46 ]] ||
        die "decompressed kernel is not an ELF file"
}

# --- initramfs ------------------------------------------------------------

# Print, in load order, the module files (relative to the module tree) that
# GUEST_MODULES need, dependencies and soft dependencies included, less
# SKIP_MODULES.
module_load_order() {
    local root=$1 kver=$2 moddir="$1/lib/modules/$2"
    # shellcheck disable=SC2086  # GUEST_MODULES is a word list
    modprobe -d "$root" -S "$kver" --show-depends -a $GUEST_MODULES |
        awk -v skip=" $SKIP_MODULES " '
            $1 != "insmod" || seen[$2]++ { next }
            {
                name = $2
                sub(/.*\//, "", name)
                sub(/\.ko(\.[a-z]+)?$/, "", name)
                gsub(/-/, "_", name)
            }
            index(skip, " " name " ") == 0 { print $2 }' |
        sed "s|^$moddir/||"
}

# Remove the signature appended to module $1: the kernel then skips the
# signature check (slow under TCG) and only sets a taint flag.
strip_module_signature() {
    local ko=$1 size siglen
    [[ $(tail -c 28 "$ko" | tr -d '\0') == "~Module signature appended~" ]] || return 0
    size=$(stat -c %s "$ko")
    # The 28-byte marker follows a 12-byte struct module_signature whose last
    # field is the big-endian signature length (its other lengths are 0 for
    # PKCS#7 signatures).
    siglen=$(od -An -tu4 --endian=big -j "$((size - 32))" -N 4 "$ko" | tr -d ' ')
    truncate -s "$((size - 40 - siglen))" "$ko"
}

# Remove the BTF type information of module $1: the kernel verifies a
# module's BTF when it loads it (ext4's is ~140 KB: ~0.1 CPU-s per boot
# under TCG, within the noise of a busy host),
# and only BPF programs that trace the module's own functions need it.
strip_module_btf() {
    objcopy --remove-section=.BTF "$1"
}

# copy_modules MODDIR DEST LIST: copy the modules listed in LIST (paths
# relative to MODDIR) to the same paths under DEST as plain .ko files (busybox
# modprobe cannot load compressed ones), without their signatures.
copy_modules() {
    local moddir=$1 dest=$2 list=$3 mod out
    while read -r mod; do
        out="$dest/${mod%.ko*}.ko"
        mkdir -p "$(dirname "$out")"
        case $mod in
        *.ko) cp "$moddir/$mod" "$out" ;;
        *.ko.xz) xz -dc "$moddir/$mod" >"$out" ;;
        *.ko.zst) zstd -dcq "$moddir/$mod" >"$out" ;;
        *) die "unexpected module file $mod" ;;
        esac
        strip_module_signature "$out"
        strip_module_btf "$out"
    done <"$list"
}

# install_busybox BUSYBOX ROOT [APPLET...]: install a static busybox at
# ROOT/bin/busybox with links for the given applets (default: all of them).
install_busybox() {
    local busybox=$1 root=$2 applet
    shift 2
    mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin"
    cp "$busybox" "$root/bin/busybox"
    "$busybox" --list-full | while read -r applet; do
        [[ $applet == bin/busybox || $applet == linuxrc || -e $root/$applet ]] && continue
        if (($# == 0)) || [[ " $* " == *" ${applet##*/} "* ]]; then
            ln -s /bin/busybox "$root/$applet"
        fi
    done
}

# Under TCG every exec costs ~15 ms, so the init scripts below use shell
# builtins wherever they can.
write_initrd_init() {
    cat >"$1" <<'INIT'
#!/bin/sh
# vireo guest initramfs: load the drivers needed to reach the root disk,
# mount it and switch to it.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc

rescue() {
    echo "vireo-initrd: ERROR: $*"
    [ -n "$modprobe_errors" ] && echo "vireo-initrd: modprobe: $modprobe_errors"
    echo "vireo-initrd: dropping to a shell"
    busybox --install -s
    while :; do setsid cttyhack sh; sleep 1; done
}

# /etc/modules lists the modules in load order, dependencies first. There is
# deliberately no /sbin/modprobe: the kernel's own module requests during
# boot (crypto algorithms, all built in) then fail at once instead of each
# running a modprobe.
modules=
while read -r mod; do modules="$modules $mod"; done </etc/modules
modprobe_errors=$(busybox modprobe -a $modules 2>&1)

root=/dev/vda fstype=ext4 mode=rw
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case $arg in
    root=*) root=${arg#root=} ;;
    rootfstype=*) fstype=${arg#rootfstype=} ;;
    ro | rw) mode=$arg ;;
    esac
done

# Wait at most 5 seconds for the root disk.
tries=0
while [ ! -b "$root" ] && [ $tries -lt 100 ]; do
    sleep 0.05
    tries=$((tries + 1))
done
[ -b "$root" ] || rescue "root disk $root did not appear (is a virtio-blk disk attached?)"

mount -t "$fstype" -o "$mode" "$root" /newroot || rescue "cannot mount $root ($fstype)"
[ -x /newroot/sbin/init ] || rescue "$root has no /sbin/init"

mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
exec switch_root /newroot /sbin/init
INIT
    chmod 755 "$1"
}

# build_initrd KERNEL_ROOT KVER BUSYBOX OUT
build_initrd() {
    local kroot=$1 kver=$2 busybox=$3 out=$4 dir
    local kmods="$kroot/lib/modules/$kver"
    dir=$(mktemp -d "$WORK/initrd.XXXXXX")
    local imods="$dir/lib/modules/$kver"
    mkdir -p "$dir"/{dev,proc,newroot,etc} "$imods"
    install_busybox "$busybox" "$dir" sh mount sleep switch_root setsid cttyhack

    depmod -b "$kroot" "$kver"
    module_load_order "$kroot" "$kver" >"$WORK/modules.list"
    [[ -s $WORK/modules.list ]] || die "no modules resolved"
    copy_modules "$kmods" "$imods" "$WORK/modules.list"
    sed 's/\.ko.*$/.ko/' "$WORK/modules.list" >"$imods/modules.order"
    cp "$kmods/modules.builtin" "$kmods/modules.builtin.modinfo" "$imods/"
    depmod -b "$dir" "$kver"
    sed 's|.*/||; s/\.ko.*$//' "$WORK/modules.list" >"$dir/etc/modules"
    log "initrd modules: $(tr '\n' ' ' <"$dir/etc/modules")"

    write_initrd_init "$dir/init"
    # Uncompressed: the kernel unpacks it ~0.3 s faster than a gzipped one.
    (cd "$dir" && find . -mindepth 1 | LC_ALL=C sort |
        cpio --quiet -o -H newc -R 0:0) >"$out"
}

# --- root disk ------------------------------------------------------------

write_guest_init() {
    cat >"$1" <<'INIT'
#!/bin/sh
# vireo guest init: set up the system, watch the ACPI power button, print the
# boot marker on the serial console, then hand PID 1 over to busybox init,
# which keeps a shell on the console (see /etc/inittab), reaps orphans and
# handles poweroff/reboot. PID 1 must never exit.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

# The initramfs hands over /dev and /proc; /etc/fstab has the rest
# (/dev/pts and /dev/shm live on the devtmpfs, so their mount points are
# made here).
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
[ -d /dev/pts ] || mkdir /dev/pts
[ -d /dev/shm ] || mkdir /dev/shm
mount -a

# Hostname: vireo.hostname=NAME on the kernel command line.
host=vireo-guest
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case $arg in vireo.hostname=?*) host=${arg#vireo.hostname=} ;; esac
done
echo "$host" >/proc/sys/kernel/hostname
# (fails quietly when the root is mounted "ro")
{ printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n' "$host" >/etc/hosts; } 2>/dev/null

# Network: DHCP on eth0, in the background so that boot never waits for it.
(
    ip link set lo up
    if [ -e /sys/class/net/eth0 ]; then
        ip link set eth0 up
        # -b: keep trying in the background if no lease comes at once, and renew.
        udhcpc -i eth0 -b -t 5 -T 1 -A 2 -x "hostname:$host" -s /etc/udhcpc.script
    fi
) </dev/null >/run/udhcpc.log 2>&1 &

power_off() {
    echo "vireo-guest: power button pressed, powering off" >/dev/ttyS0
    sync
    mount -o remount,ro /
    poweroff -f
}

# Power button (QMP system_powerdown): its event device is opened here,
# before the boot marker, so that no press after the marker is missed (one
# before it is lost); a background reader powers off on the first event
# (24 bytes: one struct input_event).
for name in /sys/class/input/*/name; do
    read -r device <"$name" || continue
    [ "$device" = "Power Button" ] || continue
    for event in "${name%/name}"/event*; do
        event=/dev/input/${event##*/}
        [ -c "$event" ] || continue
        exec 3<"$event"
        (dd bs=24 count=1 <&3 >/dev/null 2>&1 && power_off) &
        exec 3<&-
    done
done

# Hot-plugged vCPUs arrive offline (the kernel leaves onlining them to user
# space): a netlink uevent listener brings each one online as it appears.
uevent /sbin/vireo-hotplug </dev/null >/dev/null 2>&1 &

# QEMU's guest agent, in the background (boot never waits for it); not with
# vireo.agent=off on the kernel command line, nor where there is none.
agent=on
for arg in $cmdline; do
    case $arg in vireo.agent=*) agent=${arg#vireo.agent=} ;; esac
done
if [ "$agent" != off ] && [ -x /sbin/vireo-agent ]; then
    /sbin/vireo-agent </dev/null >/run/qemu-ga.log 2>&1 &
fi

read -r uptime _ </proc/uptime
echo "vireo-guest: booted uptime=$uptime" >/dev/ttyS0

exec /bin/busybox init
INIT
    chmod 755 "$1"
}

write_agent_script() {
    cat >"$1" <<'SCRIPT'
#!/bin/sh
# Starts QEMU's guest agent on its virtio-serial port. Without udev nothing
# makes /dev/virtio-ports/NAME: the port is found by its name in sysfs
# (waiting at most 10 s for it to appear).
port=PORT
tries=0
while [ $tries -lt 200 ]; do
    for name in /sys/class/virtio-ports/*/name; do
        [ -r "$name" ] || continue
        read -r n <"$name" || continue
        [ "$n" = "$port" ] || continue
        dev=${name%/name}
        dev=/dev/${dev##*/}
        mkdir -p /dev/virtio-ports
        ln -sf "$dev" "/dev/virtio-ports/$port"
        exec /usr/sbin/qemu-ga -m virtio-serial -p "/dev/virtio-ports/$port" -t /run
    done
    sleep 0.05
    tries=$((tries + 1))
done
echo "vireo-agent: no virtio-serial port $port: the guest agent is not started"
exit 1
SCRIPT
    sed -i "s/^port=PORT$/port=$AGENT_PORT/" "$1"
    chmod 755 "$1"
}

# qemu-ga powers the guest off through /sbin/shutdown (guest-shutdown):
# busybox has none, so this one powers off (or reboots) as the ACPI
# button does, after qemu-ga got its answer.
write_shutdown_script() {
    cat >"$1" <<'SCRIPT'
#!/bin/sh
# /sbin/shutdown for qemu-ga: -r reboots, -H halts, anything else powers off.
action=poweroff
for arg; do
    case $arg in -r) action=reboot ;; -H) action=halt ;; esac
done
echo "vireo-guest: guest agent shutdown ($action)" >/dev/ttyS0
(
    sleep 0.2
    sync
    mount -o remount,ro /
    $action -f
) </dev/null >/dev/null 2>&1 &
exit 0
SCRIPT
    chmod 755 "$1"
}

# install_agent ROOT DEBDIR: qemu-ga at ROOT/usr/sbin with the shared
# libraries it needs (ELF NEEDED entries, recursively) and the dynamic
# linker, from the .debs of AGENT_PACKAGES.
install_agent() {
    local root=$1 debs=$2 pkg deb tree="$WORK/agent"
    mkdir -p "$tree"
    for pkg in $AGENT_PACKAGES; do
        deb=$(download_deb "$pkg" "$debs")
        dpkg -x "$deb" "$tree"
    done
    [[ -x $tree/usr/sbin/qemu-ga ]] || die "no /usr/sbin/qemu-ga in the qemu-guest-agent package"
    local libdir="lib/x86_64-linux-gnu"
    mkdir -p "$root/usr/sbin" "$root/$libdir" "$root/lib64" "$root/etc/qemu"
    cp "$tree/usr/sbin/qemu-ga" "$root/usr/sbin/qemu-ga"
    local interp
    interp=$(readelf -l "$tree/usr/sbin/qemu-ga" | sed -n 's/.*interpreter: \(.*\)]$/\1/p')
    [[ $interp == /lib64/ld-linux-x86-64.so.2 ]] || die "qemu-ga wants the unexpected interpreter '$interp'"
    local ld
    ld=$(compgen -G "$tree/usr/$libdir/ld-linux-x86-64.so.2" || compgen -G "$tree/$libdir/ld-linux-x86-64.so.2" || true)
    [[ -n $ld ]] || die "no ld-linux-x86-64.so.2 in libc6"
    cp -L "$ld" "$root/$libdir/ld-linux-x86-64.so.2"
    ln -sf "/$libdir/ld-linux-x86-64.so.2" "$root/lib64/ld-linux-x86-64.so.2"
    local -a queue=("$root/usr/sbin/qemu-ga")
    local elf so src
    while ((${#queue[@]})); do
        elf=${queue[0]}
        queue=("${queue[@]:1}")
        for so in $(readelf -d "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
            [[ -e $root/$libdir/$so ]] && continue
            src=$(compgen -G "$tree/usr/$libdir/$so" || compgen -G "$tree/$libdir/$so" || true)
            [[ -n $src ]] || die "qemu-ga needs $so, found in none of: $AGENT_PACKAGES"
            cp -L "$src" "$root/$libdir/$so"
            queue+=("$root/$libdir/$so")
        done
    done
    log "guest agent: qemu-ga $(dpkg-deb -f "$(download_deb qemu-guest-agent "$debs")" Version) with $(find "$root/$libdir" -name '*.so*' | wc -l) libraries"
    # No fsfreeze hook, no blocked commands: the defaults.
    : >"$root/etc/qemu/qemu-ga.conf"
    ln -sfn /run "$root/var/run"
}

write_hotplug_script() {
    cat >"$1" <<'SCRIPT'
#!/bin/sh
# Run by busybox uevent for each kernel uevent: onlines a hot-added vCPU.
[ "$ACTION" = add ] && [ "$SUBSYSTEM" = cpu ] && [ -w "/sys$DEVPATH/online" ] &&
    echo 1 >"/sys$DEVPATH/online"
exit 0
SCRIPT
    chmod 755 "$1"
}

write_udhcpc_script() {
    cat >"$1" <<'SCRIPT'
#!/bin/sh
# udhcpc event script: configure $interface from the DHCP lease.
case $1 in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound | renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" ${broadcast:+broadcast "$broadcast"} dev "$interface"
    for gw in $router; do
        ip route replace default via "$gw" dev "$interface"
        break
    done
    {
        [ -n "$domain" ] && echo "search $domain"
        for ns in $dns; do echo "nameserver $ns"; done
    } >/run/resolv.conf
    ;;
esac
exit 0
SCRIPT
    chmod 755 "$1"
}

write_etc() {
    local etc=$1
    write_udhcpc_script "$etc/udhcpc.script"
    cat >"$etc/fstab" <<'FSTAB'
proc     /proc    proc     nosuid,nodev,noexec                         0 0
sysfs    /sys     sysfs    nosuid,nodev,noexec                         0 0
devpts   /dev/pts devpts   nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 0 0
tmpfs    /tmp     tmpfs    nosuid,nodev,mode=1777                      0 0
tmpfs    /dev/shm tmpfs    nosuid,nodev,mode=1777                      0 0
tmpfs    /run     tmpfs    nosuid,nodev,mode=0755                      0 0
FSTAB
    cat >"$etc/inittab" <<'INITTAB'
# busybox init: a login shell on the console, respawned when it exits.
# poweroff/reboot typed in the guest go through init (about 2 s).
::respawn:/bin/cttyhack /bin/sh -l
::ctrlaltdel:/bin/busybox reboot
::shutdown:/bin/sh -c 'sync; mount -o remount,ro / 2>/dev/null'
INITTAB
    cat >"$etc/profile" <<'PROFILE'
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export HOME=/root
export PS1='# '
cd "$HOME"
PROFILE
    echo "root:x:0:0:root:/root:/bin/sh" >"$etc/passwd"
    echo "root::0:0:99999:7:::" >"$etc/shadow"
    chmod 600 "$etc/shadow"
    printf 'root:x:0:\ntty:x:5:\n' >"$etc/group"
    echo vireo-guest >"$etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\tvireo-guest\n' >"$etc/hosts" # rewritten at boot
    ln -s /run/resolv.conf "$etc/resolv.conf" # written by udhcpc.script
}

# build_disk BUSYBOX DEBDIR OUT
build_disk() {
    local busybox=$1 debs=$2 out=$3 root
    root=$(mktemp -d "$WORK/rootfs.XXXXXX")
    chmod 755 "$root"
    mkdir -p "$root"/{dev,proc,sys,tmp,run,root,etc,mnt,var/log}
    chmod 1777 "$root/tmp"
    chmod 700 "$root/root"
    install_busybox "$busybox" "$root"
    write_hotplug_script "$root/sbin/vireo-hotplug"
    write_agent_script "$root/sbin/vireo-agent"
    write_shutdown_script "$root/sbin/shutdown"
    install_agent "$root" "$debs"
    write_guest_init "$root/sbin/init.new"
    mv -f "$root/sbin/init.new" "$root/sbin/init" # replaces busybox's init link
    write_etc "$root/etc"
    mke2fs -q -t ext4 -L vireo-root -m 0 -d "$root" \
        -E root_owner=0:0,lazy_itable_init=0,lazy_journal_init=0 \
        -F "$out" "$DISK_SIZE" >/dev/null
}

# --- image ----------------------------------------------------------------

write_image_json() {
    local out=$1 kver=$2
    cat >"$out" <<EOF
{"name":"$IMAGE_NAME","disk":"disk.raw","format":"raw","kernel":"vmlinux","initrd":"initrd.img","cmdline":"$CMDLINE","kernel_version":"$kver","guest_agent":true,"script":"$(script_hash)","built_at":"$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
EOF
}

# The SHA-256 of this script: an image whose image.json records another was
# built by an older script and is rebuilt.
script_hash() {
    sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1
}

# Whether OUTDIR ($1) holds an image this script built.
image_current() {
    [[ -f $1/image.json ]] && grep -q "\"script\":\"$(script_hash)\"" "$1/image.json"
}

cleanup() {
    [[ -n ${WORK:-} && -d $WORK ]] && rm -rf "$WORK"
    return 0
}

main() {
    (($# == 1)) || { echo "usage: $0 OUTDIR" >&2; exit 2; }
    local outdir=${1%/}
    image_current "$outdir" && exit 0

    require_tools
    local parent name
    parent=$(dirname "$outdir")
    name=$(basename "$outdir")
    mkdir -p "$parent"

    # One build at a time per OUTDIR; a waiting build finds the cache filled.
    exec 9>"$parent/.$name.lock"
    flock 9
    image_current "$outdir" && exit 0
    [[ -f $outdir/image.json ]] && log "$outdir was built by an older build-image.sh: rebuilding"

    WORK=$(mktemp -d "$parent/.$name.build.XXXXXX")
    trap cleanup EXIT
    trap 'log "error: command failed at line $LINENO: $BASH_COMMAND"' ERR
    local stage="$WORK/image" debs=${VIREO_GUEST_CACHE:-$WORK/debs}
    mkdir -p "$stage" "$debs"

    local kpkg kdeb bbdeb kroot="$WORK/kernel" bbroot="$WORK/busybox"
    kpkg=$(kernel_package)
    # shellcheck disable=SC2086 # a list of package names
    prefetch_debs "$debs" "$kpkg" busybox-static $AGENT_PACKAGES
    kdeb=$(download_deb "$kpkg" "$debs")
    bbdeb=$(download_deb busybox-static "$debs")
    log "extracting $(basename "$kdeb") and $(basename "$bbdeb")"
    dpkg -x "$kdeb" "$kroot"
    dpkg -x "$bbdeb" "$bbroot"

    local kver config busybox="$bbroot/bin/busybox"
    kver=$(basename "$(compgen -G "$kroot/lib/modules/*" | head -n 1 || true)")
    config="$kroot/boot/config-$kver"
    [[ -n $kver && -f $config ]] || die "unexpected layout of $kdeb"
    grep -qx CONFIG_PVH=y "$config" || die "kernel $kver lacks CONFIG_PVH: QEMU cannot boot its vmlinux"
    [[ -x $busybox ]] || die "no busybox in $bbdeb"

    log "kernel $kver: extracting vmlinux"
    extract_vmlinux "$kroot/boot/vmlinuz-$kver" "$stage/vmlinux"
    log "building initrd.img"
    build_initrd "$kroot" "$kver" "$busybox" "$stage/initrd.img"
    log "building disk.raw ($DISK_SIZE)"
    build_disk "$busybox" "$debs" "$stage/disk.raw"
    write_image_json "$stage/image.json" "$kver"

    # An image of an older script is moved aside first, then removed.
    local old=
    if [[ -f $outdir/image.json ]]; then
        old="$WORK/old"
        mv -T "$outdir" "$old"
    fi
    # rename(2) also replaces an empty OUTDIR; a non-empty one is left alone.
    mv -T "$stage" "$outdir" 2>/dev/null ||
        die "cannot rename the image to $outdir (exists without image.json? remove it)"
    log "image ready in $outdir"
}

# Sourced (guest/build-installer-iso.sh reuses the functions): no build.
[[ ${BASH_SOURCE[0]} != "$0" ]] || main "$@"
