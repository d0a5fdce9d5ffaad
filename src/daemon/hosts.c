/* hosts.c: the hosts service (see hosts.h): this host's member document,
 * its live record under a lease, the manager election, and the list of
 * hosts the API shows. */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "api/access.h"
#include "daemon/fence.h"
#include "daemon/host-facts.h"
#include "daemon/hosts.h"
#include "daemon/networks.h"
#include "daemon/post-copy-paused.h"
#include "daemon/storage.h"
#include "daemon/vm-load.h"
#include "daemon/vms.h"
#include "util/test-hold.h"
#include "util/util.h"
#include "state/store-json.h"

#define MEMBERS_PREFIX "cluster/members/"
#define RECORDS_PREFIX "cluster/hosts/"
#define MANAGER_KEY "cluster/manager"

/* Overcommit a host allows unless its member document says otherwise. */
#define DEFAULT_MEM_RATIO 1.0
#define DEFAULT_CPU_RATIO 4.0

struct VoHosts {
    pthread_t renew_thread, work_thread;
    pthread_mutex_t lock; /* the fields below */
    pthread_cond_t wake;  /* the work thread's: stop, refresh, a new lease */
    pthread_cond_t renew_wake;
    bool stop, refresh;
    /* The fenced state ended: the VMs' documents are read once more after
     * the record saying so is out (end_fenced). */
    bool reconcile_again;
    pthread_cond_t published_cond; /* signalled when published moves */
    /* vo_hosts_publish_now: asked counts its calls, published is the asked
     * value the last publish started after. */
    uint64_t asked, published;
    int64_t lease;
    /* Until when (monotonic ms) this host may count on its lease: a renewal
     * counts only once the keepalive returned and a linearizable read made
     * after it succeeded (an isolated etcd 3.4.23 leader renews leases on
     * its own: CLUSTER.md), minus a margin. */
    int64_t confirmed_until;
    bool manager;       /* won cluster/manager on the current lease */
    int64_t manager_rev; /* the revision of our cluster/manager put */
    /* In a cluster vireod's own lease holds only the manager key, so it is
     * held (granted, renewed, confirmed) only while this host runs for or
     * holds the role: the renewal thread takes one when this is set and
     * revokes it once it is cleared (another host holds the role). */
    bool lease_wanted;
    /* In a cluster: a watch on cluster/manager (the work thread's), so the
     * key is read again when it changes instead of every second. */
    VoStoreWatch *manager_watch;
    int64_t manager_watch_retry; /* monotonic ms: no watch until then */
    VoCpuSample cpu_before;
    double load;
    int64_t last_error_log_ms;
    json_t *machines; /* the hypervisor's machine types, read once at start */
    /* Held while a record is built and written (the work thread's publish,
     * or a create's own: vo_hosts_publish_created), so the record written
     * last is the one built last. With it: cpu_before, load and what the
     * work thread last read of the member document (a create's publish
     * reads no store before its write). */
    pthread_mutex_t publish_lock;
    bool have_member;
    double mem_ratio, cpu_ratio;
    bool maintenance;
};

/* How long vo_hosts_publish_now waits for the work thread to publish. */
#define PUBLISH_NOW_WAIT_MS 3000

/* A renewal is trusted for the TTL minus this (a lease cannot expire at
 * the store before this host stops counting on it). */
#define CONFIRM_MARGIN_MS 2000

/* In a cluster, with the watch on cluster/manager open, the key is read
 * again at least this often (belt and braces: the watch says every
 * change); without the watch, every VO_HOST_RENEW_MS as standalone. */
#define MANAGER_RECHECK_MS 30000

static void log_store_error(VoHosts *h, const char *what, int r)
{
    /* A store without quorum fails every second: say it every 30 s. */
    int64_t now = vo_now_ms();
    if (now - h->last_error_log_ms < 30000)
        return;
    h->last_error_log_ms = now;
    log_warn("host record: cannot %s: %s", what, strerror(-r));
}

/* ---- this host's documents ----------------------------------------------- */

static json_t *member_document(VoDaemon *d)
{
    json_t *o = json_pack("{s:s, s:s, s:s?, s:I, s:f, s:f}", "id", d->host_id, "name",
                          d->host_name, "address", d->host_address, "joined_at",
                          (json_int_t)(vo_wall_ms() / 1000), "mem_ratio", DEFAULT_MEM_RATIO,
                          "cpu_ratio", DEFAULT_CPU_RATIO);
    if (d->cluster) /* its API: vo_cluster_url(address, api_port) */
        json_object_set_new(o, "api_port", json_integer(d->cluster->api_port));
    return o;
}

/* Creates the member document, or brings its name and address up to date
 * (kept: when it joined, ratios an operator set). */
static int register_member(VoDaemon *d)
{
    _cleanup_free_ char *key = vo_asprintf(MEMBERS_PREFIX "%s", d->host_id);
    for (int attempt = 0; attempt < 5; attempt++) {
        _cleanup_free_ char *old = NULL;
        int64_t rev = 0;
        int r = vo_store_get(d->store, key, &old, &rev);
        if (r < 0 && r != -ENOENT)
            return r;
        json_t *doc = old ? json_loads(old, 0, NULL) : NULL;
        if (!json_is_object(doc)) {
            json_decref(doc);
            doc = member_document(d);
        } else {
            json_object_set_new(doc, "name", json_string(d->host_name));
            json_object_set_new(doc, "address",
                                d->host_address ? json_string(d->host_address) : json_null());
            if (d->cluster)
                json_object_set_new(doc, "api_port", json_integer(d->cluster->api_port));
        }
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(doc);
        if (old && !strcmp(old, text))
            return 0;
        r = vo_store_put(d->store, key, text, old ? rev : VO_REV_NEW, NULL);
        if (r != -ESTALE && r != -EEXIST && r != -ENOENT)
            return r;
    }
    return -EBUSY;
}

/* The member document's overcommit ratios (defaults when unset) and
 * whether the host is in maintenance. */
static void member_ratios(VoDaemon *d, double *mem_ratio, double *cpu_ratio, bool *maintenance)
{
    *mem_ratio = DEFAULT_MEM_RATIO;
    *cpu_ratio = DEFAULT_CPU_RATIO;
    *maintenance = false;
    _cleanup_free_ char *key = vo_asprintf(MEMBERS_PREFIX "%s", d->host_id);
    _cleanup_free_ char *text = NULL;
    if (vo_store_get(d->store, key, &text, NULL) < 0)
        return;
    json_t *doc = json_loads(text, 0, NULL);
    json_t *m = json_object_get(doc, "mem_ratio"), *c = json_object_get(doc, "cpu_ratio");
    /* Placement takes ratios in (0, 100]; others keep the default. */
    if (json_is_number(m) && json_number_value(m) > 0 && json_number_value(m) <= 100)
        *mem_ratio = json_number_value(m);
    if (json_is_number(c) && json_number_value(c) > 0 && json_number_value(c) <= 100)
        *cpu_ratio = json_number_value(c);
    *maintenance = json_is_true(json_object_get(doc, "maintenance"));
    json_decref(doc);
}

int vo_hosts_set_maintenance(VoDaemon *d, const char *host_id, bool on, bool *ret_changed)
{
    _cleanup_free_ char *key = vo_asprintf(MEMBERS_PREFIX "%s", host_id);
    *ret_changed = false;
    for (int attempt = 0; attempt < 10; attempt++) {
        _cleanup_free_ char *old = NULL;
        int64_t rev = 0;
        int r = vo_store_get(d->store, key, &old, &rev);
        if (r < 0)
            return r;
        json_t *doc = json_loads(old, 0, NULL);
        if (!json_is_object(doc)) {
            json_decref(doc);
            return -EIO;
        }
        if (json_is_true(json_object_get(doc, "maintenance")) == on) {
            json_decref(doc);
            return 0;
        }
        json_object_set_new(doc, "maintenance", json_boolean(on));
        _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(doc);
        /* Compared at the revision read: two requests at once, one wins,
         * the other reads again (and finds nothing left to change). */
        r = vo_store_put(d->store, key, text, rev, NULL);
        if (r == 0) {
            *ret_changed = true;
            if (!strcmp(host_id, d->host_id))
                (void)vo_hosts_publish_now(d);
            return 0;
        }
        if (r != -ESTALE && r != -ENOENT)
            return r;
    }
    return -EBUSY;
}

/* The firmware VMs can boot here ("bios", "uefi", "uefi-secure-boot"),
 * asked at each publish (installing ovmf shows without a restart): a
 * UEFI VM moves only to a host that has its own (cluster/migrate-compat.h). */
static json_t *firmware_json(VoDaemon *d)
{
    static const struct {
        const char *name;
        VoFirmware firmware;
        bool secure_boot;
    } kinds[] = { { "bios", VO_FIRMWARE_BIOS, false },
                  { "uefi", VO_FIRMWARE_UEFI, false },
                  { "uefi-secure-boot", VO_FIRMWARE_UEFI, true } };
    json_t *a = json_array();
    for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
        _cleanup_free_ char *error = NULL;
        if (!d->driver->firmware_check ||
            d->driver->firmware_check(d->driver, kinds[i].firmware, kinds[i].secure_boot,
                                      &error) >= 0)
            json_array_append_new(a, json_string(kinds[i].name));
    }
    return a;
}

/* The live record: what placement reads (cluster/placement.h's host
 * document) plus what `vireo host show` prints. */
static json_t *record_document(VoDaemon *d, VoHosts *h)
{
    VoHostFacts f = { 0 };
    vo_host_facts_read(&f);
    VoCpuSample now;
    if (vo_host_cpu_sample_read(&now)) {
        if (h->cpu_before.total)
            h->load = vo_host_cpu_busy(&h->cpu_before, &now);
        h->cpu_before = now;
    }
    /* Every VM of the host holds its place (memory and vCPUs), running or
     * not: a stopped VM must be able to start where it is. */
    json_int_t committed_mem = 0, committed_vcpus = 0, vms = 0, running = 0;
    json_t *list = vo_vms_list_json(d, true);
    size_t i;
    json_t *vm;
    json_array_foreach(list, i, vm) {
        committed_mem += json_integer_value(json_object_get(vm, "memory_mib"));
        committed_vcpus += json_integer_value(json_object_get(vm, "vcpus"));
        vms++;
        const char *state = json_string_value(json_object_get(vm, "state"));
        if (state && (!strcmp(state, "running") || !strcmp(state, "paused")))
            running++;
    }
    json_decref(list);
    /* Only the pools this host reaches (placement filters on them); a
     * shared pool it cannot reach is listed with why not. */
    json_t *pools = json_array(), *unreachable = json_object();
    json_t *pool_list = vo_pools_list_json_quick(d);
    json_array_foreach(pool_list, i, vm) {
        const char *name = json_string_value(json_object_get(vm, "name"));
        const char *reason = json_string_value(json_object_get(vm, "reason"));
        if (name && json_is_true(json_object_get(vm, "reachable")))
            json_array_append_new(pools, json_string(name));
        else if (name)
            json_object_set_new(unreachable, name, json_string(reason ? reason : "unreachable"));
    }
    json_decref(pool_list);
    double mem_ratio = h->mem_ratio, cpu_ratio = h->cpu_ratio;
    bool maintenance = h->maintenance;
    json_t *o = json_pack(
        "{s:s, s:s, s:s?, s:s, s:s, s:s, s:O, s:o, s:I, s:I, s:i, s:f, s:f, s:I, s:I, s:f, s:I,"
        " s:I, s:s, s:I}",
        "id", d->host_id, "name", d->host_name, "address", d->host_address, "state",
        vo_fence_is_fenced(d, NULL, NULL) ? "fenced" : maintenance ? "maintenance" : "online",
        "accel", d->driver->kvm_usable ? "kvm" : "tcg", "cpu_model", f.cpu_model, "cpu_flags",
        f.cpu_flags, "pools", pools, "memory_mib", (json_int_t)(f.memory_mib ? f.memory_mib : 1), "memory_used_mib",
        (json_int_t)f.memory_used_mib, "cpus", (int)f.cpus, "mem_ratio", mem_ratio, "cpu_ratio",
        cpu_ratio, "committed_memory_mib", committed_mem, "committed_vcpus", committed_vcpus,
        "load", !(h->load >= 0) ? 0 : h->load > 1 ? 1 : h->load /* NaN: 0 */, "vms", vms,
        "vms_running", running, "version", VIREO_VERSION,
        "updated_at", (json_int_t)(vo_wall_ms() / 1000));
    json_object_set_new(o, "pools_unreachable", unreachable);
    /* What each running VM uses (daemon/vm-load.h): the manager's DRS
     * reads it. */
    json_object_set_new(o, "vm_load", vo_vm_load_json(d));
    /* What a migration's target is checked for (cluster/migrate-compat.h). */
    json_object_set(o, "machines", h->machines);
    if (d->hv_version) /* the hypervisor's version ("10.0.2") */
        json_object_set_new(o, "qemu_version", json_string(d->hv_version));
    json_object_set_new(o, "firmware", firmware_json(d));
    /* The networks its VMs can use (placement filters on them). */
    json_object_set_new(o, "networks", vo_networks_usable_json(d));
    /* What it understands of a forwarded request's principal (the optional
     * members of X-Vireo-Principal): a host forwarding to it may name them
     * (api/access.h); an older host says nothing and gets the first form. */
    json_object_set_new(o, "principal_members", vo_principal_members_json());
    /* Whether it holds the manager role (GET /v1/hosts says it from the
     * manager key; this is for the hosts' events): only while its lease is
     * confirmed, as GET /v1/host says it, so a vireod that was stopped past
     * its lease's TTL (another host took the role) never writes "true"
     * again before its renewal finds the lease gone. */
    json_object_set_new(o, "manager", json_boolean(vo_hosts_is_manager(d)));
    /* The post-copy sources kept here whose recovery a --resume may retry
     * (a VM's view and the web UI find them here; [] when none, so a record
     * applied over an older one drops what it had). */
    json_object_set_new(o, "post_copy_paused", vo_post_copy_paused_json(d));
    vo_host_facts_clear(&f);
    return o;
}

/* Builds and writes the record on lease; *ret_rev (may be NULL): the
 * revision of the write. read_member: read the member document first (the
 * work thread's publish; a create's uses what was read last). */
static int publish_record(VoDaemon *d, VoHosts *h, int64_t lease, bool read_member,
                          int64_t *ret_rev)
{
    double mem_ratio = DEFAULT_MEM_RATIO, cpu_ratio = DEFAULT_CPU_RATIO;
    bool maintenance = false;
    if (read_member) /* before publish_lock: a create's publish does not wait for it */
        member_ratios(d, &mem_ratio, &cpu_ratio, &maintenance);
    pthread_mutex_lock(&h->publish_lock);
    if (read_member || !h->have_member) {
        if (!read_member)
            member_ratios(d, &mem_ratio, &cpu_ratio, &maintenance);
        h->mem_ratio = mem_ratio;
        h->cpu_ratio = cpu_ratio;
        h->maintenance = maintenance;
        h->have_member = true;
    }
    json_t *doc = record_document(d, h);
    _cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    _cleanup_free_ char *key = vo_asprintf(RECORDS_PREFIX "%s", d->host_id);
    /* VO_REV_ANY: only this host writes its record (one write at a time:
     * publish_lock), and a record of an earlier lease of ours may still be
     * there until it expires. */
    int r = vo_store_put_lease(d->store, key, text, VO_REV_ANY, lease, ret_rev);
    pthread_mutex_unlock(&h->publish_lock);
    return r;
}

/* ---- the manager role ---------------------------------------------------- */

/* A cluster's vireod holds its own lease only while it runs for or holds
 * the manager role (lease_wanted); standalone, always (the record is on
 * it). */
static void want_lease(VoHosts *h, bool wanted)
{
    pthread_mutex_lock(&h->lock);
    if (h->lease_wanted != wanted) {
        h->lease_wanted = wanted;
        pthread_cond_signal(&h->renew_wake);
    }
    pthread_mutex_unlock(&h->lock);
}

/* Whether cluster/manager may have changed since the last look (a cluster's
 * work thread, each turn): the watch on it reported a change, or it was
 * (re)opened or lost. false with no watch (none could be opened: the key is
 * polled then). */
static bool manager_news(VoDaemon *d, VoHosts *h)
{
    VoStore *s = d->store;
    if (!h->manager_watch) {
        int64_t now = vo_now_ms(), rev = 0;
        if (now < h->manager_watch_retry)
            return false;
        h->manager_watch_retry = now + VO_HOST_RENEW_MS;
        /* From the revision now: the read that follows sees the rest. */
        if (s->ops->revision(s, &rev) < 0 ||
            s->ops->watch_open(s, MANAGER_KEY, rev, &h->manager_watch) < 0) {
            h->manager_watch = NULL;
            return false;
        }
        return true;
    }
    VoStoreEvent *ev = NULL;
    size_t n = 0;
    int r = s->ops->watch_next(h->manager_watch, 0, &ev, &n);
    vo_store_events_free(ev, n);
    if (r < 0) { /* compacted (changes lost) or closing: read again, watch again */
        s->ops->watch_close(h->manager_watch);
        h->manager_watch = NULL;
        return true;
    }
    return n > 0;
}

/* Notes whether this host holds the role; a change is published at once
 * (the record's "manager": clients following the hosts' events see the
 * role move). Caller holds h->lock. */
static void set_manager_locked(VoHosts *h, bool manager)
{
    if (h->manager != manager) {
        h->refresh = true;
        pthread_cond_signal(&h->wake);
    }
    h->manager = manager;
}

/* Takes the role when nobody holds it; notes whether we hold it. The key
 * is ours only when it carries our id at the revision we wrote it: one with
 * our id at another revision is left from an earlier lease of this host (a
 * crashed vireod's): it goes, deleted at its revision, and we run again.
 * True when the outcome is known (a manager, us or another); false when
 * it must be tried again soon (no lease yet, a store error, a stale key
 * removed): the key's watch has nothing to say while it stays absent. */
static bool run_for_manager(VoDaemon *d, VoHosts *h, int64_t lease)
{
    _cleanup_free_ char *text = NULL;
    int64_t rev = 0;
    int r = vo_store_get(d->store, MANAGER_KEY, &text, &rev);
    if (r == -ENOENT)
        want_lease(h, true); /* (a cluster's: one the renew thread was dropping stays) */
    if (r == -ENOENT && !lease)
        return false; /* a cluster's vireod takes one first (granted and confirmed by the
                 * renew thread); the new lease runs again */
    if (r == -ENOENT) {
        json_t *doc = json_pack("{s:s, s:s, s:I}", "id", d->host_id, "name", d->host_name, "since",
                                (json_int_t)(vo_wall_ms() / 1000));
        _cleanup_free_ char *mine = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(doc);
        r = vo_store_put_lease(d->store, MANAGER_KEY, mine, VO_REV_NEW, lease, &rev);
        pthread_mutex_lock(&h->lock);
        bool won = r == 0 && h->lease == lease;
        set_manager_locked(h, won);
        h->manager_rev = won ? rev : 0;
        pthread_mutex_unlock(&h->lock);
        if (won)
            log_info("this host (%s) is the cluster's manager now", d->host_name);
        else if (r == -EEXIST)
            want_lease(h, false); /* another host won */
        else if (r < 0)
            log_store_error(h, "run for manager", r);
        return won || r == -EEXIST;
    }
    if (r < 0) {
        /* Unknown: what we believed stands, bounded by confirmed_until. */
        log_store_error(h, "read the manager", r);
        return false;
    }
    json_t *doc = json_loads(text, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "id"));
    bool our_id = id && !strcmp(id, d->host_id);
    json_decref(doc);
    pthread_mutex_lock(&h->lock);
    bool ours = our_id && h->manager && h->manager_rev == rev;
    bool was = h->manager;
    set_manager_locked(h, ours);
    if (!ours)
        h->manager_rev = 0;
    pthread_mutex_unlock(&h->lock);
    if (was && !ours)
        log_info("this host (%s) is no longer the manager", d->host_name);
    if (!ours)
        want_lease(h, false); /* another host's, or ours of an earlier lease (deleted now) */
    if (our_id && !ours) {
        r = vo_store_delete(d->store, MANAGER_KEY, rev);
        if (r < 0 && r != -ENOENT && r != -ESTALE)
            log_store_error(h, "remove a stale manager key", r);
    }
    return !(our_id && !ours);
}

/* ---- the threads --------------------------------------------------------- */

/* pthread_cond_timedwait on the monotonic clock for ms. Caller holds h->lock. */
static void wait_ms(VoHosts *h, pthread_cond_t *cond, int ms)
{
    struct timespec until = vo_deadline_ms(CLOCK_MONOTONIC, ms);
    pthread_cond_timedwait(cond, &h->lock, &until);
}

/* A cluster's lease nobody wants any more (another host holds the role):
 * revoked, so it is neither renewed nor confirmed. Caller holds h->lock. */
static void drop_lease(VoDaemon *d, VoHosts *h)
{
    int64_t lease = h->lease;
    h->lease = 0;
    set_manager_locked(h, false);
    h->manager_rev = 0;
    h->confirmed_until = 0;
    pthread_mutex_unlock(&h->lock);
    int r = d->store->ops->lease_revoke(d->store, lease);
    if (r < 0 && r != -ENOENT)
        log_debug("host record: cannot revoke lease %lld: %s", (long long)lease, strerror(-r));
    pthread_mutex_lock(&h->lock);
}

/* Keeps the lease: nothing else runs on this thread, so a slow publish
 * never delays a renewal. In a cluster only while it is wanted. */
static void *renew_thread(void *userdata)
{
    VoDaemon *d = userdata;
    VoHosts *h = d->hosts;
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        if (d->cluster && !h->lease_wanted) {
            if (h->lease)
                drop_lease(d, h);
            else
                wait_ms(h, &h->renew_wake, VO_HOST_RENEW_MS);
            continue;
        }
        int64_t lease = h->lease;
        pthread_mutex_unlock(&h->lock);
        if (lease && getenv("VIREO_FAKE_FAULTS")) { /* tests let one host's lease run out */
            _cleanup_free_ char *hold = vo_asprintf("host_lease_renew@%s", d->host_name);
            vo_test_hold(hold);
        }
        int64_t t0 = vo_now_ms(), rev = 0;
        int r;
        if (lease) {
            r = d->store->ops->lease_keepalive(d->store, lease);
            if (r == 0)
                r = d->store->ops->revision(d->store, &rev);
        } else {
            r = d->store->ops->lease_grant(d->store, VO_HOST_LEASE_TTL_MS, &lease);
            if (r == 0)
                r = d->store->ops->revision(d->store, &rev);
        }
        pthread_mutex_lock(&h->lock);
        if (r == 0) {
            if (h->lease != lease) { /* a new lease: publish on it (standalone) or run */
                h->lease = lease;
                if (!d->cluster) /* a cluster's record is on the fence's lease */
                    h->refresh = true;
                pthread_cond_signal(&h->wake);
            }
            h->confirmed_until = t0 + VO_HOST_LEASE_TTL_MS - CONFIRM_MARGIN_MS;
        } else if (r == -ENOENT && lease) {
            log_warn("host record: lease expired (renewals did not arrive in time); "
                     "publishing again");
            h->lease = 0;
            set_manager_locked(h, false);
            h->manager_rev = 0;
            h->confirmed_until = 0;
        } else
            log_store_error(h, lease ? "renew the lease" : "take a lease", r);
        if (!h->stop)
            wait_ms(h, &h->renew_wake, VO_HOST_RENEW_MS);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* The lease the record lives on: in a cluster the fence process's
 * (daemon/fence.h: a vireod crash or restart keeps the host online), 0
 * while it holds none; standalone vireod's own. */
static int64_t record_lease(VoDaemon *d, int64_t own)
{
    if (!d->cluster)
        return own;
    int64_t lease = 0;
    return vo_fence_lease(d, &lease) == 0 ? lease : 0;
}

/* A fenced host that holds a new lease (its record says "fenced" now):
 * reconcile, then the fenced state ends and the record says online. The HA
 * VMs the fence killed that are still this host's (the manager restarts
 * only a host's whose record is gone: this one's may never have gone, its
 * old lease outliving the fencing until the new record replaced it, or it
 * found no place for them) are started here again, under the new lease. */
static void end_fenced(VoDaemon *d, VoHosts *h, int64_t record)
{
    int64_t lost = 0;
    if (!vo_fence_is_fenced(d, NULL, &lost) || lost == record)
        return;
    int r = vo_vms_reconcile_fenced(d);
    if (r < 0) {
        log_store_error(h, "reconcile after fencing", r);
        return;
    }
    vo_test_hold("fenced_reconciled"); /* tests commit a manager's move here */
    _cleanup_strv_ char **killed = vo_fence_killed_vms(d);
    vo_fence_clear(d, lost);
    /* The manager moves a VM off a fenced host only while the host's
     * record is the one that said fenced (vo_vm_move_from_down_txn's
     * src_record_rev): a move that committed after the reconcile above and
     * before the record below is out is seen by the reconcile made once
     * that record is out (the VM would otherwise stay here, its saves
     * failing, until vireod restarted); one after it fails. */
    pthread_mutex_lock(&h->lock);
    h->refresh = true;
    h->reconcile_again = true;
    pthread_mutex_unlock(&h->lock);
    if (!vo_fence_is_fenced(d, NULL, NULL))
        vo_vms_restart_fenced(d, killed);
}

/* The reconcile once more after the fenced state ended (end_fenced), the
 * record saying so out: tried again at the next publish when it fails. */
static void reconcile_after_fenced(VoDaemon *d, VoHosts *h)
{
    pthread_mutex_lock(&h->lock);
    h->reconcile_again = false;
    pthread_mutex_unlock(&h->lock);
    int r = vo_vms_forget_moved_off_fenced(d);
    if (r < 0) {
        log_store_error(h, "reconcile after the fenced state", r);
        pthread_mutex_lock(&h->lock);
        h->reconcile_again = true;
        pthread_mutex_unlock(&h->lock);
    }
}

/* Publishes the record (every VO_HOST_REFRESH_MS, on a new lease, or when
 * asked) and runs for manager (on vireod's own lease: a dead vireod loses
 * the role within the TTL, while its fence keeps the record): standalone
 * every second; in a cluster when the watch on cluster/manager reports a
 * change, or every MANAGER_RECHECK_MS (every second while no watch could
 * be opened). */
static void *work_thread(void *userdata)
{
    VoDaemon *d = userdata;
    VoHosts *h = d->hosts;
    int64_t next_refresh = 0, published_lease = 0, next_manager = 0, manager_lease = 0;
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        int64_t lease = h->lease;
        int64_t record = record_lease(d, lease);
        bool refresh = h->refresh || record != published_lease;
        bool reconcile_again = h->reconcile_again;
        h->refresh = false;
        uint64_t asked = h->asked;
        pthread_mutex_unlock(&h->lock);
        int64_t now = vo_now_ms();
        if (record && (refresh || now >= next_refresh)) {
            if (refresh) /* tests hold a refresh asked for here (a network made) */
                vo_test_hold("host_record_refresh");
            int r = publish_record(d, h, record, true, NULL);
            if (r < 0)
                log_store_error(h, "publish", r);
            else {
                published_lease = record;
                /* Fresher while DRS balances: its samples are this record's. */
                next_refresh = now + (atomic_load(&d->drs_sampling) ? VO_HOST_DRS_REFRESH_MS
                                                                    : VO_HOST_REFRESH_MS);
                pthread_mutex_lock(&h->lock);
                h->published = asked;
                pthread_cond_broadcast(&h->published_cond);
                pthread_mutex_unlock(&h->lock);
                if (reconcile_again)
                    reconcile_after_fenced(d, h);
                end_fenced(d, h, record);
            }
        }
        /* Every second (the loop turns every 250 ms in a cluster, to see
         * the fence's new lease soon); only once this host's record is out,
         * so a manager never places while it sees itself offline. */
        /* In a cluster the key is read when its watch says it changed (and
         * vireod takes a lease only to run for it: run_for_manager). */
        bool news = d->cluster && manager_news(d, h);
        if ((lease || d->cluster) && published_lease &&
            (news || lease != manager_lease || now >= next_manager)) {
            bool settled = run_for_manager(d, h, lease);
            manager_lease = lease;
            next_manager = now + (settled && h->manager_watch ? MANAGER_RECHECK_MS
                                                              : VO_HOST_RENEW_MS);
        }
        pthread_mutex_lock(&h->lock);
        if (!h->stop && !h->refresh && h->lease == lease)
            wait_ms(h, &h->wake, d->cluster ? 250 : VO_HOST_RENEW_MS);
    }
    pthread_mutex_unlock(&h->lock);
    if (h->manager_watch)
        d->store->ops->watch_close(h->manager_watch);
    h->manager_watch = NULL;
    return NULL;
}

int vo_hosts_start(VoDaemon *d)
{
    int r = register_member(d);
    if (r < 0) {
        log_error("cannot register this host in the store: %s", strerror(-r));
        return r;
    }
    VoHosts *h = vo_malloc0(sizeof(*h));
    h->machines = json_array();
    if (d->driver && d->driver->machines) {
        char **m = d->driver->machines(d->driver);
        for (size_t i = 0; m && m[i]; i++)
            json_array_append_new(h->machines, json_string(m[i]));
        vo_strv_free(m);
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_mutex_init(&h->publish_lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&h->wake, &attr);
    pthread_cond_init(&h->renew_wake, &attr);
    pthread_cond_init(&h->published_cond, &attr);
    pthread_condattr_destroy(&attr);
    d->hosts = h;
    vo_storage_set_pools_changed(vo_hosts_refresh);
    r = -pthread_create(&h->renew_thread, NULL, renew_thread, d);
    if (r == 0) {
        r = -pthread_create(&h->work_thread, NULL, work_thread, d);
        if (r < 0) {
            pthread_mutex_lock(&h->lock);
            h->stop = true;
            pthread_cond_signal(&h->renew_wake);
            pthread_mutex_unlock(&h->lock);
            pthread_join(h->renew_thread, NULL);
        }
    }
    if (r < 0) {
        d->hosts = NULL;
        pthread_cond_destroy(&h->wake);
        pthread_cond_destroy(&h->renew_wake);
        pthread_cond_destroy(&h->published_cond);
        pthread_mutex_destroy(&h->lock);
        pthread_mutex_destroy(&h->publish_lock);
        json_decref(h->machines);
        free(h);
        return r;
    }
    return 0;
}

void vo_hosts_stop(VoDaemon *d)
{
    VoHosts *h = d->hosts;
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    pthread_cond_signal(&h->wake);
    pthread_cond_signal(&h->renew_wake);
    pthread_cond_broadcast(&h->published_cond);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->renew_thread, NULL);
    pthread_join(h->work_thread, NULL);
    if (h->lease) {
        int r = d->store->ops->lease_revoke(d->store, h->lease);
        if (r < 0 && r != -ENOENT)
            log_warn("host record: cannot revoke the lease: %s", strerror(-r));
    }
    pthread_cond_destroy(&h->wake);
    pthread_cond_destroy(&h->renew_wake);
    pthread_cond_destroy(&h->published_cond);
    pthread_mutex_destroy(&h->lock);
    pthread_mutex_destroy(&h->publish_lock);
    d->hosts = NULL;
    json_decref(h->machines);
    free(h);
}

void vo_hosts_refresh(VoDaemon *d)
{
    VoHosts *h = d->hosts;
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->refresh = true;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
}

int vo_hosts_publish_now(VoDaemon *d)
{
    VoHosts *h = d->hosts;
    if (!h)
        return -ENOTCONN;
    struct timespec until = vo_deadline_ms(CLOCK_MONOTONIC, PUBLISH_NOW_WAIT_MS);
    pthread_mutex_lock(&h->lock);
    /* A publish that started before this call may lack what changed: wait
     * for one that starts after it. */
    uint64_t want = ++h->asked;
    h->refresh = true;
    pthread_cond_signal(&h->wake);
    int r = 0;
    while (h->published < want && !h->stop && r == 0)
        r = pthread_cond_timedwait(&h->published_cond, &h->lock, &until);
    bool done = h->published >= want;
    pthread_mutex_unlock(&h->lock);
    return done ? 0 : -ETIMEDOUT;
}

int vo_hosts_publish_created(VoDaemon *d, int64_t *ret_rev)
{
    VoHosts *h = d->hosts;
    *ret_rev = 0;
    if (!h)
        return -ENOTCONN;
    pthread_mutex_lock(&h->lock);
    int64_t lease = record_lease(d, h->lease);
    bool stop = h->stop;
    pthread_mutex_unlock(&h->lock);
    if (stop || !lease)
        return -ENOTCONN; /* no lease yet (or any more): the record is not there */
    int r = publish_record(d, h, lease, false, ret_rev);
    if (r == -EKEYEXPIRED || r == -ENOENT)
        r = -ENOTCONN; /* the lease ran out: the renewal thread takes a new one */
    return r;
}

void vo_hosts_publish_changed(VoDaemon *d, const char *what)
{
    int64_t rev = 0;
    int r = d->cluster ? vo_hosts_publish_created(d, &rev) : -ENOTCONN;
    if (r < 0) {
        if (d->cluster && r != -ENOTCONN)
            log_warn("%s: this host's record was not rewritten: %s", what, strerror(-r));
        vo_hosts_refresh(d);
    }
}

bool vo_hosts_is_manager(VoDaemon *d)
{
    VoHosts *h = d->hosts;
    if (!h)
        return false;
    pthread_mutex_lock(&h->lock);
    bool manager = h->manager && vo_now_ms() < h->confirmed_until;
    pthread_mutex_unlock(&h->lock);
    return manager;
}

/* ---- listing ------------------------------------------------------------- */

static int cmp_host_name(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(x ? x : "", y ? y : "");
}

/* Member documents joined with live records and the manager key. */
static json_t *hosts_array(VoDaemon *d, int *ret_err)
{
    json_t *members = json_object(), *records = json_object();
    _cleanup_free_ char *manager_text = NULL;
    int r = vo_store_list_objects(d->store, MEMBERS_PREFIX, members);
    if (r >= 0)
        r = vo_store_list_objects(d->store, RECORDS_PREFIX, records);
    if (r >= 0) {
        r = vo_store_get(d->store, MANAGER_KEY, &manager_text, NULL);
        if (r == -ENOENT)
            r = 0;
    }
    if (r < 0) {
        json_decref(members);
        json_decref(records);
        *ret_err = r;
        return NULL;
    }
    json_t *manager = manager_text ? json_loads(manager_text, 0, NULL) : NULL;
    const char *manager_id = json_string_value(json_object_get(manager, "id"));
    size_t n = json_object_size(members), k = 0;
    json_t **items = vo_malloc0(sizeof(json_t *) * (n + 1));
    const char *id;
    json_t *member;
    json_object_foreach(members, id, member) {
        json_t *record = json_object_get(records, id);
        json_t *o = record ? json_deep_copy(record) : json_object();
        /* The member document says who the host is; the record what it
         * has (and that it is online). */
        json_object_set(o, "id", json_object_get(member, "id"));
        json_object_set(o, "name", json_object_get(member, "name"));
        json_object_set(o, "address", json_object_get(member, "address"));
        json_object_set(o, "joined_at", json_object_get(member, "joined_at"));
        if (!record)
            json_object_set_new(o, "state", json_string("offline"));
        /* Persistent (the member document): shown offline too. */
        json_object_set_new(o, "maintenance",
                            json_boolean(json_is_true(json_object_get(member, "maintenance"))));
        json_object_set_new(o, "manager", json_boolean(manager_id && !strcmp(manager_id, id)));
        json_object_set_new(o, "local", json_boolean(!strcmp(id, d->host_id)));
        items[k++] = o;
    }
    qsort(items, k, sizeof(json_t *), cmp_host_name);
    json_t *arr = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(arr, items[i]);
    free(items);
    json_decref(manager);
    json_decref(members);
    json_decref(records);
    return arr;
}

json_t *vo_hosts_list_json(VoDaemon *d, int *ret_err)
{
    json_t *arr = hosts_array(d, ret_err);
    return arr ? json_pack("{s:o}", "hosts", arr) : NULL;
}

json_t *vo_host_get_json(VoDaemon *d, const char *host, int *ret_err)
{
    json_t *arr = hosts_array(d, ret_err);
    if (!arr)
        return NULL;
    json_t *found = NULL;
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o) {
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *id = json_string_value(json_object_get(o, "id"));
        if ((name && !strcmp(name, host)) || (id && !strcmp(id, host))) {
            found = json_incref(o);
            break;
        }
    }
    json_decref(arr);
    if (!found)
        *ret_err = -ENOENT;
    return found;
}
