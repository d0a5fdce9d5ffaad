/* migrate-resume.c: post-copy recovery (migrate.h; docs/cluster.md,
 * "Post-copy"). Once the destination runs, the guest's memory is split
 * between the two hosts: a broken link pauses both QEMUs (postcopy-paused)
 * and neither may end. The source's vireod mends it, a bounded number of
 * times: the destination listens on a new port (migrate_recover, asked for
 * through its peer route), the source resumes its stream there
 * (migrate_resume), and the rest of memory flows again. */
#include "daemon/migrate.h"

#include <poll.h>
#include <string.h>

#include "util/util.h"

#define RESUME_TRIES 5
#define RESUME_EVERY_MS 3000
#define PAUSED_WAIT_MS 30000
#define PAUSE_AFTER_MS 5000 /* still flowing this long after the other side broke: paused */
#define RESUMED_WAIT_MS 60000
#define QUERY_EVERY_MS 100

int vo_migrate_wait_post_copy_paused(VoDaemon *d, VoHvInstance *hv, bool may_pause,
                                     char **error)
{
    int64_t start = vo_now_ms();
    bool asked = false;
    for (;;) {
        VoHvMigrationProgress p = { 0 };
        int r = d->driver->migrate_query(hv, &p);
        _cleanup_free_ char *why = p.error;
        if (r == -ETIMEDOUT && may_pause && d->driver->migrate_pause) {
            /* Its main loop blocked (a destination running the guest,
             * waiting for a page the broken link does not bring): the
             * pause goes out of band (refused when QEMU paused already). */
            _cleanup_free_ char *perr = NULL;
            r = d->driver->migrate_pause(hv, &perr);
            log_warn("a post-copy QEMU does not answer query-migrate (its main loop waits): "
                     "%s", r < 0 ? perr : "paused out of band");
            return 2;
        }
        if (r < 0)
            return vo_error_set(error, r, "QEMU does not answer: %s", why ? why : strerror(-r));
        if (p.status == VO_HV_MIGRATION_COMPLETED)
            return 1;
        if (p.post_copy_paused)
            return 0;
        if (p.status != VO_HV_MIGRATION_ACTIVE || !p.post_copy)
            return vo_error_set(error, -EIO, "the migration is %s, not in post-copy",
                                vo_hv_migration_status_to_string(p.status));
        int64_t waited = vo_now_ms() - start;
        /* This side has not seen the link break (the other side has), or
         * hangs in a recovery that went nowhere: it is broken here on
         * purpose, so both can be recovered. */
        if (may_pause && !asked && waited > PAUSE_AFTER_MS &&
            d->driver->migrate_pause) {
            _cleanup_free_ char *perr = NULL;
            asked = true;
            if (d->driver->migrate_pause(hv, &perr) < 0)
                log_warn("pausing a post-copy stream its peer lost: %s", perr);
            else
                log_info("a post-copy stream its peer lost, still flowing here: paused");
        }
        if (waited > PAUSED_WAIT_MS)
            return vo_error_set(error, -ETIMEDOUT, "post-copy is not paused here after %d s",
                                PAUSED_WAIT_MS / 1000);
        (void)poll(NULL, 0, QUERY_EVERY_MS);
    }
}

/* After migrate_resume: 0 once the stream flows again (postcopy-active)
 * or completed; -errno when it broke again or never came back. */
static int wait_resumed(VoDaemon *d, VoHvInstance *hv, char **error)
{
    int64_t deadline = vo_now_ms() + RESUMED_WAIT_MS;
    for (;;) {
        VoHvMigrationProgress p = { 0 };
        int r = d->driver->migrate_query(hv, &p);
        _cleanup_free_ char *why = p.error;
        if (r < 0)
            return vo_error_set(error, r, "QEMU does not answer: %s", why ? why : strerror(-r));
        if (p.status == VO_HV_MIGRATION_COMPLETED ||
            (p.post_copy && !p.post_copy_paused && !p.post_copy_recovering))
            return 0;
        if (p.status != VO_HV_MIGRATION_ACTIVE || p.post_copy_paused)
            return vo_error_set(error, -EIO, "the resumed stream broke again (%s): %s",
                                p.post_copy_paused ? "post-copy paused"
                                                   : vo_hv_migration_status_to_string(p.status),
                                why ? why : "no reason given");
        if (vo_now_ms() > deadline)
            return vo_error_set(error, -ETIMEDOUT, "the resumed stream did not flow within "
                                "%d s", RESUMED_WAIT_MS / 1000);
        (void)poll(NULL, 0, QUERY_EVERY_MS);
    }
}

/* One recovery: both sides paused, the destination listening, this side
 * resumed there. */
static int resume_once(VoDaemon *d, VoHvInstance *hv, const char *peer_url,
                       const char *migration, const char *vm_id, char **error)
{
    int r = vo_migrate_wait_post_copy_paused(d, hv, true, error);
    if (r == 1 || r < 0)
        return r; /* 1: it completed after all */
    _cleanup_free_ char *path = vo_asprintf("/v1/migrations/incoming/%s/recover", migration);
    json_t *body = json_pack("{s:s}", "vm", vm_id), *answer = NULL;
    r = vo_migrate_peer_call(d, peer_url, "POST", path, body, &answer, error);
    json_decref(body);
    const char *uri = json_string_value(json_object_get(answer, "uri"));
    if (r >= 0 && !uri)
        r = vo_error_set(error, -EPROTO, "the destination named no address to resume to");
    if (r >= 0)
        r = d->driver->migrate_resume(hv, uri, error);
    json_decref(answer);
    return r < 0 ? r : wait_resumed(d, hv, error);
}

int vo_migrate_resume_post_copy(VoDaemon *d, VoHvInstance *hv, const char *peer_url,
                                const char *migration, const char *vm_id, const char *name,
                                int *tries_left, char **error)
{
    if (!d->driver->migrate_resume || !peer_url)
        return vo_error_set(error, -EOPNOTSUPP, "this host cannot recover a post-copy "
                            "migration");
    _cleanup_free_ char *last = NULL;
    int made = 0;
    while (*tries_left > 0) {
        (*tries_left)--;
        made++;
        free(last);
        last = NULL;
        int r = resume_once(d, hv, peer_url, migration, vm_id, &last);
        if (r >= 0) {
            log_info("vm %s: post-copy recovered: the rest of memory flows again", name);
            return 0;
        }
        if (r == -EIDRM) /* the destination runs a later start: nothing to recover */
            return vo_error_set(error, r, "%s", last);
        log_warn("vm %s: recovering post-copy failed (%d left): %s", name, *tries_left, last);
        if (*tries_left > 0)
            (void)poll(NULL, 0, RESUME_EVERY_MS);
    }
    return vo_error_set(error, -EIO, "post-copy could not be recovered in %d attempt%s (the "
                        "last: %s)", made, made == 1 ? "" : "s", last ? last : "none made");
}

int vo_migrate_resume_tries(void)
{
    return RESUME_TRIES;
}
