/* migrate-retry.c: vireo vm migrate VM --resume (migrate.h; docs/cluster.md,
 * "Post-copy"): the operator's retry of a post-copy recovery that failed
 * (both QEMUs kept, the source's intent too), at once instead of at the
 * source's next vireod start. The request reaches the VM's host (any door:
 * the destination, once the switch is done); the host that keeps the
 * source QEMU is found by asking each other online host in turn (peer
 * route POST /v1/migrations/outgoing/{vm}/resume), and queues the retry as
 * its task, whose id the caller follows. */
#include "daemon/migrate.h"

#include <string.h>

#include "daemon/cluster-place.h"
#include "daemon/cluster-view.h"
#include "util/util.h"

typedef struct {
    VoDaemon *d;
    char *vm_id, *name;
} ResumeTask;

static void resume_task_free(void *userdata)
{
    ResumeTask *m = userdata;
    free(m->vm_id);
    free(m->name);
    free(m);
}

static int task_resume(VoTask *t, void *userdata)
{
    ResumeTask *m = userdata;
    vo_task_progress(t, 10, "recovering post-copy: the destination listens, this host "
                            "resumes its stream");
    _cleanup_free_ char *error = NULL;
    int r = vo_migration_resume_kept(m->d, m->vm_id, &error);
    if (r == -ENOENT)
        return vo_task_fail(t, r, "VM '%s' has no paused post-copy migration here any more "
                            "(recovered meanwhile?)", m->name);
    if (r == -EBUSY) /* its migration task recovers it */
        return vo_task_fail(t, r, "%s", error);
    if (r < 0)
        return vo_task_fail(t, r, "post-copy of VM '%s' could not be recovered: %s. Both "
                            "QEMUs are kept paused; once the link between the hosts works, "
                            "run vireo vm migrate %s --resume again (docs/cluster.md, "
                            "\"Post-copy\")", m->name, error, m->name);
    vo_task_set_result(t, json_pack("{s:b}", "post_copy_recovered", true));
    return 0;
}

/* Queued here when this host keeps vm_id's source QEMU: 0 with the task,
 * -ENOENT when it keeps none. */
static int resume_here(VoDaemon *d, const char *key, json_t **ret_task, char **ret_error)
{
    _cleanup_free_ char *vm_id = NULL, *name = NULL;
    int r = vo_migration_kept_source(d, key, &vm_id, &name, ret_error);
    if (r < 0)
        return r;
    ResumeTask *m = vo_malloc0(sizeof(*m));
    *m = (ResumeTask){ .d = d, .vm_id = TAKE_PTR(vm_id), .name = TAKE_PTR(name) };
    /* One at a time: a second --resume answers the running one. */
    VoTaskDesc desc = { .kind = "migrate-resume", .target = m->name, .target_id = m->vm_id,
                        .keys = { m->vm_id }, .once = true };
    r = vo_tasks_submit(d->tasks, &desc, task_resume, m, resume_task_free, ret_task,
                        ret_error);
    if (r != 0)
        resume_task_free(m);
    return r < 0 ? r : 0;
}

/* Each other online host asked in turn: 0 with the task of the one that
 * keeps the source QEMU, -EBUSY with its words while that host's migration
 * task still runs, -ENOENT when none keeps one. */
static int resume_at_peers(VoDaemon *d, const char *vm_id, json_t **ret_task, char **ret_error)
{
    json_t *members = NULL, *records = NULL;
    int r = vo_cluster_hosts_read(d, &members, &records);
    json_decref(records);
    if (r < 0)
        return vo_error_set(ret_error, r, "the cluster's hosts cannot be read");
    _cleanup_free_ char *path = vo_asprintf("/v1/migrations/outgoing/%s/resume", vm_id);
    r = -ENOENT;
    const char *host_id;
    json_t *ignored;
    json_object_foreach(members, host_id, ignored) {
        VoClusterHost h = { 0 };
        if (!strcmp(host_id, d->host_id) || vo_cluster_host_get(d, host_id, &h) < 0)
            continue;
        if (h.online && h.url) {
            _cleanup_free_ char *error = NULL;
            json_t *answer = NULL;
            int k = vo_migrate_peer_call(d, h.url, "POST", path, NULL, &answer, &error);
            if (k >= 0 && json_is_object(json_object_get(answer, "task"))) {
                *ret_task = json_incref(json_object_get(answer, "task"));
                r = 0;
            } else if (k == -EBUSY) {
                r = vo_error_set(ret_error, k, "%s", error);
            } else if (k != -ENOENT) {
                log_warn("asking host %s for VM %s's kept post-copy: %s", h.name, vm_id,
                         error ? error : "no task in its answer");
            }
            json_decref(answer);
        }
        vo_cluster_host_clear(&h);
        if (r != -ENOENT)
            break;
    }
    json_decref(members);
    return r;
}

int vo_migrate_resume_request(VoDaemon *d, const char *vm_id, const char *name, bool ask_peers,
                              json_t **ret_task, char **ret_error)
{
    int r = resume_here(d, vm_id, ret_task, ret_error);
    if (r == -ENOENT && ask_peers && d->cluster_store)
        r = resume_at_peers(d, vm_id, ret_task, ret_error);
    if (r == -ENOENT && ask_peers)
        return vo_error_set(ret_error, -EBUSY, "VM '%s' has no paused post-copy migration "
                            "to resume: no host keeps a source QEMU of it (--resume retries "
                            "a post-copy whose recovery failed)", name);
    if (r == -ENOENT)
        return vo_error_set(ret_error, r, "no post-copy of VM %s is kept here", vm_id);
    return r;
}
