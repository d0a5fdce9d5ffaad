/* records.h: the shape of the store documents of images ("images/NAME") and
 * backup records ("backups/ID"), and the start-up reconciliation of backup
 * documents with the records found in backup pools. Pure: no files, no store
 * (the daemon's images.c and backup-records.c do the I/O). See "Key layout"
 * in docs/internals.md. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* ---- images ------------------------------------------------------------ */

/* The document of image name from its image.json (meta: "disk", "format"
 * raw|qcow2 (default raw), "kernel", "initrd", "cmdline", "template_of",
 * "firmware" bios|uefi: what VMs made from it boot by default),
 * the disk's size in bytes and when it was made. The files it names are
 * plain names inside the image directory (never a '/'). Returns 0 and a new
 * reference, or -EINVAL with *ret_error saying what is wrong. */
int vo_image_doc_make(const char *name, json_t *meta, uint64_t size_bytes, int64_t created_ms,
                      json_t **ret, char **ret_error);

/* Reads a document vo_image_doc_make made; the strings point into doc (kernel,
 * initrd, cmdline NULL when absent). name: the image's name as its key says
 * ("images/NAME"), or NULL when there is no key. -EINVAL when doc is not
 * one: a file that is not a plain name, or a "name" that is not a valid
 * image name or not the key's (it would make a directory elsewhere). */
typedef struct {
    const char *name, *disk, *format, *kernel, *initrd, *cmdline;
    const char *firmware; /* the image's preference, or NULL */
    bool cloud_init;      /* its VMs get a cloud-init seed by default */
    uint64_t size_bytes;
} VoImageDoc;
int vo_image_doc_parse(json_t *doc, const char *name, VoImageDoc *ret);

/* ---- backup records ---------------------------------------------------- */

/* The document of a backup record kept in pool: the record's fields (as in
 * its backup.json) and "pool". New reference. */
json_t *vo_backup_doc_make(json_t *record, const char *pool);

/* Sorts docs (an array of backup documents) as GET /v1/backups lists them:
 * by their pool's place in pools (pools not in it last), then oldest first
 * ("created_ms"), then by id. */
void vo_backup_docs_sort(json_t *docs, char *const *pools);

/* What start-up does with each backup document, given:
 *   docs:  {id: document} in the store,
 *   found: {id: document made from the record found in a pool},
 *   unreadable: the pools whose directory could not be read.
 * Returns a new object {id: "adopt" | "update" | "drop" | "keep"}:
 *   adopt:  found in a pool, no document;
 *   update: found, and its document differs (the pool's file is the truth);
 *   drop:   a document whose record is not in its pool (files gone), when
 *           that pool has other records;
 *   keep:   equal, or its pool is unreadable, or its pool has no record at
 *           all (an empty directory: a share not mounted yet); kept until
 *           the pool can be read. */
json_t *vo_backup_docs_plan(json_t *docs, json_t *found, char *const *unreadable);
