/* vm-nics.c: a VM's NICs on vireo networks: the MACs in use, the taps
 * opened for a start or a hot-plug, the DHCP hosts entries, and adding
 * and removing NICs (of a stopped VM, or hot-plugged into a running one). */
#include <ctype.h>
#include <string.h>

#include "daemon/cluster-view.h"
#include "daemon/networks.h"
#include "daemon/object-projects.h"
#include "daemon/vm-internal.h"
#include "network/net-exec.h"
#include "network/net-spec.h"
#include "state/relations.h"
#include "util/test-hold.h"
#include "util/util.h"

static bool has_mac(VoVm *vm, const void *mac)
{
    for (size_t k = 0; k < vm->spec->n_nics; k++)
        if (!strcasecmp(vm->spec->nics[k].mac, mac))
            return true;
    return false;
}

int vo_vm_claim_networks(VoDaemon *d, const VoVmSpec *spec, char **ret_error)
{
    for (size_t i = 0; i < spec->n_nics; i++) {
        int r = vo_network_claim_nic(d, spec->nics[i].network, spec->id, spec->name,
                                     spec->nics[i].mac, ret_error);
        if (r < 0) {
            while (i-- > 0)
                vo_network_release_nic(d, spec->nics[i].network, spec->nics[i].mac);
            return r;
        }
    }
    return 0;
}

void vo_vm_release_networks(VoDaemon *d, const VoVmSpec *spec)
{
    for (size_t i = 0; i < spec->n_nics; i++)
        vo_network_release_nic(d, spec->nics[i].network, spec->nics[i].mac);
}

void vo_vm_close_taps(int *fds, size_t n)
{
    for (size_t i = 0; fds && i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
}

/* The tap of one NIC, named after the VM and the NIC's slot, on its
 * network's bridge; *ret_fd = -1 for a "user" NIC. */
static int open_tap(VoDaemon *d, const VoVmSpec *spec, const VoNicSpec *nic, int *ret_fd,
                    char **ret_error)
{
    *ret_fd = -1;
    if (!strcmp(nic->network, "user"))
        return 0;
    _cleanup_free_ char *bridge = NULL;
    char tap[VO_IFNAME_SIZE];
    int r = vo_network_bridge(d, nic->network, &bridge, ret_error);
    if (r >= 0 && vo_net_tap_name(spec->id, nic->slot, tap) < 0)
        return vo_error_set(ret_error, -EINVAL, "NIC slot %u has no tap name", nic->slot);
    if (r >= 0)
        r = vo_tap_open(tap, bridge, ret_fd, ret_error);
    return r;
}

int vo_vm_open_taps(VoDaemon *d, const VoVmSpec *spec, int **ret_fds, char **ret_error)
{
    int *fds = vo_malloc0(sizeof(int) * (spec->n_nics + 1));
    for (size_t i = 0; i < spec->n_nics; i++)
        fds[i] = -1;
    for (size_t i = 0; i < spec->n_nics; i++) {
        int r = open_tap(d, spec, &spec->nics[i], &fds[i], ret_error);
        if (r < 0) {
            vo_vm_close_taps(fds, spec->n_nics);
            return r;
        }
    }
    *ret_fds = fds;
    return 0;
}

json_t *vo_vm_nics_json(VoDaemon *d, VoVm *vm)
{
    pthread_mutex_lock(&vm->lock);
    VoVmSpec *spec = vo_vm_spec_copy(vm->spec);
    bool active = vo_vm_state_active(vm->state);
    pthread_mutex_unlock(&vm->lock);
    json_t *arr = json_array();
    for (size_t i = 0; i < spec->n_nics; i++) {
        const VoNicSpec *nic = &spec->nics[i];
        json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:s}", "index", (json_int_t)i, "slot",
                              (json_int_t)nic->slot, "mac", nic->mac, "network", nic->network,
                              "model", "virtio");
        char tap[VO_IFNAME_SIZE];
        bool on_net = strcmp(nic->network, "user") != 0;
        json_object_set_new(o, "tap", on_net && active && vo_net_tap_name(spec->id, nic->slot, tap) >= 0
                                          ? json_string(tap)
                                          : json_null());
        _cleanup_free_ char *ip = on_net ? vo_network_nic_ip(d, nic->network, nic->mac) : NULL;
        json_object_set_new(o, "ip", ip ? json_string(ip) : json_null());
        json_array_append_new(arr, o);
    }
    vo_vm_spec_free(spec);
    return arr;
}

typedef struct {
    VoVm *vm;
    char *network, *mac;
    VoMacClaims *claims; /* a MAC asked for, claimed until its NIC is saved */
    size_t index;
    unsigned slot; /* of the NIC removed */
} NicOp;

static void nic_op_free(void *p)
{
    NicOp *op = p;
    vo_mac_claims_release(op->claims);
    vo_vm_unref(op->vm);
    free(op->network);
    free(op->mac);
    free(op);
}

static int add_nic(VoVmSpec *s, NicOp *op, char **err);

/* Stopped VM: fn edits the definition. Running VM: plug (on the edited spec)
 * makes QEMU follow first, and only once it did is the definition changed
 * and saved; the DHCP hosts follow the definition. */
static int change_nics(VoTask *t, VoVm *vm, const char *verb,
                       int (*fn)(VoVmSpec *s, NicOp *op, char **err),
                       int (*plug)(VoVm *vm, VoHvInstance *hv, VoVmSpec *next, NicOp *op,
                                   char **err),
                       NicOp *op)
{
    VoHvInstance *hv = NULL;
    VoVmSpec *next = NULL;
    int r = vo_vm_lock_for_change(t, vm, verb, &hv, &next);
    if (r < 0)
        return r;
    _cleanup_free_ char *error = NULL;
    /* A NIC add holds its network until the definition names it, so a
     * delete of the network cannot slip in between (networks.h). */
    bool claimed = false;
    if (fn == add_nic) {
        _cleanup_free_ char *vm_name = vo_vm_name(vm);
        r = vo_network_claim_nic(vm->d, op->network, vm->spec->id, vm_name, op->mac, &error);
        claimed = r >= 0;
    }
    if (r >= 0)
        r = fn(next, op, &error);
    bool plugged = false;
    if (r >= 0 && hv) {
        r = plug(vm, hv, next, op, &error);
        plugged = r >= 0;
    }
    /* The NIC an add plugged, to take out again if the definition cannot
     * be saved. */
    unsigned added_slot = next->n_nics ? next->nics[next->n_nics - 1].slot : 0;
    /* Tests hold an add here, its MAC claimed, to race another. */
    if (r >= 0 && op->claims)
        vo_test_hold("nic_mac_claimed");
    if (r >= 0)
        r = vo_vm_commit_spec_claimed(vm, TAKE_PTR(next), op->claims);
    if (r == VO_RELATIONS_ECLAIM && !error) {
        _cleanup_free_ char *vm_name = vo_vm_name(vm);
        error = vo_vm_mac_claim_lapsed(vm_name);
        r = -EAGAIN;
    }
    /* Its save refused by the VM's project (the network's moved meanwhile). */
    if (r < 0 && !error)
        error = vo_vm_save_refusal(r);
    if (r < 0 && plugged && fn == add_nic) {
        _cleanup_free_ char *ignored = NULL;
        (void)vm->d->driver->nic_detach(hv, added_slot, &ignored);
    }
    vo_vm_spec_free(next);
    pthread_mutex_unlock(&vm->job);
    if (claimed)
        vo_network_release_nic(vm->d, op->network, op->mac);
    if (r < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        return vo_task_fail(t, r, "cannot %s VM '%s': %s", verb, name,
                            error ? error : strerror(-r));
    }
    vo_networks_refresh_hosts(vm->d);
    return 0;
}

static int add_nic(VoVmSpec *s, NicOp *op, char **err)
{
    if (s->n_nics >= VO_VM_MAX_NICS) {
        *err = vo_asprintf("the VM already has %zu NICs, the most it can have is %d",
                           s->n_nics, VO_VM_MAX_NICS);
        return -EINVAL;
    }
    for (size_t i = 0; i < s->n_nics; i++)
        if (!strcasecmp(s->nics[i].mac, op->mac)) {
            *err = vo_asprintf("MAC %s is already used by this VM", op->mac);
            return -EEXIST;
        }
    s->nics = realloc(s->nics, sizeof(VoNicSpec) * (s->n_nics + 1));
    if (!s->nics)
        abort();
    unsigned slot = vo_vm_spec_free_nic_slot(s);
    s->nics[s->n_nics++] = (VoNicSpec){ .slot = slot, .mac = vo_strdup(op->mac),
                                        .network = vo_strdup(op->network) };
    return 0;
}

static int remove_nic(VoVmSpec *s, NicOp *op, char **err)
{
    if (op->index >= s->n_nics) {
        *err = vo_asprintf("VM '%s' has no NIC %zu", s->name, op->index);
        return -ENOENT;
    }
    op->slot = s->nics[op->index].slot;
    free(s->nics[op->index].mac);
    free(s->nics[op->index].network);
    memmove(&s->nics[op->index], &s->nics[op->index + 1],
            sizeof(VoNicSpec) * (s->n_nics - op->index - 1));
    s->n_nics--;
    return 0;
}

/* The new NIC (last of next) into the running VM: its tap is opened here and
 * handed to QEMU, which keeps its own copy. */
static int plug_nic(VoVm *vm, VoHvInstance *hv, VoVmSpec *next, NicOp *op, char **err)
{
    const VoNicSpec *nic = &next->nics[next->n_nics - 1];
    int fd = -1;
    int r = open_tap(vm->d, next, nic, &fd, err);
    if (r >= 0)
        r = vm->d->driver->nic_attach(hv, next, nic, fd, err);
    if (fd >= 0)
        close(fd);
    return r;
}

/* The guest lets go of the NIC; QEMU then closes its tap, which goes away. */
static int unplug_nic(VoVm *vm, VoHvInstance *hv, VoVmSpec *next, NicOp *op, char **err)
{
    return vm->d->driver->nic_detach(hv, op->slot, err);
}

static int task_nic_add(VoTask *t, void *userdata)
{
    NicOp *op = userdata;
    int r = change_nics(t, op->vm, "add a NIC to", add_nic, plug_nic, op);
    /* The VM's document holds the MAC now, or the add failed (also before
     * it changed anything: the VM paused, its If-Match stale): the claim
     * goes before the task ends, not with its record (nic_op_free), which
     * is kept for hundreds of tasks more. */
    vo_mac_claims_release(TAKE_PTR(op->claims));
    return r;
}

static int task_nic_remove(VoTask *t, void *userdata)
{
    NicOp *op = userdata;
    return change_nics(t, op->vm, "remove a NIC from", remove_nic, unplug_nic, op);
}

/* Whether any VM's NIC on this host has mac. */
static bool mac_in_use(VoDaemon *d, const char *mac)
{
    _cleanup_vm_ VoVm *vm = vo_vms_find_if(d, has_mac, mac);
    return vm != NULL;
}

/* Whether mac is on this host or among earlier[0..n). */
static bool mac_taken(VoDaemon *d, const char *mac, const VoNicSpec *earlier, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!strcasecmp(mac, earlier[k].mac))
            return true;
    return mac_in_use(d, mac);
}

/* A MAC looked for in the other hosts' VMs, and the VM found with it. */
typedef struct {
    const char *mac;
    char *vm, *host;
} MacOwner;

/* vo_cluster_each_doc's fn: -EEXIST when the VM document value has a NIC
 * with the MAC (MacOwner: the VM and its host noted). */
static int doc_has_mac(const VoClusterHost *h, const char *name, const char *value,
                       void *userdata)
{
    (void)name;
    MacOwner *o = userdata;
    json_t *doc = json_loads(value, 0, NULL), *nic;
    json_t *spec = json_object_get(doc, "spec");
    size_t i;
    bool found = false;
    json_array_foreach(json_object_get(spec, "nics"), i, nic) {
        const char *mac = json_string_value(json_object_get(nic, "mac"));
        found = found || (mac && !strcasecmp(mac, o->mac));
    }
    if (found) {
        o->vm = vo_strdup(json_string_value(json_object_get(spec, "name")));
        o->host = vo_strdup(h->name);
    }
    json_decref(doc);
    return found ? -EEXIST : 0;
}

/* Whether another host's VM not in the MAC index has mac (mac-claims.h:
 * the VMs of a host not marked as indexed, whose vireod is older or has not
 * started since): -EEXIST with the VM's and host's names in *o (freed by
 * the caller), 0, or the store's -errno. Standalone: 0. */
static int mac_on_other_host(VoDaemon *d, const char *mac, MacOwner *o)
{
    *o = (MacOwner){ .mac = mac };
    return d->cluster_store ? vo_cluster_each_doc_unmarked(d, VO_KEY_MAC_INDEXED_PREFIX, "vms",
                                                           doc_has_mac, o)
                            : 0;
}

/* vo_mac_claim_generated's taken: on this host or among a new VM's NICs so
 * far. */
typedef struct {
    VoDaemon *d;
    const VoNicSpec *earlier;
    size_t n;
} TakenHere;

static bool taken_here(const char *mac, void *userdata)
{
    const TakenHere *t = userdata;
    return mac_taken(t->d, mac, t->earlier, t->n);
}

int vo_vms_claim_new_mac(VoDaemon *d, VoMacClaims **claims, const char *vm_name,
                         const VoNicSpec *earlier, size_t n, char ret[18])
{
    TakenHere t = { .d = d, .earlier = earlier, .n = n };
    int r = vo_mac_claim_generated(d, claims, vm_name, taken_here, &t, ret);
    if (r < 0)
        log_warn("vm %s: cannot claim a new MAC in the cluster: %s", vm_name, strerror(-r));
    return r;
}

int vo_vms_claim_given_mac(VoDaemon *d, VoMacClaims **claims, const char *vm_name,
                           const char *field, const char *mac, const VoNicSpec *earlier,
                           size_t n, char **ret_error)
{
    if (!vo_mac_valid(mac))
        return vo_error_set(ret_error, -EINVAL, "%s: '%s' is not a unicast MAC like "
                            "52:54:00:12:34:56", field, mac);
    if (vo_mac_is_zero(mac)) /* QEMU takes it for unset: a default MAC of its own */
        return vo_error_set(ret_error, -EINVAL, "%s: %s is no address (QEMU gives such a NIC a "
                            "default MAC of its own): give a unicast MAC like "
                            "52:54:00:12:34:56, or none for a new one", field, mac);
    for (size_t k = 0; k < n; k++)
        if (!strcasecmp(mac, earlier[k].mac))
            return vo_error_set(ret_error, -EINVAL, "%s: %s is given to two of the VM's NICs",
                                field, mac);
    /* Claimed first (mac-claims.h): the claim is refused while another
     * change gives it to a VM, or a VM in the index has it; then looked for
     * in this host's VMs and in those of the hosts not in the index yet. */
    int r = vo_mac_claims_add(d, claims, mac, vm_name);
    if (r < 0)
        return vo_error_set(ret_error, -EAGAIN, "%s: %s cannot be claimed in the store: %s",
                            field, mac, strerror(-r));
    if (r == 0) {
        _cleanup_free_ char *held = vo_mac_claim_holder_message(d, mac);
        /* "mac: M ...": the field named as the request names it */
        return vo_error_set(ret_error, -EEXIST, "%s%s", field, strchr(held, ':'));
    }
    if (mac_in_use(d, mac))
        return vo_error_set(ret_error, -EEXIST, "%s: %s is already used by a NIC on this host",
                            field, mac);
    MacOwner owner = { 0 };
    r = mac_on_other_host(d, mac, &owner);
    if (r == -EEXIST)
        r = vo_error_set(ret_error, -EEXIST, "%s: %s is already used by VM '%s' on host '%s'",
                         field, mac, owner.vm ? owner.vm : "?", owner.host ? owner.host : "?");
    else if (r < 0)
        r = vo_error_set(ret_error, -EAGAIN, "%s: %s cannot be checked against the other "
                         "hosts' VMs: %s", field, mac, strerror(-r));
    free(owner.vm);
    free(owner.host);
    return r < 0 ? r : 0;
}

const char *vo_vms_new_nic_mac(VoDaemon *d, const char *wanted, const VoNicSpec *earlier,
                               size_t n, VoMacClaims **claims, const char *vm_name,
                               char ret[18])
{
    /* All zeros is no address: QEMU gives such a NIC a default MAC of its
     * own (52:54:00:12:34:56 on every VM's first NIC), not the spec's. */
    const char *why = !wanted                                  ? ""
                      : !vo_mac_valid(wanted)                  ? "is not a unicast MAC"
                      : vo_mac_is_zero(wanted)                 ? "is no address (all zeros)"
                                                               : NULL;
    if (!why && mac_taken(d, wanted, earlier, n))
        why = "is in use on this host";
    /* The cluster's networks span its hosts: a MAC kept from a source (the
     * same OVA imported on two hosts) must be on no other host's VM. A
     * store that cannot say keeps it from being used. */
    MacOwner owner = { 0 };
    int r = why ? 0 : mac_on_other_host(d, wanted, &owner);
    free(owner.vm);
    free(owner.host);
    if (r == -EEXIST)
        why = "is in use on another host of the cluster";
    else if (r < 0) {
        log_warn("cannot read the other hosts' VMs for MAC %s: %s", wanted, strerror(-r));
        why = "cannot be checked against the other hosts' VMs";
    }
    if (!why) {
        for (int i = 0; i < 18; i++)
            ret[i] = (char)tolower((unsigned char)wanted[i]);
        return NULL;
    }
    int c = claims ? vo_vms_claim_new_mac(d, claims, vm_name, earlier, n, ret) : -EEXIST;
    if (c >= 0)
        return why;
    if (c != -EEXIST) { /* the store's: no MAC, never an unclaimed one */
        ret[0] = '\0';
        return why;
    }
    for (int attempt = 0; attempt < 16; attempt++) /* unclaimed: indexed at the next start */
        if (vo_mac_generate(ret) >= 0 && !mac_taken(d, ret, earlier, n))
            break;
    return why;
}

int vo_vm_nic_add(VoDaemon *d, VoVm *vm, const char *network, const char *mac,
                  json_t **ret_task, char **ret_error)
{
    int r = vo_vm_precheck(vm, INACTIVE_STATES | IN(VO_VM_RUNNING), "add a NIC to", ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    size_t n_nics = vm->spec->n_nics;
    pthread_mutex_unlock(&vm->lock);
    if (n_nics >= VO_VM_MAX_NICS) {
        *ret_error = vo_asprintf("the VM already has %zu NICs, the most it can have is %d",
                                 n_nics, VO_VM_MAX_NICS);
        return -EINVAL;
    }
    if (!network || (strcmp(network, "user") && !vo_network_exists(d, network))) {
        *ret_error = vo_asprintf("network '%s' does not exist (see: vireo network list)",
                                 network ? network : "");
        return -EINVAL;
    }
    if (strcmp(network, "user")) {
        pthread_mutex_lock(&vm->lock);
        _cleanup_free_ char *vm_name = vo_strdup(vm->spec->name);
        _cleanup_free_ char *project = vo_strdup(vo_vm_spec_project(vm->spec));
        pthread_mutex_unlock(&vm->lock);
        if ((r = vo_vm_object_allowed(d, vm_name, project, false, network, ret_error)) < 0)
            return r;
    }
    char generated[18];
    VoMacClaims *claims = NULL;
    pthread_mutex_lock(&vm->lock);
    _cleanup_free_ char *vm_name = vo_strdup(vm->spec->name);
    pthread_mutex_unlock(&vm->lock);
    if (mac && (r = vo_vms_claim_given_mac(d, &claims, vm_name, "mac", mac, NULL, 0,
                                           ret_error)) < 0) {
        vo_mac_claims_release(claims);
        return r;
    }
    if (mac) { /* in lower case, as a create's (and the index's key) */
        for (int i = 0; i < 18; i++)
            generated[i] = (char)tolower((unsigned char)mac[i]);
        mac = generated;
    }
    if (!mac) { /* claimed too: unique in the cluster */
        r = vo_vms_claim_new_mac(d, &claims, vm_name, NULL, 0, generated);
        if (r < 0) {
            vo_mac_claims_release(claims);
            *ret_error = r == -EEXIST ? vo_strdup("cannot find an unused MAC")
                                      : vo_asprintf("cannot claim a new MAC in the store: %s",
                                                    strerror(-r));
            return r == -EEXIST ? -EIO : -EAGAIN; /* the store's: never an unclaimed MAC */
        }
        mac = generated;
    }
    NicOp *op = vo_malloc0(sizeof(*op));
    op->vm = vo_vm_ref(vm);
    op->network = vo_strdup(network);
    op->mac = vo_strdup(mac);
    op->claims = claims;
    return vo_vm_submit(d, vm, "nic-add", task_nic_add, op, nic_op_free, ret_task, ret_error);
}

int vo_vm_nic_remove(VoDaemon *d, VoVm *vm, size_t index, json_t **ret_task, char **ret_error)
{
    int r = vo_vm_precheck(vm, INACTIVE_STATES | IN(VO_VM_RUNNING), "remove a NIC from",
                           ret_error);
    if (r < 0)
        return r;
    pthread_mutex_lock(&vm->lock);
    size_t n = vm->spec->n_nics;
    pthread_mutex_unlock(&vm->lock);
    if (index >= n) {
        *ret_error = vo_asprintf("the VM has no NIC %zu (it has %zu)", index, n);
        return -ENOENT;
    }
    NicOp *op = vo_malloc0(sizeof(*op));
    op->vm = vo_vm_ref(vm);
    op->index = index;
    return vo_vm_submit(d, vm, "nic-remove", task_nic_remove, op, nic_op_free, ret_task, ret_error);
}
