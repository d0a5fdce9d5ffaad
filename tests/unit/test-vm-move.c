/* test-vm-move.c: the ownership switch of a live migration (state/vm-move.c)
 * against a real etcd started by this binary (private data dir, a free
 * 127.0.0.1 port, killed by PID at the end; skipped without /usr/bin/etcd),
 * and the parsing of a migration request (conf/migrate-args.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "conf/migrate-args.h"
#include "conf/migrate-intent.h"
#include "state/store.h"
#include "state/project-objects.h"
#include "state/vm-move.h"
#include "state/vm-move-settle.h"
#include "util/util.h"

#define ETCD "/usr/bin/etcd"
#define VM "11111111-1111-4111-8111-111111111111"
#define OTHER "22222222-2222-4222-8222-222222222222"

static pid_t etcd_pid = -1;
static char etcd_dir[64] = "";
static char client_url[64];
static VoStore *raw;

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int start_etcd(void)
{
    strcpy(etcd_dir, "/tmp/vireo-test-vmmove-XXXXXX");
    if (!mkdtemp(etcd_dir))
        return -errno;
    int cport = free_port(), pport = free_port();
    if (cport < 0 || pport < 0)
        return -EADDRINUSE;
    snprintf(client_url, sizeof(client_url), "http://127.0.0.1:%d", cport);
    _cleanup_free_ char *peer = vo_asprintf("http://127.0.0.1:%d", pport);
    _cleanup_free_ char *data = vo_asprintf("%s/data", etcd_dir);
    _cleanup_free_ char *log = vo_asprintf("%s/etcd.log", etcd_dir);
    _cleanup_free_ char *cluster = vo_asprintf("t=%s", peer);
    etcd_pid = fork();
    if (etcd_pid < 0)
        return -errno;
    if (etcd_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(ETCD, ETCD, "--name", "t", "--data-dir", data, "--listen-client-urls",
              client_url, "--advertise-client-urls", client_url, "--listen-peer-urls", peer,
              "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster,
              "--initial-cluster-state", "new", (char *)NULL);
        _exit(127);
    }
    VoEtcdOptions o = { .endpoints = client_url, .host_id = NULL, .timeout_ms = 1000 };
    int r = vo_store_open_etcd(&o, &raw);
    if (r < 0)
        return r;
    int64_t give_up = vo_now_ms() + 60000, rev = 0;
    while ((r = raw->ops->revision(raw, &rev)) < 0 && vo_now_ms() < give_up &&
           waitpid(etcd_pid, NULL, WNOHANG) == 0)
        sleep_ms(100);
    return r;
}

static void stop_etcd(void)
{
    if (raw)
        vo_store_close(raw);
    raw = NULL;
    if (etcd_pid > 0) {
        kill(etcd_pid, SIGTERM);
        int64_t give_up = vo_now_ms() + 10000;
        while (waitpid(etcd_pid, NULL, WNOHANG) == 0) {
            if (vo_now_ms() > give_up) {
                kill(etcd_pid, SIGKILL);
                waitpid(etcd_pid, NULL, 0);
                break;
            }
            sleep_ms(20);
        }
    }
    etcd_pid = -1;
    if (etcd_dir[0])
        (void)vo_rm_rf(etcd_dir);
}

static int64_t put(const char *key, const char *value)
{
    int64_t rev = 0;
    assert_int_equal(vo_store_put(raw, key, value, VO_REV_ANY, &rev), 0);
    return rev;
}

static char *get(const char *key)
{
    char *v = NULL;
    return vo_store_get(raw, key, &v, NULL) == 0 ? v : NULL;
}

static const char *host_of(const char *text)
{
    static char buf[64];
    json_t *doc = json_loads(text, 0, NULL);
    snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(doc, "host")) ?: "");
    json_decref(doc);
    return buf;
}

/* A VM on host a with everything a VM can have, and another VM's documents
 * that must not move. Returns the VM document's revision. */
static int64_t seed(const char *prefix)
{
    _cleanup_free_ char *a = vo_asprintf("h/%s-a/", prefix);
    char *k = NULL;
#define P(rest, value) (free(k), k = vo_asprintf("%s%s", a, rest), put(k, value))
    /* rbd_restore_undo: the mark of a restore over its RBD disks cut short
     * (daemon/vm-rbd-restore-undo.h), which the host that starts the VM
     * next must see. */
    int64_t rev = P("vms/" VM, "{\"spec\":{\"id\":\"" VM "\",\"name\":\"web\"},\"status\":{},"
                    "\"rbd_restore_undo\":true}");
    P("uses/volumes/nfs/web-disk/" VM, "{\"vm\":\"" VM "\",\"name\":\"web\",\"active\":true}");
    P("uses/images/default/" VM, "{\"vm\":\"" VM "\",\"name\":\"web\"}");
    P("uses/networks/lan/" VM, "{\"vm\":\"" VM "\",\"macs\":[\"52:54:00:00:00:01\"]}");
    P("snapshots/" VM "/s1", "{\"name\":\"s1\"}");
    P("snapshot-current/" VM, "{\"name\":\"s1\"}");
    P("backup-base/" VM, "{\"backup\":null}");
    P("vms/" OTHER, "{\"spec\":{\"id\":\"" OTHER "\",\"name\":\"db\"}}");
    P("uses/images/default/" OTHER, "{\"vm\":\"" OTHER "\"}");
    P("operations/op1", "{\"id\":\"op1\"}");
#undef P
    free(k);
    _cleanup_free_ char *host_a = vo_asprintf("%s-a", prefix);
    _cleanup_free_ char *claim = vo_asprintf("{\"vm\":\"" VM "\",\"host\":\"%s\"}", host_a);
    put("cluster/names/vms/web", claim);
    put("cluster/group-members/g1/" VM, claim);
    _cleanup_free_ char *ip = vo_asprintf("{\"vm\":\"" VM "\",\"mac\":\"52:54:00:00:00:01\","
                                          "\"host\":\"%s\",\"ip\":\"10.0.0.5\"}", host_a);
    put("cluster/ipam/lan/10.0.0.5", ip);
    put("cluster/ipam/lan/10.0.0.6", "{\"vm\":\"" OTHER "\",\"host\":\"x\"}");
    _cleanup_free_ char *live = vo_asprintf("cluster/hosts/%s-b", prefix);
    put(live, "{\"state\":\"online\"}"); /* the destination is alive */
    return rev;
}

static void move_moves_every_document(void **state)
{
    (void)state;
    int64_t rev = seed("m");
    _cleanup_free_ char *error = NULL;
    int64_t new_rev = 0;
    assert_int_equal(vo_vm_move_txn(raw, VM, "m-a", "m-b", rev, &new_rev, &error), 0);
    assert_true(new_rev > rev);
    static const char *const moved[] = {
        "vms/" VM, "uses/volumes/nfs/web-disk/" VM, "uses/images/default/" VM,
        "uses/networks/lan/" VM, "snapshots/" VM "/s1", "snapshot-current/" VM,
        "backup-base/" VM,
    };
    for (size_t i = 0; i < ELEMENTSOF(moved); i++) {
        _cleanup_free_ char *from = vo_asprintf("h/m-a/%s", moved[i]);
        _cleanup_free_ char *to = vo_asprintf("h/m-b/%s", moved[i]);
        _cleanup_free_ char *gone = get(from), *here = get(to);
        assert_null(gone);
        assert_non_null(here);
    }
    int64_t vm_rev = 0;
    _cleanup_free_ char *doc = NULL;
    assert_int_equal(vo_store_get(raw, "h/m-b/vms/" VM, &doc, &vm_rev), 0);
    assert_int_equal(vm_rev, new_rev);
    assert_non_null(strstr(doc, "\"web\""));
    assert_non_null(strstr(doc, "\"rbd_restore_undo\":true")); /* the mark moved with it */
    /* Another VM's documents stay. */
    _cleanup_free_ char *other = get("h/m-a/vms/" OTHER), *op = get("h/m-a/operations/op1");
    _cleanup_free_ char *other_use = get("h/m-a/uses/images/default/" OTHER);
    assert_non_null(other);
    assert_non_null(op);
    assert_non_null(other_use);
    /* The cluster documents name the new host; another VM's address not. */
    _cleanup_free_ char *claim = get("cluster/names/vms/web");
    _cleanup_free_ char *member = get("cluster/group-members/g1/" VM);
    _cleanup_free_ char *ip = get("cluster/ipam/lan/10.0.0.5");
    _cleanup_free_ char *ip2 = get("cluster/ipam/lan/10.0.0.6");
    assert_string_equal(host_of(claim), "m-b");
    assert_string_equal(host_of(member), "m-b");
    assert_string_equal(host_of(ip), "m-b");
    assert_string_equal(host_of(ip2), "x");
}

static void move_refuses_a_changed_vm_and_changes_nothing(void **state)
{
    (void)state;
    int64_t rev = seed("c");
    _cleanup_free_ char *error = NULL;
    int64_t new_rev = 0;
    /* The source wrote the VM meanwhile: its revision is not the one held. */
    assert_int_equal(vo_vm_move_txn(raw, VM, "c-a", "c-b", rev - 1, &new_rev, &error),
                     -ESTALE);
    assert_non_null(strstr(error, "changed during the migration"));
    _cleanup_free_ char *still = get("h/c-a/vms/" VM), *none = get("h/c-b/vms/" VM);
    assert_non_null(still);
    assert_null(none);
    /* The destination has the VM already (a migration that half-ran). */
    put("h/c-b/vms/" VM, "{}");
    free(error);
    error = NULL;
    assert_int_equal(vo_vm_move_txn(raw, VM, "c-a", "c-b", rev, &new_rev, &error), -EEXIST);
    _cleanup_free_ char *claim = get("cluster/names/vms/web");
    _cleanup_free_ char *use = get("h/c-a/uses/images/default/" VM);
    assert_string_equal(host_of(claim), "c-a");
    assert_non_null(use);
    /* A VM that is not there. */
    free(error);
    error = NULL;
    assert_int_equal(vo_vm_move_txn(raw, OTHER "x", "c-a", "c-b", 0, &new_rev, &error),
                     -ENOENT);
}

/* A cold move: the volume documents move too (the pool renamed), the
 * VM's relation to each and its disk (and NVRAM) references follow; a volume the
 * destination has already, or one missing at the source, moves nothing. */
static void move_takes_the_volumes_along(void **state)
{
    (void)state;
    put("cluster/hosts/v-b", "{\"state\":\"online\"}"); /* the destination is online */
    put("h/v-a/vms/" VM, "{\"spec\":{\"id\":\"" VM "\",\"name\":\"vol\",\"disks\":["
                         "{\"volume\":\"default/d0\"},{\"volume\":\"nfs/shared\"}],"
                         "\"kernel\":{\"volume\":\"default/k\"},"
                         "\"nvram\":\"default/vol-nvram\"},\"status\":{}}");
    put("h/v-a/uses/volumes/default/d0/" VM, "{\"vm\":\"" VM "\"}");
    put("h/v-a/uses/volumes/nfs/shared/" VM, "{\"vm\":\"" VM "\"}");
    put("h/v-a/volumes/default/d0", "{\"pool\":\"default\",\"name\":\"d0\","
                                    "\"format\":\"qcow2\",\"image\":\"img\"}");
    put("h/v-a/volumes/default/k", "{\"pool\":\"default\",\"name\":\"k\","
                                   "\"format\":\"raw\"}");
    put("h/v-a/volumes/default/vol-nvram", "{\"pool\":\"default\",\"name\":\"vol-nvram\","
                                           "\"format\":\"qcow2\"}");
    int64_t rev = 0;
    assert_int_equal(vo_store_get(raw, "h/v-a/vms/" VM, NULL, &rev), 0);
    const VoVolumeMove vols[] = { { "default/d0", "fast/d0", false },
                                  { "default/k", "fast/k", false },
                                  { "default/vol-nvram", "fast/vol-nvram", true } };
    _cleanup_free_ char *error = NULL;
    int64_t new_rev = 0;
    /* One volume missing at the source: nothing moves. */
    const VoVolumeMove missing[] = { { "default/d0", "fast/d0", false },
                                     { "default/zz", "fast/zz", false } };
    assert_int_equal(vo_vm_move_volumes_txn(raw, VM, "v-a", "v-b", rev, missing, 2, &new_rev,
                                            &error), -ENOENT);
    assert_non_null(strstr(error, "default/zz"));
    _cleanup_free_ char *still = get("h/v-a/volumes/default/d0");
    assert_non_null(still);
    /* The destination has one already: nothing moves. */
    put("h/v-b/volumes/fast/k", "{}");
    free(error);
    error = NULL;
    assert_int_equal(vo_vm_move_volumes_txn(raw, VM, "v-a", "v-b", rev, vols, 3, &new_rev,
                                            &error), -EEXIST);
    _cleanup_free_ char *vm_still = get("h/v-a/vms/" VM);
    assert_non_null(vm_still);
    int64_t krev = 0;
    assert_int_equal(vo_store_get(raw, "h/v-b/volumes/fast/k", NULL, &krev), 0);
    assert_int_equal(vo_store_delete(raw, "h/v-b/volumes/fast/k", krev), 0);

    free(error);
    error = NULL;
    assert_int_equal(vo_vm_move_volumes_txn(raw, VM, "v-a", "v-b", rev, vols, 3, &new_rev,
                                            &error), 0);
    _cleanup_free_ char *gone = get("h/v-a/volumes/default/d0"), *gone_vm = get("h/v-a/vms/" VM);
    assert_null(gone);
    assert_null(gone_vm);
    _cleanup_free_ char *d0 = get("h/v-b/volumes/fast/d0"), *k = get("h/v-b/volumes/fast/k");
    json_t *doc = json_loads(d0, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "pool")), "fast");
    assert_string_equal(json_string_value(json_object_get(doc, "name")), "d0");
    assert_string_equal(json_string_value(json_object_get(doc, "image")), "img");
    json_decref(doc);
    assert_non_null(k);
    /* The relations: the moved volume's renamed, the shared one's as it was. */
    _cleanup_free_ char *use = get("h/v-b/uses/volumes/fast/d0/" VM);
    _cleanup_free_ char *old_use = get("h/v-b/uses/volumes/default/d0/" VM);
    _cleanup_free_ char *shared_use = get("h/v-b/uses/volumes/nfs/shared/" VM);
    assert_non_null(use);
    assert_null(old_use);
    assert_non_null(shared_use);
    /* The VM's references follow; the shared disk's stays. */
    _cleanup_free_ char *vm = get("h/v-b/vms/" VM);
    doc = json_loads(vm, 0, NULL);
    json_t *spec = json_object_get(doc, "spec");
    json_t *disks = json_object_get(spec, "disks");
    assert_string_equal(json_string_value(json_object_get(json_array_get(disks, 0), "volume")),
                        "fast/d0");
    assert_string_equal(json_string_value(json_object_get(json_array_get(disks, 1), "volume")),
                        "nfs/shared");
    assert_string_equal(json_string_value(json_object_get(json_object_get(spec, "kernel"),
                                                          "volume")), "fast/k");
    /* The UEFI NVRAM's too (a string of its own), with its document. */
    assert_string_equal(json_string_value(json_object_get(spec, "nvram")), "fast/vol-nvram");
    json_decref(doc);
    _cleanup_free_ char *nv = get("h/v-b/volumes/fast/vol-nvram");
    _cleanup_free_ char *nv_old = get("h/v-a/volumes/default/vol-nvram");
    assert_non_null(nv);
    assert_null(nv_old);
}

/* A destination whose live record is gone (it died after preparing) is
 * never given the VM; one that renews its record meanwhile is. */
static void move_needs_a_live_destination(void **state)
{
    (void)state;
    int64_t rev = seed("d");
    _cleanup_free_ char *error = NULL;
    int64_t new_rev = 0;
    assert_int_equal(vo_store_delete(raw, "cluster/hosts/d-b", VO_REV_ANY), 0);
    assert_int_equal(vo_vm_move_txn(raw, VM, "d-a", "d-b", rev, &new_rev, &error), -EHOSTDOWN);
    assert_non_null(strstr(error, "not online"));
    _cleanup_free_ char *still = get("h/d-a/vms/" VM), *none = get("h/d-b/vms/" VM);
    assert_non_null(still);
    assert_null(none);
    put("cluster/hosts/d-b", "{\"state\":\"online\",\"renewed\":1}");
    free(error);
    error = NULL;
    assert_int_equal(vo_vm_move_txn(raw, VM, "d-a", "d-b", rev, &new_rev, &error), 0);
}

/* HA recovery's move (vo_vm_move_from_down_txn): refused while the source
 * host's live record exists (nothing changes); once it is gone the VM's
 * documents move and its document lands not running, saying why. */
static void move_from_down_needs_the_source_down(void **state)
{
    (void)state;
    int64_t rev = put("h/f-a/vms/" VM, "{\"spec\":{\"id\":\"" VM "\",\"name\":\"ha1\","
                      "\"ha\":true},\"ha\":true,\"status\":{\"state\":\"running\","
                      "\"started_at\":5,\"created_at\":1},\"rbd_restore_undo\":true}");
    put("cluster/names/vms/ha1", "{\"vm\":\"" VM "\",\"host\":\"f-a\"}");
    put("cluster/hosts/f-b", "{\"state\":\"online\"}");
    put("cluster/hosts/f-a", "{\"state\":\"online\"}");
    _cleanup_free_ char *error = NULL;
    int64_t new_rev = 0;
    VoVmMoveDown down = { .exit_reason = "host f-a went offline",
                          .ha_state = "restarted on f-b" };
    assert_int_equal(vo_vm_move_from_down_txn(raw, VM, "f-a", "f-b", rev, &down, &new_rev,
                                              &error), -EBUSY);
    assert_non_null(strstr(error, "online"));
    _cleanup_free_ char *still = get("h/f-a/vms/" VM), *none = get("h/f-b/vms/" VM);
    assert_non_null(still);
    assert_null(none);
    /* Its record gone (its lease expired): the move goes through. */
    assert_int_equal(vo_store_delete(raw, "cluster/hosts/f-a", VO_REV_ANY), 0);
    free(error);
    error = NULL;
    assert_int_equal(vo_vm_move_from_down_txn(raw, VM, "f-a", "f-b", rev, &down, &new_rev,
                                              &error), 0);
    _cleanup_free_ char *gone = get("h/f-a/vms/" VM), *moved = get("h/f-b/vms/" VM);
    assert_null(gone);
    assert_non_null(moved);
    json_t *doc = json_loads(moved, 0, NULL);
    json_t *status = json_object_get(doc, "status");
    assert_string_equal(json_string_value(json_object_get(status, "state")), "crashed");
    assert_string_equal(json_string_value(json_object_get(status, "exit_reason")),
                        "host f-a went offline");
    assert_null(json_object_get(status, "started_at"));
    assert_int_equal(json_integer_value(json_object_get(status, "created_at")), 1);
    assert_true(json_is_true(json_object_get(doc, "ha")));
    assert_string_equal(json_string_value(json_object_get(doc, "ha_state")), "restarted on f-b");
    assert_true(json_is_true(json_object_get(doc, "ha_landed"))); /* not started yet */
    /* A restore over its RBD disks cut short: the restarting host sees it. */
    assert_true(json_is_true(json_object_get(doc, "rbd_restore_undo")));
    json_decref(doc);
    _cleanup_free_ char *claim = get("cluster/names/vms/ha1");
    assert_string_equal(host_of(claim), "f-b");
    /* Again (the same revision): gone from the source, so nothing. */
    free(error);
    error = NULL;
    assert_true(vo_vm_move_from_down_txn(raw, VM, "f-a", "f-b", rev, &down, &new_rev,
                                         &error) < 0);
}

/* From a fenced host, with the revision of the record that said fenced
 * (src_record_rev): a host that rewrote its record since (its fenced state
 * ended, after its reconcile read the VM's document) keeps the VM. */
static void move_from_fenced_compares_its_record(void **state)
{
    (void)state;
    int64_t rev = put("h/g-c/vms/" VM, "{\"spec\":{\"id\":\"" VM "\",\"name\":\"ha3\","
                      "\"ha\":true},\"ha\":true,\"ha_landed\":true,"
                      "\"status\":{\"state\":\"crashed\"}}");
    put("cluster/hosts/g-d", "{\"state\":\"online\"}");
    int64_t fenced = put("cluster/hosts/g-c", "{\"state\":\"fenced\"}");
    int64_t online = put("cluster/hosts/g-c", "{\"state\":\"online\"}");
    _cleanup_free_ char *error = NULL;
    int64_t new_rev = 0;
    VoVmMoveDown down = { .exit_reason = "host g-c fenced itself", .src_fenced = true,
                          .src_record_rev = fenced };
    assert_int_equal(vo_vm_move_from_down_txn(raw, VM, "g-c", "g-d", rev, &down, &new_rev,
                                              &error), -EBUSY);
    assert_non_null(strstr(error, "rewrote its record"));
    _cleanup_free_ char *none = get("h/g-d/vms/" VM), *kept = get("h/g-c/vms/" VM);
    assert_null(none);
    assert_non_null(kept);
    free(error);
    error = NULL;
    down.src_record_rev = online; /* (as if that record still said fenced) */
    assert_int_equal(vo_vm_move_from_down_txn(raw, VM, "g-c", "g-d", rev, &down, &new_rev,
                                              &error), 0);
    _cleanup_free_ char *moved = get("h/g-d/vms/" VM);
    assert_non_null(moved);
}

/* The same from a host online but fenced (src_fenced): its record stays
 * and is not compared; a VM whose document says it runs (or starts) is
 * refused, one stopped by a failed start moves, compared at its revision. */
static void move_from_fenced_needs_the_vm_not_running(void **state)
{
    (void)state;
    int64_t rev = put("h/g-a/vms/" VM, "{\"spec\":{\"id\":\"" VM "\",\"name\":\"ha2\","
                      "\"ha\":true},\"ha\":true,\"status\":{\"state\":\"starting\"}}");
    put("cluster/hosts/g-b", "{\"state\":\"online\"}");
    put("cluster/hosts/g-a", "{\"state\":\"fenced\"}");
    _cleanup_free_ char *error = NULL;
    int64_t new_rev = 0;
    VoVmMoveDown down = { .exit_reason = "host g-a fenced itself", .src_fenced = true };
    assert_int_equal(vo_vm_move_from_down_txn(raw, VM, "g-a", "g-b", rev, &down, &new_rev,
                                              &error), -EBUSY);
    _cleanup_free_ char *none = get("h/g-b/vms/" VM);
    assert_null(none);
    int64_t stopped = put("h/g-a/vms/" VM, "{\"spec\":{\"id\":\"" VM "\",\"name\":"
                          "\"ha2\",\"ha\":true},\"ha\":true,\"ha_start_failed\":true,"
                          "\"status\":{\"state\":\"stopped\"}}");
    free(error);
    error = NULL;
    /* Its revision as read: a start there since (a new revision) wins. */
    assert_true(vo_vm_move_from_down_txn(raw, VM, "g-a", "g-b", rev, &down, &new_rev,
                                         &error) < 0);
    free(error);
    error = NULL;
    assert_int_equal(vo_vm_move_from_down_txn(raw, VM, "g-a", "g-b", stopped, &down, &new_rev,
                                              &error), 0);
    _cleanup_free_ char *gone = get("h/g-a/vms/" VM), *moved = get("h/g-b/vms/" VM);
    assert_null(gone);
    json_t *doc = json_loads(moved, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(doc, "status"),
                                                          "exit_reason")),
                        "host g-a fenced itself");
    assert_true(json_is_true(json_object_get(doc, "ha_landed")));
    /* The old host's mark stays behind: its new host's start is its own. */
    assert_null(json_object_get(doc, "ha_start_failed"));
    json_decref(doc);
    _cleanup_free_ char *record = get("cluster/hosts/g-a");
    assert_non_null(record);
}

/* A move whose outcome was unknown: settled as moved when it applied; when
 * it did not, the source's document is fenced (rewritten at a new
 * revision), so the same move can never apply afterwards. */
static void settle_tells_moved_from_fenced(void **state)
{
    (void)state;
    _cleanup_free_ char *error = NULL;
    int64_t rev = seed("s"), new_rev = 0, moved = 0, src_rev = 0;
    assert_int_equal(vo_store_get_linear(raw, "h/s-a/vms/" VM, NULL), 0);
    assert_int_equal(vo_store_get_linear(raw, "h/s-b/vms/" VM, NULL), -ENOENT);
    /* Not applied: fenced, the document kept as it was. */
    _cleanup_free_ char *before = get("h/s-a/vms/" VM);
    assert_int_equal(vo_vm_move_settle(raw, VM, "s-a", "s-b", rev, 5000, &moved, &src_rev,
                                       &error), 0);
    assert_true(src_rev > rev);
    _cleanup_free_ char *after = get("h/s-a/vms/" VM);
    assert_string_equal(before, after);
    assert_int_equal(vo_vm_move_txn(raw, VM, "s-a", "s-b", rev, &new_rev, &error), -ESTALE);
    _cleanup_free_ char *none = get("h/s-b/vms/" VM);
    assert_null(none);
    /* Applied: settled as moved, at the move's revision, nothing fenced. */
    free(error);
    error = NULL;
    assert_int_equal(vo_vm_move_txn(raw, VM, "s-a", "s-b", src_rev, &new_rev, &error), 0);
    assert_int_equal(vo_vm_move_settle(raw, VM, "s-a", "s-b", src_rev, 5000, &moved, &src_rev,
                                       &error), 1);
    assert_int_equal(moved, new_rev);
    /* Neither state (someone else changed the source's document). */
    int64_t r2 = seed("x");
    put("h/x-a/vms/" VM, "{\"spec\":{\"id\":\"" VM "\",\"name\":\"web\"},\"status\":{}}");
    free(error);
    error = NULL;
    assert_int_equal(vo_vm_move_settle(raw, VM, "x-a", "x-b", r2, 5000, &moved, &src_rev,
                                       &error), -EIO);
    assert_non_null(strstr(error, "changed by someone else"));
}

static int parse(const char *text, VoMigrateArgs *ret, char **ret_error)
{
    json_t *body = text ? json_loads(text, 0, NULL) : NULL;
    *ret_error = NULL;
    int r = vo_migrate_args_parse(body, ret, ret_error);
    json_decref(body);
    return r;
}

/* The intent file of a migration (conf/migrate-intent.h): written and
 * read back, and what a restarted vireod does with it. */
static void intent_round_trip_and_decisions(void **state)
{
    (void)state;
    json_t *spec = json_pack("{s:s}", "name", "web");
    VoMigrateIntent i = { .role = VO_MIGRATE_ROLE_SOURCE, .vm = "id-1", .name = "web",
                          .migration = "mig-1", .peer = "host-2",
                          .peer_url = "https://10.0.0.2:8443", .phase = "switch",
                          .resume = true, .rev = 42, .spec = spec };
    json_t *doc = vo_migrate_intent_to_json(&i);
    VoMigrateIntent back;
    char *error = NULL;
    assert_int_equal(vo_migrate_intent_from_json(doc, &back, &error), 0);
    assert_int_equal(back.role, VO_MIGRATE_ROLE_SOURCE);
    assert_string_equal(back.vm, "id-1");
    assert_string_equal(back.name, "web");
    assert_string_equal(back.migration, "mig-1");
    assert_string_equal(back.peer, "host-2");
    assert_string_equal(back.peer_url, "https://10.0.0.2:8443");
    assert_string_equal(back.phase, "switch");
    assert_true(back.resume);
    assert_int_equal(back.rev, 42);
    assert_int_equal(back.back_rev, 0); /* no take-back sent: not written */
    assert_true(json_equal(back.spec, spec));
    assert_null(json_object_get(doc, "back_rev"));
    json_decref(doc);
    i.back_rev = 57; /* a take-back sent, compared at 57 */
    doc = vo_migrate_intent_to_json(&i);
    assert_int_equal(vo_migrate_intent_from_json(doc, &back, &error), 0);
    assert_int_equal(back.back_rev, 57);
    json_decref(doc);
    i.back_rev = 0;

    /* Source: the VM still here resumes, or settles when the switch may
     * have been sent; gone to the peer: the source QEMU ends; gone but
     * not at the peer: nothing is touched. */
    static const struct {
        const char *phase;
        bool here, at_peer;
        VoMigrateRecover want;
    } source[] = {
        { "prepare", true, false, VO_MIGRATE_RECOVER_RESUME },
        { "disks", true, false, VO_MIGRATE_RECOVER_RESUME },
        { "memory", true, false, VO_MIGRATE_RECOVER_RESUME },
        { "switch", true, false, VO_MIGRATE_RECOVER_SETTLE },
        { "switched", true, false, VO_MIGRATE_RECOVER_SETTLE },
        { "switch", false, true, VO_MIGRATE_RECOVER_QUIT },
        { "switched", false, true, VO_MIGRATE_RECOVER_QUIT },
        { "memory", false, false, VO_MIGRATE_RECOVER_NOTHING },
    };
    for (size_t k = 0; k < ELEMENTSOF(source); k++) {
        i.phase = source[k].phase;
        assert_int_equal(vo_migrate_recover_decide(&i, source[k].here, source[k].at_peer),
                         source[k].want);
    }
    /* Destination: continued only when the store gives it the VM. */
    i.role = VO_MIGRATE_ROLE_DESTINATION;
    i.phase = "prepare";
    assert_int_equal(vo_migrate_recover_decide(&i, true, false), VO_MIGRATE_RECOVER_CONTINUE);
    assert_int_equal(vo_migrate_recover_decide(&i, false, false), VO_MIGRATE_RECOVER_DESTROY);
    assert_int_equal(vo_migrate_recover_decide(&i, false, true), VO_MIGRATE_RECOVER_DESTROY);
    assert_string_equal(vo_migrate_recover_to_string(VO_MIGRATE_RECOVER_DESTROY), "destroy");

    /* Bad files are refused, naming why. */
    static const char *const bad[] = {
        "{\"role\":\"both\",\"vm\":\"a\",\"name\":\"b\",\"migration\":\"c\",\"peer\":\"d\","
        "\"phase\":\"memory\"}",
        "{\"role\":\"source\",\"vm\":\"a\"}",
        "[]",
    };
    for (size_t k = 0; k < ELEMENTSOF(bad); k++) {
        json_t *b = json_loads(bad[k], 0, NULL);
        assert_int_equal(vo_migrate_intent_from_json(b, &back, &error), -EINVAL);
        assert_non_null(strstr(error, "bad migration intent"));
        free(error);
        error = NULL;
        json_decref(b);
    }
    assert_int_equal(vo_migrate_intent_from_json(NULL, &back, &error), -EINVAL);
    free(error);
    json_decref(spec);
}

static void args_are_parsed_and_checked(void **state)
{
    (void)state;
    VoMigrateArgs a;
    char *error = NULL;
    assert_int_equal(parse(NULL, &a, &error), 0);
    assert_null(a.to);
    assert_int_equal(a.bandwidth, 0);
    assert_false(a.verify_memory);
    assert_null(a.pool);
    assert_int_equal(a.converge_timeout_s, 0);
    assert_false(a.force_converge);
    assert_false(a.post_copy);
    json_t *body = json_loads("{\"to\":\"h2\",\"max_downtime_ms\":50,\"bandwidth\":\"100M/s\","
                              "\"verify_memory\":true,\"pool\":\"fast\","
                              "\"converge_timeout_s\":30,\"force_converge\":true,"
                              "\"post_copy\":true}", 0, NULL);
    assert_int_equal(vo_migrate_args_parse(body, &a, &error), 0);
    assert_string_equal(a.to, "h2");
    assert_string_equal(a.pool, "fast");
    assert_int_equal(a.max_downtime_ms, 50);
    assert_int_equal(a.bandwidth, 100ull << 20);
    assert_true(a.verify_memory);
    assert_int_equal(a.converge_timeout_s, 30);
    assert_true(a.force_converge);
    assert_true(a.post_copy);
    json_decref(body);
    assert_int_equal(parse("{\"bandwidth\":1048576}", &a, &error), 0);
    assert_int_equal(a.bandwidth, 1048576);
    /* resume: false (its documented default) is a migration as without it. */
    body = json_loads("{\"resume\":false,\"to\":\"h2\"}", 0, NULL);
    assert_int_equal(vo_migrate_args_parse(body, &a, &error), 0);
    assert_string_equal(a.to, "h2");
    json_decref(body);
    static const struct {
        const char *body, *field;
    } bad[] = {
        { "{\"to\":\"\"}", "to:" },
        { "{\"to\":5}", "to:" },
        { "{\"max_downtime_ms\":0}", "max_downtime_ms:" },
        { "{\"max_downtime_ms\":\"5\"}", "max_downtime_ms:" },
        { "{\"bandwidth\":\"fast\"}", "bandwidth:" },
        { "{\"bandwidth\":-1}", "bandwidth:" },
        { "{\"verify_memory\":1}", "verify_memory:" },
        { "{\"pool\":\"a/b\"}", "pool:" },
        { "{\"pool\":7}", "pool:" },
        { "{\"force\":true}", "force: unknown field" },
        { "{\"converge_timeout_s\":0}", "converge_timeout_s:" },
        { "{\"converge_timeout_s\":86401}", "converge_timeout_s:" },
        { "{\"converge_timeout_s\":\"10\"}", "converge_timeout_s:" },
        { "{\"force_converge\":1}", "force_converge:" },
        { "{\"post_copy\":\"yes\"}", "post_copy:" },
        { "{\"resume\":true,\"to\":\"h2\"}", "resume:" },
        { "{\"resume\":1}", "resume:" },
        { "[1]", "JSON object" },
    };
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        assert_int_equal(parse(bad[i].body, &a, &error), -EINVAL);
        if (!strstr(error, bad[i].field))
            fail_msg("%s: '%s' does not name %s", bad[i].body, error, bad[i].field);
        free(error);
        error = NULL;
    }
}

/* Local volumes move with the VM: their documents change host (and pool),
 * the VM's disk keys and its uses/volumes relation follow the pool; a
 * flattened copy loses its backing; a name taken on the target fails the
 * whole move. */
static void move_takes_local_volumes_along(void **state)
{
    (void)state;
    put("cluster/hosts/l-b", "{\"state\":\"online\"}"); /* the destination is online */
    put("h/l-a/vms/" VM, "{\"spec\":{\"id\":\"" VM "\",\"name\":\"lv\",\"disks\":["
                         "{\"volume\":\"default/lv-disk0\",\"slot\":0},"
                         "{\"volume\":\"default/lv-disk1\",\"slot\":1},"
                         "{\"volume\":\"nfs/keep\",\"slot\":2}]},\"status\":{}}");
    put("h/l-a/uses/volumes/default/lv-disk0/" VM, "{\"vm\":\"" VM "\"}");
    put("h/l-a/uses/volumes/default/lv-disk1/" VM, "{\"vm\":\"" VM "\"}");
    put("h/l-a/volumes/default/lv-disk0",
        "{\"pool\":\"default\",\"name\":\"lv-disk0\",\"format\":\"qcow2\","
        "\"image\":\"default\"}");
    put("h/l-a/volumes/default/lv-disk1",
        "{\"pool\":\"default\",\"name\":\"lv-disk1\",\"format\":\"qcow2\","
        "\"backing\":\"default/base\"}");
    _cleanup_free_ char *error = NULL;
    int64_t new_rev = 0;
    const VoVolumeMove vols[] = {
        { .from = "default/lv-disk0", .to = "fast/lv-disk0" },
        { .from = "default/lv-disk1", .to = "fast/lv-disk1", .flatten = true },
    };
    /* A volume of that name on the target: nothing moves. */
    put("h/l-b/volumes/fast/lv-disk1", "{}");
    assert_int_equal(vo_vm_move_volumes_txn(raw, VM, "l-a", "l-b", 0, vols, 2, &new_rev, &error),
                     -EEXIST);
    assert_non_null(strstr(error, "h/l-b/volumes/fast/lv-disk1"));
    _cleanup_free_ char *still = get("h/l-a/volumes/default/lv-disk0");
    assert_non_null(still);
    assert_int_equal(vo_store_delete(raw, "h/l-b/volumes/fast/lv-disk1", VO_REV_ANY), 0);
    free(error);
    error = NULL;
    assert_int_equal(vo_vm_move_volumes_txn(raw, VM, "l-a", "l-b", 0, vols, 2, &new_rev, &error),
                     0);
    _cleanup_free_ char *gone0 = get("h/l-a/volumes/default/lv-disk0");
    _cleanup_free_ char *gone1 = get("h/l-a/volumes/default/lv-disk1");
    _cleanup_free_ char *v0 = get("h/l-b/volumes/fast/lv-disk0");
    _cleanup_free_ char *v1 = get("h/l-b/volumes/fast/lv-disk1");
    assert_null(gone0);
    assert_null(gone1);
    assert_non_null(v0);
    assert_non_null(v1);
    assert_non_null(strstr(v0, "\"pool\":\"fast\""));
    assert_non_null(strstr(v0, "\"image\":\"default\""));
    assert_null(strstr(v1, "backing"));
    _cleanup_free_ char *use = get("h/l-b/uses/volumes/fast/lv-disk0/" VM);
    _cleanup_free_ char *old_use = get("h/l-b/uses/volumes/default/lv-disk0/" VM);
    assert_non_null(use);
    assert_null(old_use);
    _cleanup_free_ char *vm = get("h/l-b/vms/" VM);
    assert_non_null(strstr(vm, "\"fast/lv-disk0\""));
    assert_non_null(strstr(vm, "\"fast/lv-disk1\""));
    assert_non_null(strstr(vm, "\"nfs/keep\""));
    /* A volume whose document is gone: refused. */
    put("h/l-a/vms/" OTHER, "{\"spec\":{\"id\":\"" OTHER "\",\"name\":\"o\"}}");
    free(error);
    error = NULL;
    assert_int_equal(vo_vm_move_volumes_txn(raw, OTHER, "l-a", "l-b", 0, vols, 1, &new_rev,
                                            &error), -ENOENT);
    assert_non_null(strstr(error, "default/lv-disk0"));
}

/* A moved volume's project documents (state/project-objects.h) follow it
 * from the source's scope to the destination's in the same transaction;
 * a volume of no project has none to carry. */
static void move_carries_the_volumes_projects(void **state)
{
    (void)state;
    put("cluster/hosts/p-b", "{\"state\":\"online\"}");
    put("h/p-a/vms/" VM, "{\"spec\":{\"id\":\"" VM "\",\"name\":\"pv\",\"disks\":["
                         "{\"volume\":\"default/pv-data\",\"slot\":0},"
                         "{\"volume\":\"default/pv-free\",\"slot\":1}]},\"status\":{}}");
    put("h/p-a/volumes/default/pv-data", "{\"pool\":\"default\",\"name\":\"pv-data\"}");
    put("h/p-a/volumes/default/pv-free", "{\"pool\":\"default\",\"name\":\"pv-free\"}");
    VoProjectObject data = { .kind = "volume", .scope = "p-a", .id = "default/pv-data" };
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_project_object_set(raw, &data, "default", 4096, "p-a", &error), 0);
    const VoVolumeMove vols[] = { { .from = "default/pv-data", .to = "fast/pv-data" },
                                  { .from = "default/pv-free", .to = "default/pv-free" } };
    int64_t new_rev = 0;
    assert_int_equal(vo_vm_move_volumes_txn(raw, VM, "p-a", "p-b", 0, vols, 2, &new_rev, &error),
                     0);
    _cleanup_free_ char *old_object = get("cluster/object-projects/volume/p-a/default/pv-data");
    _cleanup_free_ char *old_usage = get("cluster/project-usage/default/volume:p-a:default:pv-data");
    _cleanup_free_ char *object = get("cluster/object-projects/volume/p-b/fast/pv-data");
    _cleanup_free_ char *usage = get("cluster/project-usage/default/volume:p-b:fast:pv-data");
    _cleanup_free_ char *free_object = get("cluster/object-projects/volume/p-b/default/pv-free");
    assert_null(old_object);
    assert_null(old_usage);
    assert_null(free_object);
    assert_non_null(object);
    assert_non_null(usage);
    assert_string_equal(host_of(usage), "p-b");
    assert_non_null(strstr(usage, "\"object\":\"fast/pv-data\""));
    assert_non_null(strstr(usage, "\"disk_bytes\":4096"));
    char *project = NULL;
    int64_t disk = 0;
    VoProjectObject moved = { .kind = "volume", .scope = "p-b", .id = "fast/pv-data" };
    assert_int_equal(vo_project_object_get(raw, &moved, &project, &disk), 0);
    assert_string_equal(project, "default");
    assert_int_equal(disk, 4096);
    free(project);
}

/* A project move of a volume or network the VM uses, under way (its mark
 * present), holds the switch back: a shared pool's volume, a cluster
 * network, a local volume that moves with the VM; a local network (no
 * other host's move looks for its users) does not. */
static void move_waits_for_project_moves(void **state)
{
    (void)state;
    put("cluster/hosts/k-b", "{\"state\":\"online\"}");
    put("cluster/pools/nfs", "{}");    /* a shared pool */
    put("cluster/networks/lan", "{}"); /* a cluster network */
    put("h/k-a/vms/" VM, "{\"spec\":{\"id\":\"" VM "\",\"name\":\"mm\",\"disks\":["
                         "{\"volume\":\"nfs/k-shared\",\"slot\":0},"
                         "{\"volume\":\"default/k-local\",\"slot\":1}]},\"status\":{}}");
    put("h/k-a/uses/volumes/nfs/k-shared/" VM, "{\"vm\":\"" VM "\"}");
    put("h/k-a/uses/volumes/default/k-local/" VM, "{\"vm\":\"" VM "\"}");
    put("h/k-a/uses/networks/lan/" VM, "{\"vm\":\"" VM "\"}");
    put("h/k-a/uses/networks/here/" VM, "{\"vm\":\"" VM "\"}");
    put("h/k-a/volumes/default/k-local", "{\"pool\":\"default\",\"name\":\"k-local\"}");
    static const char *marks[] = { "cluster/object-moves/volume/shared/nfs/k-shared",
                                   "cluster/object-moves/network/cluster/lan",
                                   "cluster/object-moves/volume/k-a/default/k-local" };
    static const char *named[] = { "volume 'nfs/k-shared'", "network 'lan'",
                                   "volume 'default/k-local'" };
    const VoVolumeMove vols[] = { { .from = "default/k-local", .to = "default/k-local" } };
    int64_t new_rev = 0;
    for (size_t i = 0; i < ELEMENTSOF(marks); i++) {
        _cleanup_free_ char *error = NULL;
        put(marks[i], "{\"host\":\"k-c\",\"project\":\"p\"}");
        assert_int_equal(vo_vm_move_volumes_txn(raw, VM, "k-a", "k-b", 0, vols, 1, &new_rev,
                                                &error), -EBUSY);
        assert_non_null(strstr(error, named[i]));
        assert_non_null(strstr(error, "is being moved to another project"));
        _cleanup_free_ char *still = get("h/k-a/vms/" VM);
        assert_non_null(still); /* nothing moved */
        assert_int_equal(vo_store_delete(raw, marks[i], VO_REV_ANY), 0);
    }
    /* The mark of a local network: not compared. */
    put("cluster/object-moves/network/k-a/here", "{}");
    _cleanup_free_ char *error = NULL;
    assert_int_equal(vo_vm_move_volumes_txn(raw, VM, "k-a", "k-b", 0, vols, 1, &new_rev, &error),
                     0);
    _cleanup_free_ char *moved = get("h/k-b/vms/" VM);
    assert_non_null(moved);
}

/* Volumes of no project carry no project documents, so they take no room
 * in the move's transaction: a VM with many documents and local volumes
 * that fitted in one transaction before projects moved with it still does
 * (it used to count four more operations per volume, in a project or not,
 * and refused such a VM's migration with -E2BIG). */
static void move_counts_only_carried_project_documents(void **state)
{
    (void)state;
    enum { SNAPSHOTS = 45, VOLUMES = 8 }; /* 2 * 46 + 2 * 8 + shared <= 128 < that + 4 * 8 */
    put("cluster/hosts/e-b", "{\"state\":\"online\"}");
    json_t *disks = json_array();
    VoVolumeMove vols[VOLUMES];
    char *names[2 * VOLUMES];
    for (int i = 0; i < VOLUMES; i++) {
        names[2 * i] = vo_asprintf("default/e-disk%d", i);
        names[2 * i + 1] = vo_asprintf("fast/e-disk%d", i);
        vols[i] = (VoVolumeMove){ .from = names[2 * i], .to = names[2 * i + 1] };
        json_array_append_new(disks, json_pack("{s:s, s:i}", "volume", names[2 * i], "slot", i));
        _cleanup_free_ char *key = vo_asprintf("h/e-a/volumes/%s", names[2 * i]);
        _cleanup_free_ char *doc = vo_asprintf("{\"pool\":\"default\",\"name\":\"e-disk%d\"}", i);
        put(key, doc);
    }
    json_t *vm = json_pack("{s:{s:s, s:s, s:o}, s:{}}", "spec", "id", VM, "name", "ev", "disks",
                           disks, "status");
    _cleanup_free_ char *vm_text = json_dumps(vm, JSON_COMPACT);
    json_decref(vm);
    put("h/e-a/vms/" VM, vm_text);
    for (int i = 0; i < SNAPSHOTS; i++) {
        _cleanup_free_ char *key = vo_asprintf("h/e-a/snapshots/" VM "/s%d", i);
        put(key, "{}");
    }
    _cleanup_free_ char *error = NULL;
    int64_t new_rev = 0;
    assert_int_equal(vo_vm_move_volumes_txn(raw, VM, "e-a", "e-b", 0, vols, VOLUMES, &new_rev,
                                            &error), 0);
    _cleanup_free_ char *moved = get("h/e-b/vms/" VM);
    assert_non_null(moved);
    for (int i = 0; i < 2 * VOLUMES; i++)
        free(names[i]);
}

int main(void)
{
    const struct CMUnitTest pure[] = { cmocka_unit_test(args_are_parsed_and_checked),
                                       cmocka_unit_test(intent_round_trip_and_decisions) };
    int failed = cmocka_run_group_tests_name("migrate-args", pure, NULL, NULL);
    if (access(ETCD, X_OK) != 0) {
        printf("%s is not installed: the ownership transaction is not tested\n", ETCD);
        return failed ? 1 : 77;
    }
    curl_global_init(CURL_GLOBAL_ALL);
    int r = start_etcd();
    if (r < 0) {
        fprintf(stderr, "cannot start etcd: %s\n", strerror(-r));
        stop_etcd();
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(move_moves_every_document),
        cmocka_unit_test(move_refuses_a_changed_vm_and_changes_nothing),
        cmocka_unit_test(move_takes_the_volumes_along),
        cmocka_unit_test(move_needs_a_live_destination),
        cmocka_unit_test(move_from_down_needs_the_source_down),
        cmocka_unit_test(move_from_fenced_needs_the_vm_not_running),
        cmocka_unit_test(move_from_fenced_compares_its_record),
        cmocka_unit_test(settle_tells_moved_from_fenced),
        cmocka_unit_test(move_takes_local_volumes_along),
        cmocka_unit_test(move_carries_the_volumes_projects),
        cmocka_unit_test(move_waits_for_project_moves),
        cmocka_unit_test(move_counts_only_carried_project_documents),
    };
    failed += cmocka_run_group_tests_name("vm-move", tests, NULL, NULL);
    stop_etcd();
    curl_global_cleanup();
    return failed ? 1 : 0;
}
