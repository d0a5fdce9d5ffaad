/* vm-import.h: what an imported VM description (an OVF descriptor from an
 * OVA, or a libvirt domain XML) says a VM has, parsed with libxml2 into one
 * plain "plan" the daemon turns into volumes and a VM. Pure: no I/O here;
 * the input is untrusted, so every count and size is bounded. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on untrusted descriptors. */
#define VO_IMPORT_MAX_XML_BYTES (1024 * 1024)
#define VO_IMPORT_MAX_DISKS 16
#define VO_IMPORT_MAX_NICS 8
#define VO_IMPORT_MAX_VCPUS 256
#define VO_IMPORT_MAX_MEMORY_MIB (4ULL * 1024 * 1024) /* 4 TiB */
#define VO_IMPORT_MAX_DISK_BYTES (64ULL << 40)        /* 64 TiB */
#define VO_IMPORT_MAX_FILES 64

typedef struct {
    char *file;       /* OVF: the OVA member (References/File href); libvirt: the source path */
    char *format;     /* "vmdk", "qcow2", "raw", ... (NULL: probe) */
    uint64_t capacity_bytes; /* 0: unknown (the image's own size) */
    bool cdrom;
    bool readonly;
} VoImportDisk;

typedef struct {
    char *network;    /* the source's network or bridge name (NULL: none named) */
    char *mac;        /* NULL: a new one */
} VoImportNic;

typedef struct {
    char *name;
    char *os_type;    /* informational (OVF OperatingSystemSection, libvirt os type) */
    char *machine;    /* "q35" or "pc" family as given; informational */
    unsigned vcpus;
    uint64_t memory_mib;
    bool uefi;        /* firmware stated as EFI/UEFI */
    bool display;     /* a graphical console was stated (vnc/spice/video) */
    bool has_cdrom;   /* a CD-ROM drive (empty, or a disk with cdrom set) */
    VoImportDisk *disks;
    size_t n_disks;
    VoImportNic *nics;
    size_t n_nics;
    char **warnings;  /* what could not be mapped (strv, NULL: nothing) */
} VoImportPlan;

VoImportPlan *vo_import_plan_free(VoImportPlan *p);
static inline void vo_import_plan_freep(VoImportPlan **p) { vo_import_plan_free(*p); }
#define _cleanup_import_plan_ __attribute__((cleanup(vo_import_plan_freep)))

/* An OVF descriptor (the .ovf of an OVA). 0 with *ret, or -EINVAL with
 * *ret_error saying what is wrong. Disks name their OVA member in file, a
 * plain file name (no '/', not "." or ".."). */
int vo_ovf_parse(const char *xml, size_t len, VoImportPlan **ret, char **ret_error);

/* A libvirt domain XML (virsh dumpxml). Disks name their source file in
 * file (absolute path); block devices, network disks and the like are
 * listed in warnings. */
int vo_libvirt_xml_parse(const char *xml, size_t len, VoImportPlan **ret, char **ret_error);

/* An OVA manifest (.mf): lines "SHA256(NAME)= HEX" or "SHA1(NAME)= HEX".
 * Returns 0 with *ret_names, *ret_algos ("SHA1"/"SHA256") and *ret_digests
 * (lower-case hex) as parallel strv, or -EINVAL naming the bad line. */
int vo_ova_manifest_parse(const char *text, size_t len, char ***ret_names, char ***ret_algos,
                          char ***ret_digests, char **ret_error);

/* A name usable as an OVA member we extract: a plain file name. */
bool vo_import_file_name_valid(const char *name);
