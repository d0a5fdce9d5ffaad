/* fence-state.c: the fence's shared files and pure decisions (fence-state.h). */
#include "fence/fence-state.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/spawn.h"
#include "util/util.h"

int64_t vo_fence_confirmed_until(int64_t t0_ms, int ttl_ms, int margin_ms)
{
    return t0_ms + ttl_ms - margin_ms;
}

bool vo_fence_expired(int64_t now_ms, int64_t confirmed_until)
{
    return confirmed_until > 0 && now_ms >= confirmed_until;
}

bool vo_fence_confirmed(VoFenceLease *s, int64_t lease, int64_t t0_ms, int64_t now_ms)
{
    int64_t until = vo_fence_confirmed_until(t0_ms, VO_FENCE_TTL_MS, VO_FENCE_MARGIN_MS);
    if (s->confirmed_until > 0 && s->lease == lease) {
        if (until > s->confirmed_until)
            s->confirmed_until = until;
        return true;
    }
    s->lease = lease;
    s->confirmed_until = until - now_ms >= now_ms - t0_ms ? until : 0;
    return s->confirmed_until > 0;
}

bool vo_fence_lost(VoFenceLease *s)
{
    bool armed = s->confirmed_until > 0;
    *s = (VoFenceLease){ 0 };
    return armed;
}

bool vo_fence_state_plausible(int64_t now_ms, int64_t confirmed_until, int ttl_ms)
{
    return confirmed_until - now_ms <= ttl_ms;
}

int vo_fence_state_confirmed(const char *path, int64_t now_ms, int64_t *ret_lease)
{
    int64_t lease = 0, until = 0;
    if (vo_fence_state_read(path, &lease, &until) < 0 || now_ms >= until ||
        !vo_fence_state_plausible(now_ms, until, VO_FENCE_TTL_MS))
        return -ENOENT;
    *ret_lease = lease;
    return 0;
}

int vo_fence_state_write(const char *path, int64_t lease, int64_t confirmed_until)
{
    char text[128];
    int n = snprintf(text, sizeof(text), "{\"lease\": %lld, \"confirmed_until\": %lld}\n",
                     (long long)lease, (long long)confirmed_until);
    return vo_write_run_file_atomic(path, text, (size_t)n);
}

int vo_fence_state_read(const char *path, int64_t *ret_lease, int64_t *ret_confirmed_until)
{
    _cleanup_free_ char *text = NULL;
    int r = vo_read_file(path, 4096, &text, NULL);
    if (r < 0)
        return r;
    json_t *doc = json_loads(text, 0, NULL);
    json_t *lease = json_object_get(doc, "lease"), *until = json_object_get(doc, "confirmed_until");
    r = json_is_integer(lease) && json_is_integer(until) && json_integer_value(lease) > 0 ? 0
                                                                                           : -EINVAL;
    if (r == 0) {
        *ret_lease = json_integer_value(lease);
        *ret_confirmed_until = json_integer_value(until);
    }
    json_decref(doc);
    return r;
}

/* /proc/PID/cmdline as a malloc'd buffer of NUL-separated arguments; NULL
 * for a zombie (empty) or a gone process. */
static char *read_cmdline(pid_t pid, size_t *ret_len)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    char *buf = NULL;
    size_t len = 0;
    if (pid <= 0 || vo_read_file(path, 1 << 20, &buf, &len) < 0 || len == 0) {
        free(buf);
        return NULL;
    }
    *ret_len = len;
    return buf;
}

bool vo_fence_cmdline_has(pid_t pid, const char *arg, bool substring)
{
    size_t len = 0;
    _cleanup_free_ char *buf = read_cmdline(pid, &len);
    if (!buf)
        return false;
    for (size_t off = 0; off < len; off += strlen(buf + off) + 1) {
        const char *a = buf + off;
        if (substring ? strstr(a, arg) != NULL : !strcmp(a, arg))
            return true;
    }
    return false;
}

bool vo_fence_cmdline_is(pid_t pid, const char *exe)
{
    size_t len = 0;
    _cleanup_free_ char *buf = read_cmdline(pid, &len);
    if (!buf)
        return false;
    const char *slash = strrchr(buf, '/');
    return !strcmp(slash ? slash + 1 : buf, exe);
}

static int read_pid(const char *path, pid_t *ret)
{
    _cleanup_free_ char *text = NULL;
    int r = vo_read_file(path, 64, &text, NULL);
    if (r < 0)
        return r;
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || v <= 0 || v > 0x3fffffff || (*end && *end != '\n'))
        return -EINVAL;
    *ret = (pid_t)v;
    return 0;
}

int vo_fence_pid_check(const char *pidfile, const char *exe, const char *arg, pid_t *ret_pid)
{
    pid_t pid = 0;
    int r = read_pid(pidfile, &pid);
    if (r < 0)
        return r;
    if (!vo_fence_cmdline_is(pid, exe) || (arg && !vo_fence_cmdline_has(pid, arg, false)))
        return -ESRCH;
    *ret_pid = pid;
    return 0;
}

int vo_fence_pid_write(const char *pidfile, pid_t pid)
{
    char text[32];
    int n = snprintf(text, sizeof(text), "%d\n", (int)pid);
    return vo_write_file_atomic(pidfile, text, (size_t)n);
}

/* A VM id as a file name: no slash, no dot file. */
static bool id_ok(const char *id)
{
    return id && *id && *id != '.' && !strchr(id, '/');
}

int vo_fence_ha_write(const char *run_dir, const char *vm_id, pid_t pid)
{
    if (!id_ok(vm_id) || pid <= 0)
        return -EINVAL;
    _cleanup_free_ char *dir = vo_asprintf("%s/" VO_FENCE_HA_DIR, run_dir);
    int r = vo_mkdir_p(dir, 0750);
    if (r < 0)
        return r;
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, vm_id);
    return vo_fence_pid_write(path, pid);
}

int vo_fence_ha_remove(const char *run_dir, const char *vm_id)
{
    if (!id_ok(vm_id))
        return -EINVAL;
    _cleanup_free_ char *path = vo_asprintf("%s/" VO_FENCE_HA_DIR "/%s", run_dir, vm_id);
    return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int vo_fence_post_copy_mark(const char *run_dir, const char *vm_id, const char *to, pid_t pid)
{
    if (!id_ok(vm_id) || !to || pid < 0)
        return -EINVAL;
    _cleanup_free_ char *dir = vo_asprintf("%s/" VO_FENCE_POST_COPY_DIR, run_dir);
    int r = vo_mkdir_p(dir, 0750);
    if (r < 0)
        return r;
    json_t *doc = json_pack("{s:s, s:i}", "to", to, "pid", (int)pid);
    _cleanup_free_ char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, vm_id);
    return text ? vo_write_file_atomic(path, text, strlen(text)) : -ENOMEM;
}

int vo_fence_post_copy_unmark(const char *run_dir, const char *vm_id)
{
    if (!id_ok(vm_id))
        return -EINVAL;
    _cleanup_free_ char *path = vo_asprintf("%s/" VO_FENCE_POST_COPY_DIR "/%s", run_dir, vm_id);
    return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

int vo_fence_post_copy_marked(const char *run_dir, const char *vm_id, pid_t pid, char **ret_to)
{
    if (!id_ok(vm_id))
        return 0;
    _cleanup_free_ char *path = vo_asprintf("%s/" VO_FENCE_POST_COPY_DIR "/%s", run_dir, vm_id);
    _cleanup_free_ char *text = NULL;
    if (vo_read_file(path, 4096, &text, NULL) < 0)
        return 0;
    /* Kept only when the mark is readable and names this very QEMU: a
     * QEMU kept in doubt (a mark unread, or one a dead vireod left for an
     * earlier QEMU of the VM) may be a running HA guest the manager starts
     * elsewhere, which the HA rule forbids; one ended in doubt loses at
     * most this guest's run. */
    json_t *doc = json_loads(text, 0, NULL);
    const char *to = json_string_value(json_object_get(doc, "to"));
    json_t *mark_pid = json_object_get(doc, "pid");
    bool ours = to && json_is_integer(mark_pid) &&
                (pid < 0 || json_integer_value(mark_pid) == (json_int_t)pid);
    if (ours && ret_to)
        *ret_to = vo_strdup(to);
    json_decref(doc);
    return ours ? 1 : 0;
}

static bool names_vm(pid_t pid, void *vm_id)
{
    return vo_fence_cmdline_has(pid, vm_id, true);
}

json_t *vo_fence_kill_ha(const char *run_dir)
{
    json_t *out = json_array();
    _cleanup_free_ char *dir = vo_asprintf("%s/" VO_FENCE_HA_DIR, run_dir);
    DIR *dh = opendir(dir);
    if (!dh)
        return out;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (!id_ok(e->d_name) || strstr(e->d_name, ".tmp."))
            continue;
        _cleanup_free_ char *path = vo_asprintf("%s/%s", dir, e->d_name);
        pid_t pid = 0;
        if (read_pid(path, &pid) < 0)
            continue;
        if (vo_fence_post_copy_marked(run_dir, e->d_name, pid, NULL)) {
            json_array_append_new(out, json_pack("{s:s, s:i, s:b, s:s}", "vm", e->d_name, "pid",
                                                 (int)pid, "killed", false, "kept",
                                                 "post-copy source"));
            continue;
        }
        /* QEMU's command line names the VM (its run dir, -name): a pid
         * reused by another process is left alone (checked and signalled
         * through one pidfd: no reuse in between either). */
        int pidfd = vo_pidfd_open_if(pid, names_vm, e->d_name);
        bool killed = pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) == 0;
        if (pidfd >= 0)
            close(pidfd);
        json_array_append_new(out, json_pack("{s:s, s:i, s:b}", "vm", e->d_name, "pid", (int)pid,
                                             "killed", killed));
    }
    closedir(dh);
    return out;
}

void vo_fence_merge_killed(json_t *vms, const char *previous)
{
    json_t *doc = previous ? json_loads(previous, 0, NULL) : NULL;
    size_t i, k;
    json_t *old, *now;
    json_array_foreach(json_object_get(doc, "vms"), i, old) {
        const char *id = json_string_value(json_object_get(old, "vm"));
        if (!id || !json_is_true(json_object_get(old, "killed")))
            continue;
        bool named = false;
        json_array_foreach(vms, k, now)
            named = named || !strcmp(json_string_value(json_object_get(now, "vm")) ?: "", id);
        if (!named)
            json_array_append(vms, old);
    }
    json_decref(doc);
}

bool vo_fence_fenced_clear(const char *path, int64_t lost)
{
    /* Taken aside first, then looked at: a fencing that comes meanwhile
     * writes a new file (temp + rename), which is not the one removed. */
    _cleanup_free_ char *aside = vo_asprintf("%s.clearing", path);
    if (rename(path, aside) < 0)
        return false;
    _cleanup_free_ char *text = NULL;
    json_t *doc = vo_read_file(aside, 1 << 20, &text, NULL) == 0 ? json_loads(text, 0, NULL)
                                                                  : NULL;
    bool same = json_integer_value(json_object_get(doc, "lease")) == lost;
    json_decref(doc);
    if (!same && link(aside, path) < 0 && errno != EEXIST)
        log_warn("cannot put %s back: %s", path, strerror(errno));
    (void)unlink(aside);
    return same;
}

char **vo_fence_fenced_killed(const char *path)
{
    _cleanup_free_ char *text = NULL;
    json_t *doc = vo_read_file(path, 1 << 20, &text, NULL) == 0 ? json_loads(text, 0, NULL) : NULL;
    json_t *vms = json_object_get(doc, "vms");
    char **ids = vo_malloc0(sizeof(char *) * (json_array_size(vms) + 1));
    size_t n = 0, i;
    json_t *v;
    json_array_foreach(vms, i, v) {
        const char *id = json_string_value(json_object_get(v, "vm"));
        if (id && json_is_true(json_object_get(v, "killed")))
            ids[n++] = vo_strdup(id);
    }
    json_decref(doc);
    return ids;
}
