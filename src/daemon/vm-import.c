/* vm-import.c: VM import (vm-import.h). The request is checked at once:
 * the OVA's headers and descriptor (or the domain XML) parsed, the manifest
 * read (it must list every member) and the descriptor checked against it,
 * the manifest's signature and signer checked when the OVA has a .cert
 * (ova-verify.h), the disks found, the VM's name free, the pool and
 * networks there. The task then copies each disk out of the OVA (checking
 * its digest; the manifest's other files are digested too), converts it
 * into a qcow2 volume,
 * copies the ISO of its CD-ROM (the first that holds one) into an iso
 * volume for the VM's drive, makes the UEFI NVRAM when the firmware is
 * EFI, and defines the VM; on any
 * failure what it made is removed again. An intent record (sweep.h, owner
 * the VM's document) names each volume before it is made and the scratch
 * directory, so the next start removes them when vireod stopped first. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/names.h"
#include "conf/vm-import.h"
#include "daemon/images.h"
#include "daemon/mac-claims.h"
#include "daemon/migrate-safe.h"
#include "daemon/networks.h"
#include "daemon/storage.h"
#include "daemon/sweep.h"
#include "daemon/vm-import.h"
#include "daemon/vm-internal.h"
#include "jobs/tasks.h"
#include "storage/iso.h"
#include "storage/ova.h"
#include "storage/ova-verify.h"
#include "storage/qemu-img.h"
#include "util/test-hold.h"
#include "util/util.h"

typedef struct {
    VoDaemon *d;
    bool ova;
    bool rbd_pool;            /* the target pool is rbd: it holds no ISO */
    char id[37];              /* the VM's, chosen at once: its intent's owner */
    char *tmp;                /* the scratch directory, NULL: none (yet) */
    char *path, *name, *pool, *kernel_image;
    char *ca;                 /* the CA bundle an OVA's signer is checked against, NULL:
                               * the system's store */
    char *signer;             /* the signer's subject of a signed OVA, NULL: unsigned */
    char **networks;          /* per NIC */
    VoImportPlan *plan;
    char **mf_names, **mf_algos, **mf_digests; /* the manifest, NULL: none */
    ssize_t cdrom_disk;       /* the plan's CD-ROM whose ISO the VM's drive gets, -1: none */
    char *cdrom_volume;       /* its volume ("pool/name") once made */
    const bool *mac_held;     /* the task's: per NIC, its source MAC's claim is ours
                               * (mac-claims.h); NULL: not claimed (the plan) */
    VoMacClaims **claims;     /* the task's, where a new MAC is claimed too; NULL: the plan */
} ImportOp;

static void import_op_free(void *p)
{
    ImportOp *op = p;
    free(op->tmp);
    free(op->path);
    free(op->name);
    free(op->pool);
    free(op->kernel_image);
    free(op->ca);
    free(op->signer);
    free(op->cdrom_volume);
    vo_strv_free(op->networks);
    vo_import_plan_free(op->plan);
    vo_strv_free(op->mf_names);
    vo_strv_free(op->mf_algos);
    vo_strv_free(op->mf_digests);
    free(op);
}

/* The manifest's digests of name (each line naming it) checked against
 * ours; a manifest that does not list a file we use is refused too. */
static int manifest_check(const ImportOp *op, const char *name, const char *sha1,
                          const char *sha256, char **ret_error)
{
    if (!op->mf_names)
        return 0;
    bool found = false;
    for (size_t i = 0; op->mf_names[i]; i++)
        if (!strcmp(op->mf_names[i], name)) {
            const char *ours = !strcmp(op->mf_algos[i], "SHA1") ? sha1 : sha256;
            if (strcmp(ours, op->mf_digests[i]))
                return vo_error_set(ret_error, -EINVAL, "OVA: the %s digest of '%s' is not the "
                                    "one in the manifest (a damaged or altered file)",
                                    op->mf_algos[i], name);
            found = true;
        }
    return found ? 0 : vo_error_set(ret_error, -EINVAL, "OVA: the manifest does not list '%s'",
                                    name);
}

/* Member m's digests against the manifest. */
static int member_check(const ImportOp *op, const VoOva *ova, const VoOvaMember *m,
                        char **ret_error)
{
    char sha1[41], sha256[65];
    int r = vo_ova_digest(ova, m, sha1, sha256, ret_error);
    return r < 0 ? r : manifest_check(op, m->name, sha1, sha256, ret_error);
}

/* ---- checks at once -------------------------------------------------------- */

static bool listed(char *const *names, const char *name)
{
    for (; names && *names; names++)
        if (!strcmp(*names, name))
            return true;
    return false;
}

/* Why CD-ROM k's ISO is not imported (NULL: it is, as the VM's drive's
 * medium); ova: the open OVA, NULL for a domain XML's host file. */
static const char *cdrom_why_not(const ImportOp *op, const VoImportDisk *k, const VoOva *ova)
{
    if (op->cdrom_disk >= 0)
        return "a VM has one CD-ROM drive, which gets another ISO";
    if (op->rbd_pool)
        return "an rbd pool holds no ISO: import into a dir pool (--pool)";
    const VoOvaMember *m = ova ? vo_ova_find(ova, k->file) : NULL;
    if (ova && !m)
        return "the OVA does not hold it";
    int r = !ova ? vo_iso_probe(k->file) : vo_iso_probe_at(ova->fd, m->offset, m->size);
    if (r < 0)
        return "it cannot be read here";
    return r ? NULL : "it is not an ISO 9660 image";
}

/* Picks the CD-ROM whose ISO is imported; the others are warned of. */
static void choose_cdrom(ImportOp *op, const VoOva *ova)
{
    _cleanup_strv_ char **skipped = NULL;
    for (size_t i = 0; i < op->plan->n_disks; i++) {
        const VoImportDisk *k = &op->plan->disks[i];
        const char *why = k->cdrom ? cdrom_why_not(op, k, ova) : "";
        if (!why)
            op->cdrom_disk = (ssize_t)i;
        else if (*why)
            vo_strv_pushf(&skipped, "CD-ROM '%s' is not imported (%s)", k->file, why);
    }
    for (char **w = skipped; w && *w; w++)
        vo_strv_pushf(&op->plan->warnings, "%s%s", *w,
                      op->cdrom_disk < 0 ? ": the VM gets an empty drive" : "");
}

/* The certificate: it signs the manifest (its bytes, before they are read)
 * and its signer is trusted. */
static int check_ova_signature(ImportOp *op, const VoOva *ova, char **ret_error)
{
    VoOvaCert *cert = NULL;
    int r = vo_ova_cert_parse(ova->cert_name, ova->cert, ova->cert_len, &cert, ret_error);
    if (r < 0)
        return r;
    if (strcmp(vo_ova_cert_signed_file(cert), ova->manifest_name))
        r = vo_error_set(ret_error, -EINVAL, "OVA: '%s' signs '%.64s', not the manifest '%s'",
                         ova->cert_name, vo_ova_cert_signed_file(cert), ova->manifest_name);
    else
        r = vo_ova_cert_verify(cert, ova->manifest, ova->manifest_len, op->ca, &op->signer,
                               ret_error);
    vo_ova_cert_free(cert);
    return r;
}

/* The certificate (the manifest's signature, its signer trusted) and the
 * manifest (well-formed, every member listed, the descriptor's digest); an
 * OVA without either is imported with a warning saying what was not
 * checked, unless a CA was given (op->ca): then it must be signed. */
static int check_ova_seals(ImportOp *op, const VoOva *ova, char **ret_error)
{
    /* A CA given asks for a signer it issued: an OVA stripped of its .cert
     * (and manifest) must not pass with a warning only. */
    if (op->ca && !ova->cert)
        return vo_error_set(ret_error, -EINVAL, "OVA: it is not signed (no .cert), but ca "
                            "'%s' asks for a signer it trusts; import it without ca to "
                            "accept it unsigned", op->ca);
    if (!ova->manifest) {
        if (ova->cert)
            return vo_error_set(ret_error, -EINVAL, "OVA: '%s' signs a manifest, but the OVA "
                                "has no manifest (.mf)", ova->cert_name);
        vo_strv_pushf(&op->plan->warnings, "the OVA has no manifest (.mf) and no signature "
                      "(.cert): its files are not checked");
        return 0;
    }
    int r = ova->cert ? check_ova_signature(op, ova, ret_error) : 0;
    if (r < 0)
        return r;
    if (!ova->cert)
        vo_strv_pushf(&op->plan->warnings, "the OVA is not signed (no .cert): its manifest's "
                      "digests are checked, not who made it");
    _cleanup_free_ char *why = NULL;
    r = vo_ova_manifest_parse(ova->manifest, ova->manifest_len, &op->mf_names, &op->mf_algos,
                              &op->mf_digests, &why);
    if (r < 0)
        return vo_error_set(ret_error, r, "OVA: the manifest '%s' is malformed: %s",
                            ova->manifest_name, why);
    if ((r = vo_ova_manifest_covers(ova, op->mf_names, ret_error)) < 0)
        return r;
    return member_check(op, ova, vo_ova_find(ova, ova->ovf_name), ret_error);
}

static int read_plan_ova(ImportOp *op, char **ret_error)
{
    VoOva ova;
    int r = vo_ova_open(op->path, &ova, ret_error);
    if (r < 0)
        return r == -EINVAL || r == -ENOENT || r == -EACCES ? -EINVAL : r;
    r = vo_ovf_parse(ova.ovf, ova.ovf_len, &op->plan, ret_error);
    if (r >= 0)
        r = check_ova_seals(op, &ova, ret_error);
    for (size_t i = 0; r >= 0 && i < op->plan->n_disks; i++) {
        const VoImportDisk *k = &op->plan->disks[i];
        if (k->cdrom) /* its ISO, when absent, is a warning (choose_cdrom) */
            continue;
        if (!vo_ova_find(&ova, k->file))
            r = vo_error_set(ret_error, -EINVAL, "OVA: disk file '%s' named by the descriptor "
                             "is not in the OVA", k->file);
    }
    if (r >= 0)
        choose_cdrom(op, &ova);
    vo_ova_close(&ova);
    return r < 0 ? -EINVAL : 0;
}

static int read_plan_libvirt(ImportOp *op, char **ret_error)
{
    _cleanup_free_ char *xml = NULL;
    size_t len = 0;
    int r = vo_read_file(op->path, VO_IMPORT_MAX_XML_BYTES, &xml, &len);
    if (r < 0)
        return vo_error_set(ret_error, -EINVAL, "cannot read '%s': %s", op->path,
                            r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
    r = vo_libvirt_xml_parse(xml, len, &op->plan, ret_error);
    for (size_t i = 0; r >= 0 && i < op->plan->n_disks; i++) {
        const VoImportDisk *k = &op->plan->disks[i];
        _cleanup_free_ char *format = NULL, *why = NULL;
        if (k->cdrom)
            continue;
        if (access(k->file, R_OK) < 0)
            r = vo_error_set(ret_error, -EINVAL, "disk '%s': cannot read it here: %s", k->file,
                             strerror(errno));
        else if (vo_img_check_import(k->file, k->format, &format, &why) < 0)
            r = vo_error_set(ret_error, -EINVAL, "disk '%s': %s", k->file, why);
    }
    if (r >= 0)
        choose_cdrom(op, NULL);
    return r;
}

/* Each NIC's vireo network: --network for all, else the source's name when
 * vireo has a network of that name, else the default (or user-mode). */
static int map_networks(ImportOp *op, const char *network, char **ret_error)
{
    VoDaemon *d = op->d;
    if (network && strcmp(network, "user") && !vo_network_exists(d, network))
        return vo_error_set(ret_error, -EINVAL, "network '%s' does not exist (see: vireo "
                            "network list)", network);
    const char *fallback = vo_network_exists(d, VO_DEFAULT_NETWORK) ? VO_DEFAULT_NETWORK : "user";
    for (size_t i = 0; i < op->plan->n_nics; i++) {
        const char *src = op->plan->nics[i].network;
        if (network)
            vo_strv_pushf(&op->networks, "%s", network);
        else if (!src)
            vo_strv_pushf(&op->networks, "%s", fallback);
        else if (vo_name_valid(src) && vo_network_exists(d, src))
            vo_strv_pushf(&op->networks, "%s", src);
        else
            return vo_error_set(ret_error, -EINVAL, "NIC %zu is on '%s', which is not a vireo "
                                "network: pass --network NET (\"network\") to put the NICs on "
                                "one (see: vireo network list)", i + 1, src);
    }
    return 0;
}

/* Sets key to a string, or leaves it out when value is NULL. */
static void set_string(json_t *o, const char *key, const char *value)
{
    if (value)
        json_object_set_new(o, key, json_string(value));
}

static bool has_cdrom_drive(const VoImportPlan *p)
{
    bool drive = p->has_cdrom;
    for (size_t i = 0; i < p->n_disks; i++)
        drive |= p->disks[i].cdrom;
    return drive;
}

static json_t *plan_json(const ImportOp *op)
{
    const VoImportPlan *p = op->plan;
    json_t *disks = json_array(), *nics = json_array(), *warnings = json_array();
    for (size_t i = 0; i < p->n_disks; i++) {
        json_t *k = json_pack("{s:s, s:I, s:b}", "file", p->disks[i].file, "capacity_bytes",
                              (json_int_t)p->disks[i].capacity_bytes, "cdrom",
                              p->disks[i].cdrom);
        set_string(k, "format", p->disks[i].format);
        json_array_append_new(disks, k);
    }
    for (size_t i = 0; i < p->n_nics; i++) {
        json_t *n = json_pack("{s:s}", "network", op->networks[i]);
        set_string(n, "source", p->nics[i].network);
        json_array_append_new(nics, n);
    }
    for (char **w = p->warnings; w && *w; w++)
        json_array_append_new(warnings, json_string(*w));
    json_t *o = json_pack("{s:s, s:i, s:I, s:s, s:o, s:o, s:o}", "name", op->name, "vcpus",
                          (int)p->vcpus, "memory_mib", (json_int_t)p->memory_mib, "firmware",
                          p->uefi ? "uefi" : "bios", "disks", disks, "nics", nics, "warnings",
                          warnings);
    set_string(o, "os_type", p->os_type);
    set_string(o, "signed_by", op->signer);
    if (has_cdrom_drive(p)) { /* {}: an empty drive; else its ISO's source, pool, volume */
        json_t *cd = json_object();
        if (op->cdrom_disk >= 0) {
            set_string(cd, "source", p->disks[op->cdrom_disk].file);
            set_string(cd, "pool", op->pool);
        }
        set_string(cd, "volume", op->cdrom_volume);
        json_object_set_new(o, "cdrom", cd);
    }
    return o;
}

/* ---- the task -------------------------------------------------------------- */

/* The intent names keys (the volumes made or about to be) and the scratch
 * directory: the VM's once its document exists, else the next start's. */
static int record_intent(ImportOp *op, char *const *keys, char **ret_error)
{
    int r = vo_intent_vm_volumes(op->d, op->id, op->tmp, keys);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot record the import in the store: %s",
                            strerror(-r));
    return 0;
}

/* A volume made of file: a qcow2 disk, or (iso) the CD-ROM's ISO volume,
 * which becomes op->cdrom_volume. Its key is added to keys. */
static int add_volume(ImportOp *op, VoTask *t, const char *file, const char *stated_format,
                      bool iso, char ***keys, char **ret_error)
{
    VoDaemon *d = op->d;
    _cleanup_free_ char *format = NULL, *path = NULL;
    int r = 0;
    /* Untrusted: an OVA's disk is probed, a domain XML's is read as the
     * format it states (else probed); either is refused when it names
     * another file (a backing file, extents, a data file). An ISO is
     * copied as it is (raw). */
    if (!iso)
        r = vo_img_check_import(file, op->ova ? NULL : stated_format, &format, ret_error);
    if (r >= 0 && !iso && op->ova && stated_format && strcmp(format, stated_format))
        r = vo_error_set(ret_error, -EINVAL, "OVA: disk '%s' is %s, not the %s the "
                         "descriptor states", strrchr(file, '/') + 1, format, stated_format);
    _cleanup_free_ char *volume = r < 0 ? NULL
                                  : vo_volume_free_name_as(d, op->pool, op->name,
                                                           iso ? "cdrom" : "disk");
    if (r >= 0 && !volume)
        r = vo_error_set(ret_error, -ENOSPC, "no free volume name for '%s' in pool '%s'",
                         op->name, op->pool);
    bool listed = r >= 0;
    if (listed) { /* recorded before it is made; taken out again when not made */
        vo_strv_pushf(keys, "%s/%s", op->pool, volume);
        r = record_intent(op, *keys, ret_error);
    }
    if (r >= 0 && iso)
        r = vo_volume_create_iso(d, op->pool, volume, file, t, ret_error);
    else if (r >= 0)
        r = vo_volume_create_from_base(d, op->pool, volume, file, format, NULL, true, 0, t,
                                       &path, ret_error);
    if (r >= 0 && iso)
        op->cdrom_volume = vo_asprintf("%s/%s", op->pool, volume);
    if (r < 0 && listed) { /* not ours (e.g. the name taken meanwhile): never removed */
        size_t n = vo_strv_len(*keys);
        free((*keys)[n - 1]);
        (*keys)[n - 1] = NULL;
        (void)record_intent(op, *keys, NULL);
    }
    return r;
}

/* Whether disks_in copies name out of the OVA (and checks its digest so). */
static bool copied_out(const ImportOp *op, const char *name)
{
    for (size_t i = 0; i < op->plan->n_disks; i++) {
        const VoImportDisk *k = &op->plan->disks[i];
        if ((!k->cdrom || (ssize_t)i == op->cdrom_disk) && !strcmp(k->file, name))
            return true;
    }
    return false;
}

static int disks_in(ImportOp *op, VoTask *t, const char *tmp, char ***keys, char **ret_error)
{
    VoOva ova = { .fd = -1 };
    int r = op->ova ? vo_ova_open(op->path, &ova, ret_error) : 0;
    size_t n = op->plan->n_disks;
    for (size_t i = 0; r >= 0 && i < n; i++) {
        const VoImportDisk *k = &op->plan->disks[i];
        bool iso = (ssize_t)i == op->cdrom_disk;
        if (k->cdrom && !iso)
            continue;
        vo_task_progress(t, (int)(10 + 70 * i / n), "converting the disks");
        if (!op->ova) {
            r = add_volume(op, t, k->file, k->format, iso, keys, ret_error);
            continue;
        }
        _cleanup_free_ char *file = vo_asprintf("%s/%s", tmp, k->file);
        char sha1[41], sha256[65];
        const VoOvaMember *m = vo_ova_find(&ova, k->file);
        r = m ? vo_ova_extract(&ova, m, file, sha1, sha256, ret_error)
              : vo_error_set(ret_error, -EINVAL, "OVA: '%s' is gone", k->file);
        if (r >= 0)
            r = manifest_check(op, k->file, sha1, sha256, ret_error);
        if (r >= 0)
            r = add_volume(op, t, file, k->format, iso, keys, ret_error);
        (void)unlink(file);
        if (r >= 0 && vo_migrate_fault("import-exit-after-disk")) /* test: vireod dies here */
            _exit(70);
    }
    /* The manifest's other files (those not copied out: an NVRAM, an ISO
     * not imported, ...) are checked too: an altered OVA is refused whole. */
    for (size_t i = 0; r >= 0 && op->ova && op->mf_names && i < ova.n_members; i++) {
        const VoOvaMember *m = &ova.members[i];
        if (listed(op->mf_names, m->name) && strcmp(m->name, ova.ovf_name) &&
            !copied_out(op, m->name))
            r = member_check(op, &ova, m, ret_error);
    }
    if (op->ova)
        vo_ova_close(&ova);
    return r;
}

/* The VM of the plan. Each NIC keeps its source's MAC when that is a valid
 * unicast MAC no NIC on this host has, else gets a new one; notes (when
 * not NULL) gets a line per NIC whose MAC is new. */
static VoVmSpec *spec_of(ImportOp *op, char *const *keys, const VoImage *kernel, char ***notes)
{
    const VoImportPlan *p = op->plan;
    VoVmSpec *s = vo_malloc0(sizeof(*s));
    s->id = vo_strdup(op->id);
    s->name = vo_strdup(op->name);
    s->vcpus = s->max_vcpus = p->vcpus;
    s->memory_mib = s->max_memory_mib = p->memory_mib;
    s->accel = VO_ACCEL_AUTO;
    s->machine = vo_strdup("q35");
    s->firmware = p->uefi ? VO_FIRMWARE_UEFI : VO_FIRMWARE_BIOS;
    s->display = p->display ? VO_DISPLAY_VGA : VO_DISPLAY_NONE;
    s->disks = vo_malloc0(sizeof(VoDiskSpec) * (vo_strv_len(keys) + 1));
    for (char *const *k = keys; k && *k; k++)
        if (!op->cdrom_volume || strcmp(*k, op->cdrom_volume)) { /* the ISO is no disk */
            s->disks[s->n_disks] = (VoDiskSpec){ .volume = vo_strdup(*k),
                                                 .format = VO_DISK_QCOW2, .owned = true,
                                                 .slot = (unsigned)s->n_disks };
            s->n_disks++;
        }
    s->has_cdrom = has_cdrom_drive(p);
    s->cdrom = vo_strdup(op->cdrom_volume);
    size_t nn = vo_strv_len(op->networks);
    s->nics = vo_malloc0(sizeof(VoNicSpec) * (nn + 1));
    for (size_t i = 0; i < nn; i++) {
        char mac[18];
        const char *source = i < p->n_nics ? p->nics[i].mac : NULL;
        const char *why = vo_vms_new_nic_mac(op->d, source, s->nics, i, op->claims, op->name,
                                             mac);
        if (!why && source && op->mac_held && !op->mac_held[i]) {
            why = vo_mac_claim_is_a_vms(op->d, source) ? "is in use on another host of the "
                                                          "cluster"
                                                        : "is being given to another VM at "
                                                          "this moment";
            (void)vo_vms_new_nic_mac(op->d, NULL, s->nics, i, op->claims, op->name, mac);
        }
        if (why && notes)
            vo_strv_pushf(notes, "NIC %zu gets a new MAC address%s%s%s%s%s", i + 1,
                          source ? " (" : "", source ? source : "", source ? " " : "", why,
                          source ? ")" : "");
        s->nics[i] = (VoNicSpec){ .mac = vo_strdup(mac), .network = vo_strdup(op->networks[i]),
                                  .slot = (unsigned)i };
    }
    s->n_nics = nn;
    if (kernel) {
        s->kernel_from.image = vo_strdup(kernel->name);
        s->initrd_from.image = kernel->initrd ? vo_strdup(kernel->name) : NULL;
        s->cmdline = vo_strdup(kernel->cmdline);
    }
    return s;
}

/* Claims the MACs the NICs would keep (valid unicast ones of the source):
 * held[i] says whose each is; see mac-claims.h. */
static int claim_macs(ImportOp *op, bool *held, VoMacClaims **ret, char **ret_error)
{
    const VoImportPlan *p = op->plan;
    const char *macs[VO_IMPORT_MAX_NICS] = { NULL };
    size_t n = p->n_nics < VO_IMPORT_MAX_NICS ? p->n_nics : VO_IMPORT_MAX_NICS; /* bounded */
    for (size_t i = 0; i < n; i++)
        if (vo_mac_valid(p->nics[i].mac) && !vo_mac_is_zero(p->nics[i].mac))
            macs[i] = p->nics[i].mac;
    int r = vo_mac_claims_take(op->d, macs, n, op->name, held, ret);
    if (r < 0)
        return vo_error_set(ret_error, r, "cannot claim the NICs' MAC addresses in the store: "
                            "%s", strerror(-r));
    return 0;
}

static int task_import(VoTask *t, void *userdata)
{
    ImportOp *op = userdata;
    VoDaemon *d = op->d;
    _cleanup_free_ char *error = NULL, *nvram = NULL;
    _cleanup_strv_ char **keys = NULL;
    _cleanup_free_ char *top = vo_asprintf("%s/imports", d->state_dir);
    _cleanup_free_ char *tmp = vo_asprintf("%s/.%s-XXXXXX", top, op->name);
    VoImage *kernel = NULL;
    VoMacClaims *claims = NULL;
    bool mac_held[VO_IMPORT_MAX_NICS] = { false };
    _cleanup_strv_ char **mac_notes = NULL;
    int r = vo_mkdir_p(top, 0700);
    if (r >= 0 && !mkdtemp(tmp))
        r = -errno;
    if (r < 0) {
        error = vo_asprintf("cannot make a directory under %s: %s", top, strerror(-r));
        free(TAKE_PTR(tmp));
    }
    if (r >= 0) {
        op->tmp = vo_strdup(tmp);
        r = record_intent(op, NULL, &error);
    }
    if (r >= 0 && op->kernel_image && (r = vo_image_get(d, op->kernel_image, &kernel, NULL)) < 0)
        error = vo_asprintf("image '%s' is gone", op->kernel_image);
    if (r >= 0)
        r = disks_in(op, t, tmp, &keys, &error);
    if (r >= 0 && (r = claim_macs(op, mac_held, &claims, &error)) >= 0) {
        op->mac_held = mac_held;
        op->claims = &claims;
    }
    VoVmSpec *spec = r >= 0 ? spec_of(op, keys, kernel, &mac_notes) : NULL;
    for (size_t i = 0; spec && r >= 0 && i < spec->n_nics; i++)
        if (!spec->nics[i].mac[0]) /* its new MAC's claim failed in the store */
            r = vo_error_set(&error, -EAGAIN, "cannot claim a new MAC address for NIC %zu in "
                             "the store: import again", i + 1);
    for (char **n = mac_notes; n && *n; n++) /* the result says what the plan could not */
        if (!listed(op->plan->warnings, *n))
            vo_strv_pushf(&op->plan->warnings, "%s", *n);
    /* Tests hold two imports here, their MACs checked, to race them. */
    if (r >= 0)
        vo_test_hold("import_macs_checked");
    if (r >= 0 && spec->firmware == VO_FIRMWARE_UEFI) {
        vo_task_progress(t, 85, "making the UEFI NVRAM");
        if ((r = vo_vm_nvram_create(d, spec, op->pool, &nvram, &error)) >= 0) {
            spec->nvram = vo_strdup(nvram);
            vo_strv_pushf(&keys, "%s", nvram); /* made: recorded (a moment after) */
            r = record_intent(op, keys, &error);
        }
    }
    if (r >= 0) {
        vo_task_progress(t, 95, "defining the VM");
        /* takes spec, also on failure; its write confirms the claims */
        r = vo_vm_define(d, TAKE_PTR(spec), claims, &error);
    }
    vo_mac_claims_release(claims); /* its VM's document holds the MACs now */
    op->mac_held = NULL;
    op->claims = NULL;
    vo_vm_spec_free(spec);
    vo_image_free(kernel);
    if (tmp)
        (void)vo_rm_rf(tmp);
    if (r < 0) { /* nothing half-made: the volumes made go again */
        for (char **k = keys; k && *k; k++) {
            _cleanup_free_ char *ignored = NULL;
            if (vo_volume_remove_now(d, *k, &ignored) < 0)
                log_warn("import %s: kept volume %s: %s", op->name, *k, ignored);
        }
        if (op->tmp)
            vo_intent_vm_end(d, op->id);
        return vo_task_fail(t, r, "cannot import VM '%s': %s", op->name,
                            error ? error : strerror(-r));
    }
    vo_intent_vm_end(d, op->id); /* the VM's document owns them now */
    vo_task_set_result(t, plan_json(op));
    log_info("vm %s: imported from %s", op->name, op->path);
    return 0;
}

/* ---- entry point --------------------------------------------------------- */

/* ret_rbd: whether the pool is an rbd pool (it holds no ISO). */
static int check_args(VoDaemon *d, const VoVmImportArgs *a, bool *ret_rbd, char **ret_error)
{
    struct stat st;
    if (!a->source || (strcmp(a->source, "ova") && strcmp(a->source, "libvirt")))
        return vo_error_set(ret_error, -EINVAL, "source: '%s' is not one of ova, libvirt",
                            a->source ? a->source : "");
    if (!a->path || a->path[0] != '/' || stat(a->path, &st) < 0 || !S_ISREG(st.st_mode) ||
        access(a->path, R_OK) < 0)
        return vo_error_set(ret_error, -EINVAL, "path: '%s' is not a readable file (absolute "
                            "path on the host)", a->path ? a->path : "");
    json_t *pool = NULL;
    _cleanup_free_ char *pool_error = NULL;
    if (a->ca && strcmp(a->source, "ova"))
        return vo_error_set(ret_error, -EINVAL, "ca: only an OVA is signed (source \"ova\")");
    if (a->ca && (a->ca[0] != '/' || stat(a->ca, &st) < 0 || !S_ISREG(st.st_mode) ||
                  access(a->ca, R_OK) < 0))
        return vo_error_set(ret_error, -EINVAL, "ca: '%s' is not a readable file (absolute "
                            "path on the host)", a->ca);
    const char *pool_name = a->pool ? a->pool : VO_DEFAULT_POOL;
    int r = vo_pool_get_json(d, pool_name, &pool, &pool_error);
    const char *type = json_string_value(json_object_get(pool, "type")) ?: "";
    bool usable = r >= 0 && strcmp(type, "backup");
    *ret_rbd = !strcmp(type, "rbd");
    json_decref(pool);
    if (!usable)
        return vo_error_set(ret_error, -EINVAL, "pool: '%s' is not a pool for disks here (see "
                            "vireo pool list)", pool_name);
    if ((r = vo_pool_check_reachable(d, pool_name, ret_error)) < 0)
        return r;
    VoImage *img = NULL;
    if (a->kernel_image) {
        if (vo_image_get(d, a->kernel_image, &img, NULL) < 0 || !img->kernel) {
            vo_image_free(img);
            return vo_error_set(ret_error, -EINVAL, "kernel_image: '%s' is not an image with a "
                                "kernel here (see vireo image list)", a->kernel_image);
        }
        vo_image_free(img);
    }
    return 0;
}

int vo_vm_import(VoDaemon *d, const VoVmImportArgs *args, json_t **ret_task, json_t **ret_plan,
                 char **ret_error)
{
    bool rbd_pool = false;
    int r = check_args(d, args, &rbd_pool, ret_error);
    if (r < 0)
        return r;
    ImportOp *op = vo_malloc0(sizeof(*op));
    *op = (ImportOp){ .d = d, .ova = !strcmp(args->source, "ova"), .rbd_pool = rbd_pool,
                      .cdrom_disk = -1, .path = vo_strdup(args->path),
                      .pool = vo_strdup(args->pool ? args->pool : VO_DEFAULT_POOL),
                      .kernel_image = vo_strdup(args->kernel_image),
                      .ca = vo_strdup(args->ca) };
    if (vo_uuid_generate(op->id) < 0)
        abort();
    r = op->ova ? read_plan_ova(op, ret_error) : read_plan_libvirt(op, ret_error);
    if (r >= 0) {
        op->name = vo_strdup(args->name ? args->name : op->plan->name);
        if (!vo_name_valid(op->name))
            r = vo_error_set(ret_error, -EINVAL, "name: '%s' is not a vireo VM name (1-63 "
                             "characters of a-z, 0-9 and '-'): give one with --name (\"name\")",
                             op->name);
    }
    if (r >= 0 && vo_uuid_valid(op->name))
        r = vo_error_set(ret_error, -EINVAL, "name: '%s' looks like a VM id (a UUID); give the "
                         "VM a name that does not", op->name);
    if (r >= 0) {
        _cleanup_vm_ VoVm *other = vo_vms_find(d, op->name);
        if (other)
            r = vo_error_set(ret_error, -EEXIST, "a VM named '%s' already exists: give another "
                             "name with --name (\"name\")", op->name);
    }
    if (r >= 0)
        r = map_networks(op, args->network, ret_error);
    if (r >= 0 && op->plan->n_disks == 0)
        r = vo_error_set(ret_error, -EINVAL, "%s: the VM has no disk to import",
                         op->ova ? "OVA" : "domain XML");
    if (r >= 0) {
        if (op->plan->n_disks > VO_VM_MAX_DISKS || op->plan->n_nics > VO_VM_MAX_NICS)
            r = vo_error_set(ret_error, -EINVAL, "the VM has more disks or NICs than vireo "
                             "gives a VM (%d, %d)", VO_VM_MAX_DISKS, VO_VM_MAX_NICS);
    }
    if (r >= 0) { /* the VM's rules (this host's vCPU and memory limits, ...), with stand-ins */
        _cleanup_strv_ char **stand_ins = NULL;
        for (size_t i = 0; i < op->plan->n_disks; i++)
            if (!op->plan->disks[i].cdrom)
                vo_strv_pushf(&stand_ins, "%s/%s-disk%zu", op->pool, op->name, i);
        _cleanup_strv_ char **mac_notes = NULL;
        _cleanup_vm_spec_ VoVmSpec *trial = spec_of(op, stand_ins, NULL, &mac_notes);
        r = vo_vm_spec_validate(trial, &d->limits, ret_error);
        for (char **n = mac_notes; r >= 0 && n && *n; n++)
            vo_strv_pushf(&op->plan->warnings, "%s", *n);
    }
    if (r < 0) {
        import_op_free(op);
        return r;
    }
    json_t *plan = plan_json(op);
    r = vo_tasks_submit(d->tasks,
                        &(VoTaskDesc){ .kind = "vm-import", .target = op->name },
                        task_import, op, import_op_free, ret_task, ret_error);
    if (r < 0) {
        import_op_free(op);
        json_decref(plan);
        return r;
    }
    *ret_plan = plan;
    return 0;
}
