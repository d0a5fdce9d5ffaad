/* ova.h: reading an OVA, a (ustar) tar of an OVF descriptor, its disks, an
 * optional manifest and certificate, without trusting it: members must be
 * plain files with plain names (no '/', "..", links or devices), listed
 * once, within the file's size; only the descriptor, manifest and
 * certificate are read into memory (bounded), disks are copied out in
 * pieces with their SHA-1 and SHA-256. */
#pragma once

#include <stdint.h>
#include <stddef.h>

typedef struct {
    char *name;
    uint64_t offset; /* of its data in the OVA */
    uint64_t size;
} VoOvaMember;

typedef struct {
    int fd;
    VoOvaMember *members;
    size_t n_members;
    char *ovf;        /* the descriptor's text (NUL-terminated) */
    size_t ovf_len;
    char *ovf_name;
    char *manifest;   /* the .mf's text, NULL when the OVA has none */
    size_t manifest_len;
    char *manifest_name;
    char *cert;       /* the .cert's text (ova-verify.h), NULL when unsigned */
    size_t cert_len;
    char *cert_name;
} VoOva;

/* Opens and scans path. 0, or -EINVAL with *ret_error naming the member or
 * header that is refused (-errno when path cannot be read). */
int vo_ova_open(const char *path, VoOva *ret, char **ret_error);
void vo_ova_close(VoOva *ova);
const VoOvaMember *vo_ova_find(const VoOva *ova, const char *name);
/* Copies member m into the new file dest (mode 0600); digests of its data
 * as lower-case hex (41 and 65 bytes with the NUL). */
int vo_ova_extract(const VoOva *ova, const VoOvaMember *m, const char *dest, char sha1[41],
                   char sha256[65], char **ret_error);
/* The digest of member m: of the text it was read into for the descriptor,
 * manifest and certificate (what was parsed is what is checked, even if
 * the file changed since), else by the same reading as vo_ova_extract. */
int vo_ova_digest(const VoOva *ova, const VoOvaMember *m, char sha1[41], char sha256[65],
                  char **ret_error);
