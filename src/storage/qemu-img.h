/* qemu-img.h: the block work vireo hands to qemu-img (info, create, convert
 * with progress, resize, check), and parsing of its JSON. vireo owns naming
 * and safety; qemu-img owns the bytes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The mode of every image file vireo makes (volumes, backups, images):
 * readable by root alone. */
#define VO_IMG_FILE_MODE 0600

typedef struct {
    char *path;
    char *format;          /* "qcow2", "raw", "vmdk", "vdi", "vhdx", ... */
    uint64_t virtual_size;
    uint64_t actual_size;  /* bytes allocated on the host */
} VoImgLayer;

typedef struct {
    VoImgLayer *layers;    /* [0] is the image itself, then its backing files, nearest first */
    size_t n_layers;
} VoImgInfo;

void vo_img_info_clear(VoImgInfo *info);

/* How qemu-img opens the volume path (a file, or an iSCSI LUN's iscsi://
 * string) as format (NULL: probed): pushes onto *argv the options that go
 * before the image's name (a LUN's CHAP secret as --object secret, read by
 * qemu-img from the secret file: never on its command line) and sets
 * *ret_name to the name to put last: a file's path made plain (never read
 * as a protocol or options), or a LUN's "json:" spec of QEMU's iscsi driver
 * (portal, target, LUN, initiator name) under the format's driver. Every
 * qemu-img call on a volume goes through it. 0, or -EINVAL for a bad
 * iscsi:// string. */
int vo_img_open_args(char ***argv, const char *path, const char *format, char **ret_name,
                     char **ret_error);

/* Parses `qemu-img info --output=json --backing-chain` output (a JSON array of
 * objects, or a single object without --backing-chain). -EINVAL on anything
 * unexpected, with *ret_error (may be NULL) saying what. */
int vo_img_info_parse(const char *json_text, VoImgInfo *ret, char **ret_error);

/* Runs qemu-img info on path (with -U so an image open in a running VM can be
 * read) and parses it. format may be NULL (probe). */
int vo_img_info(const char *path, const char *format, VoImgInfo *ret, char **ret_error);

/* Before importing a file from outside: its format, and that it names no
 * other file (backing file, external data file, vmdk extents elsewhere), so an
 * import can never pull a host file into a volume. -EPERM when it does. */
int vo_img_probe_import(const char *path, char **ret_format, char **ret_error);
/* The same check of a file read as format (a stated format, not probed;
 * NULL: probe): a qcow2 stated by an untrusted description must not pull
 * its backing file in either. */
int vo_img_check_import(const char *path, const char *format, char **ret_format,
                        char **ret_error);

/* qemu-img create -f FORMAT [-b BACKING -F BACKING_FMT] PATH [SIZE]; size 0
 * with a backing file means "the backing file's size". */
int vo_img_create(const char *path, const char *format, uint64_t size, const char *backing,
                  const char *backing_format, char **ret_error);

/* qemu-img convert -p -O OUT_FORMAT IN OUT; progress(percent, userdata) is
 * called as qemu-img reports it (parse the "(NN.NN/100%)" updates it prints
 * with -p). in_format may be NULL (probe). */
typedef void (*VoImgProgressFn)(int percent, void *userdata);
int vo_img_convert(const char *in, const char *in_format, const char *out, const char *out_format,
                   VoImgProgressFn progress, void *userdata, char **ret_error);

/* Runs the `qemu-img convert -p ...` argv a caller made (a target of its
 * own, e.g. QEMU's rbd driver) as vo_img_convert runs its own: progress as
 * qemu-img reports it, killed at a cancel of the calling thread's work
 * (-ECANCELED) or after the convert timeout. 0, or -errno with *ret_error
 * qemu-img's error line. */
int vo_img_run_convert(char *const argv[], VoImgProgressFn progress, void *userdata,
                       char **ret_error);

/* qemu-img convert -n: in (as in_format) written over the start of the
 * existing volume out (a file or a LUN: vo_img_open_args) as out_format,
 * which must be at least as large; the rest of out is left as it was. */
int vo_img_convert_onto(const char *in, const char *in_format, const char *out,
                        const char *out_format, char **ret_error);

/* The "json:" source spec of a qcow2 chain given layer by layer, top first:
 * every layer's file and backing named explicitly and the last one's backing
 * null, so that qemu-img follows no backing or format name read from a header.
 * Layers must be absolute paths. NULL if n is 0 or a layer is not absolute. */
char *vo_img_chain_spec(char *const *layers, size_t n);

/* vo_img_convert of the qcow2 chain layers[0] (top) .. layers[n-1] (base),
 * opened through vo_img_chain_spec; rate (bytes/s, 0: none) limits the copy
 * (qemu-img convert -r). */
int vo_img_convert_chain(char *const *layers, size_t n, const char *out, const char *out_format,
                         uint64_t rate, VoImgProgressFn progress, void *userdata,
                         char **ret_error);

/* vo_img_convert_chain written over the existing volume out (a file or an
 * iSCSI LUN, through vo_img_open_args) in place, as out_format (qemu-img
 * convert -n): nothing is made or removed; a failure leaves out partly
 * written. */
int vo_img_convert_chain_onto(char *const *layers, size_t n, const char *out,
                              const char *out_format, uint64_t rate, VoImgProgressFn progress,
                              void *userdata, char **ret_error);

/* qemu-img bitmap --remove of each persistent dirty bitmap of the qcow2
 * volume path (a file or a LUN: vo_img_open_args) whose name
 * starts with prefix (none: nothing done). qemu-img
 * refuses to revert a file that has any bitmap to an internal snapshot. */
int vo_img_bitmaps_remove(const char *path, const char *prefix, char **ret_error);

/* qemu-img resize [--shrink] -f FORMAT PATH SIZE. */
/* qemu-img rebase -u: the qcow2 file path names backing (of
 * backing_format) as its backing file from now on; the data is not
 * touched (the new backing file has the same content: e.g. a copy of a
 * linked clone moved to another host, whose base is there elsewhere). */
int vo_img_rebase_unsafe(const char *path, const char *backing, const char *backing_format,
                         char **ret_error);
int vo_img_resize(const char *path, const char *format, uint64_t size, bool shrink,
                  char **ret_error);

/* Parses one progress update from qemu-img -p output, e.g. "    (45.03/100%)\r":
 * returns the integer percent 0..100 or -1 when the text holds none. */
int vo_img_parse_progress(const char *text);
