/* vm-agent.c: what vireod asks of a running VM's guest agent (the driver's
 * agent_command; QEMU's qemu-ga): what `vm show` reports of the guest (OS,
 * hostname, every IP), a command run in the guest (`vm exec`), a user's
 * password, the shutdown `vm stop` tries first, and the freeze and thaw of
 * the guest's file systems around a backup's or memory snapshot's instant.
 * Every wait is bounded; an agent that is absent or silent is reported as
 * "the guest agent does not answer", never waited on. */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "daemon/vm-internal.h"
#include "daemon/vm-job.h"
#include "qemu/qemu-agent.h"
#include "util/util.h"

/* vm show: the whole budget of its three questions. */
#define GUEST_INFO_MS 3000
/* How long show waits for the samplers to let go of the VM (a task holding
 * it is not waited for: show answers without the guest's facts). */
#define GUEST_INFO_LOCK_MS 500
/* exec: each call's bound. */
#define EXEC_CALL_MS 5000
/* Freeze waits for the guest to flush its file systems. */
#define FREEZE_MS 10000
#define THAW_MS 10000
#define SHUTDOWN_MS 3000
#define PASSWORD_MS 5000

static int agent(VoVm *vm, VoHvInstance *hv, const char *cmd, json_t *args, unsigned flags,
                 int timeout_ms, json_t **ret, char **ret_error)
{
    VoHvDriver *drv = vm->d->driver;
    if (ret)
        *ret = NULL;
    if (!drv->agent_command)
        return vo_error_set(ret_error, -ENOTCONN, "the guest agent does not answer (the %s "
                            "driver gives VMs no guest agent channel)", drv->name);
    return drv->agent_command(hv, cmd, args, flags, timeout_ms, ret, ret_error);
}

/* Takes the job lock (a brief hold, waiting at most timeout_ms for the
 * samplers, refused at once when a task holds it: daemon/vm-job.h) and
 * gives the running VM's instance (it stays while the job lock is held);
 * NULL with *ret_error when the VM is not running or busy. The caller ends
 * with vo_vm_job_end_brief when *ret_held. */
static VoHvInstance *hold_running(VoVm *vm, int timeout_ms, bool *ret_held, char **ret_error)
{
    *ret_held = false;
    if (vo_vm_job_wait_brief(vm, timeout_ms, "ask the guest agent of", ret_error) < 0)
        return NULL;
    *ret_held = true;
    pthread_mutex_lock(&vm->lock);
    VoHvInstance *hv = vm->state == VO_VM_RUNNING ? vm->hv : NULL;
    const char *state = vo_vm_state_to_string(vm->state);
    if (!hv)
        vo_error_set(ret_error, -ENOTCONN, "the guest agent does not answer: the VM is %s, "
                     "not running", state);
    pthread_mutex_unlock(&vm->lock);
    return hv;
}

/* ---- vm show -------------------------------------------------------------- */

static void copy_string(json_t *to, const char *key, json_t *from, const char *from_key)
{
    const char *s = json_string_value(json_object_get(from, from_key));
    if (s && *s)
        json_object_set_new(to, key, json_string(s));
}

static json_t *os_json(json_t *info)
{
    json_t *os = json_object();
    copy_string(os, "name", info, "name");
    copy_string(os, "pretty_name", info, "pretty-name");
    copy_string(os, "id", info, "id");
    copy_string(os, "version", info, "version");
    copy_string(os, "kernel_release", info, "kernel-release");
    copy_string(os, "kernel_version", info, "kernel-version");
    copy_string(os, "machine", info, "machine");
    return os;
}

/* Per interface (loopback left out): its MAC and every address with its
 * prefix; also every address alone in *ips. */
static json_t *interfaces_json(json_t *list, json_t *ips)
{
    json_t *out = json_array();
    size_t i;
    json_t *iface;
    json_array_foreach(list, i, iface) {
        const char *name = json_string_value(json_object_get(iface, "name"));
        if (!name || !strcmp(name, "lo"))
            continue;
        json_t *addrs = json_array();
        size_t k;
        json_t *a;
        json_array_foreach(json_object_get(iface, "ip-addresses"), k, a) {
            const char *ip = json_string_value(json_object_get(a, "ip-address"));
            if (!ip)
                continue;
            json_int_t prefix = json_integer_value(json_object_get(a, "prefix"));
            json_array_append_new(addrs, json_sprintf("%s/%lld", ip, (long long)prefix));
            json_array_append_new(ips, json_string(ip));
        }
        json_t *e = json_pack("{s:s, s:o}", "name", name, "addresses", addrs);
        copy_string(e, "mac", iface, "hardware-address");
        json_array_append_new(out, e);
    }
    return out;
}

json_t *vo_vm_guest_json(VoVm *vm)
{
    _cleanup_free_ char *error = NULL;
    bool held;
    VoHvInstance *hv = hold_running(vm, GUEST_INFO_LOCK_MS, &held, &error);
    json_t *guest = json_pack("{s:b}", "agent", 0);
    int64_t deadline = vo_now_ms() + GUEST_INFO_MS;
    json_t *info = NULL, *host = NULL, *ifaces = NULL;
    int r = hv ? 0 : -ENOTCONN;
    if (r >= 0)
        r = agent(vm, hv, "guest-get-osinfo", NULL, 0, GUEST_INFO_MS, &info, &error);
    int64_t left = deadline - vo_now_ms();
    if (r >= 0)
        r = agent(vm, hv, "guest-get-host-name", NULL, 0, left > 1 ? (int)left : 1, &host,
                  &error);
    left = deadline - vo_now_ms();
    if (r >= 0)
        r = agent(vm, hv, "guest-network-get-interfaces", NULL, 0, left > 1 ? (int)left : 1,
                  &ifaces, &error);
    if (held)
        vo_vm_job_end_brief(vm);
    if (r >= 0) {
        json_t *ips = json_array();
        json_object_set_new(guest, "agent", json_true());
        json_object_set_new(guest, "os", os_json(info));
        copy_string(guest, "hostname", host, "host-name");
        json_object_set_new(guest, "interfaces", interfaces_json(ifaces, ips));
        json_object_set_new(guest, "ips", ips);
    } else
        json_object_set_new(guest, "reason", json_string(error ? error : strerror(-r)));
    json_decref(info);
    json_decref(host);
    json_decref(ifaces);
    return guest;
}

/* ---- vm exec -------------------------------------------------------------- */

/* A guest stream ("out-data"/"err-data", base64) as "stdout"/"stderr":
 * text when it is UTF-8, else base64 under NAME_base64. */
static void put_stream(json_t *result, const char *name, json_t *status, const char *key)
{
    const char *b64 = json_string_value(json_object_get(status, key));
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    if (!b64 || vo_qemu_agent_b64_decode(b64, &data, &len) < 0) {
        json_object_set_new(result, name, json_string(""));
        return;
    }
    json_t *text = json_stringn(data, len);
    if (text) {
        json_object_set_new(result, name, text);
        return;
    }
    _cleanup_free_ char *key64 = vo_asprintf("%s_base64", name);
    json_object_set_new(result, name, json_null());
    json_object_set_new(result, key64, json_string(b64));
}

int vo_vm_exec(VoVm *vm, json_t *command, const char *input, int timeout_s, json_t **ret,
               char **ret_error)
{
    size_t n = json_array_size(command);
    if (n == 0 || !json_is_string(json_array_get(command, 0)) ||
        !*json_string_value(json_array_get(command, 0)))
        return vo_error_set(ret_error, -EINVAL, "command: give the program to run and its "
                            "arguments, e.g. [\"uname\", \"-r\"]");
    json_t *args = json_array();
    for (size_t i = 1; i < n; i++) {
        json_t *a = json_array_get(command, i);
        if (!json_is_string(a)) {
            json_decref(args);
            return vo_error_set(ret_error, -EINVAL, "command[%zu]: must be a string", i);
        }
        json_array_append(args, a);
    }
    json_t *req = json_pack("{s:O, s:o, s:b}", "path", json_array_get(command, 0), "arg", args,
                            "capture-output", 1);
    _cleanup_free_ char *input_b64 = input ? vo_qemu_agent_b64_encode(input, strlen(input)) : NULL;
    if (input_b64)
        json_object_set_new(req, "input-data", json_string(input_b64));
    bool held;
    VoHvInstance *hv = hold_running(vm, VO_VM_JOB_BRIEF_WAIT_MS, &held, ret_error);
    json_t *started = NULL, *status = NULL;
    int r = hv ? agent(vm, hv, "guest-exec", req, 0, EXEC_CALL_MS, &started, ret_error)
               : -ENOTCONN;
    json_int_t pid = json_integer_value(json_object_get(started, "pid"));
    if (r == -EIO)
        r = -EINVAL; /* the agent could not run it: the command is what to fix */
    /* The job lock is held for each call only, never across the command's
     * run: a stop, snapshot or migration of the VM need not wait for it.
     * The QEMU it started on must still be the VM's at every poll. */
    int64_t started_at = 0;
    pthread_mutex_lock(&vm->lock);
    started_at = vm->started_at;
    pthread_mutex_unlock(&vm->lock);
    VoHvInstance *first = hv;
    if (held)
        vo_vm_job_end_brief(vm);
    int64_t deadline = vo_now_ms() + (int64_t)timeout_s * 1000;
    int pause_ms = 20;
    while (r >= 0) {
        if (vo_now_ms() >= deadline) {
            r = vo_error_set(ret_error, -ETIMEDOUT, "the command still runs in the guest after "
                             "%d s (pid %lld there); give a longer timeout_s", timeout_s,
                             (long long)pid);
            break;
        }
        poll(NULL, 0, pause_ms);
        pause_ms = pause_ms * 2 > 500 ? 500 : pause_ms * 2;
        _cleanup_free_ char *busy = NULL;
        hv = hold_running(vm, VO_VM_JOB_BRIEF_WAIT_MS, &held, &busy);
        if (!hv && held) { /* stopped */
            vo_vm_job_end_brief(vm);
            r = vo_error_set(ret_error, -ENOTCONN, "the VM stopped while the command ran "
                             "(pid %lld in the guest)", (long long)pid);
            break;
        }
        if (!hv)
            continue; /* another task holds the VM: poll again after it, within the bound */
        pthread_mutex_lock(&vm->lock);
        bool same = hv == first && vm->started_at == started_at;
        pthread_mutex_unlock(&vm->lock);
        if (!same) {
            vo_vm_job_end_brief(vm);
            r = vo_error_set(ret_error, -ENOTCONN, "the VM restarted while the command ran "
                             "(pid %lld in the guest); its outcome is unknown", (long long)pid);
            break;
        }
        json_t *q = json_pack("{s:I}", "pid", pid);
        json_decref(status);
        r = agent(vm, hv, "guest-exec-status", q, 0, EXEC_CALL_MS, &status, ret_error);
        json_decref(q);
        vo_vm_job_end_brief(vm);
        if (r < 0 || json_is_true(json_object_get(status, "exited")))
            break;
    }
    json_decref(req);
    json_decref(started);
    if (r < 0) {
        json_decref(status);
        return r;
    }
    json_t *result = json_object();
    json_object_set_new(result, "exit_code",
                        json_object_get(status, "exitcode")
                            ? json_integer(json_integer_value(json_object_get(status, "exitcode")))
                            : json_null());
    json_object_set_new(result, "signal", json_object_get(status, "signal")
                                              ? json_integer(json_integer_value(
                                                    json_object_get(status, "signal")))
                                              : json_null());
    put_stream(result, "stdout", status, "out-data");
    put_stream(result, "stderr", status, "err-data");
    json_object_set_new(result, "truncated",
                        json_boolean(json_is_true(json_object_get(status, "out-truncated")) ||
                                     json_is_true(json_object_get(status, "err-truncated"))));
    json_decref(status);
    *ret = result;
    return 0;
}

int vo_vm_set_password(VoVm *vm, const char *user, const char *password, bool crypted,
                       char **ret_error)
{
    _cleanup_free_ char *b64 = vo_qemu_agent_b64_encode(password, strlen(password));
    json_t *args = json_pack("{s:s, s:s, s:b}", "username", user, "password", b64, "crypted",
                             crypted);
    bool held;
    VoHvInstance *hv = hold_running(vm, VO_VM_JOB_BRIEF_WAIT_MS, &held, ret_error);
    int r = hv ? agent(vm, hv, "guest-set-user-password", args, 0, PASSWORD_MS, NULL, ret_error)
               : -ENOTCONN;
    if (held)
        vo_vm_job_end_brief(vm);
    json_decref(args);
    if (r == -EIO)
        r = -EINVAL; /* no such user, say: the request is what to fix */
    return r;
}

/* ---- for stop, backups and snapshots (caller holds the job lock) --------- */

bool vo_vm_agent_shutdown(VoVm *vm, VoHvInstance *hv, char **ret_reason)
{
    json_t *args = json_pack("{s:s}", "mode", "powerdown");
    int r = agent(vm, hv, "guest-shutdown", args, VO_HV_AGENT_NO_REPLY, SHUTDOWN_MS, NULL,
                  ret_reason);
    json_decref(args);
    return r >= 0;
}

bool vo_vm_agent_freeze(VoVm *vm, VoHvInstance *hv, char **ret_reason)
{
    json_t *frozen = NULL;
    int r = agent(vm, hv, "guest-fsfreeze-freeze", NULL, 0, FREEZE_MS, &frozen, ret_reason);
    json_decref(frozen);
    if (r < 0) {
        /* A freeze that failed or timed out may have frozen some file
         * systems (or still be freezing): thaw, as always. */
        vo_vm_agent_thaw(vm, hv);
        return false;
    }
    return true;
}

void vo_vm_agent_thaw(VoVm *vm, VoHvInstance *hv)
{
    _cleanup_free_ char *error = NULL;
    if (agent(vm, hv, "guest-fsfreeze-thaw", NULL, 0, THAW_MS, NULL, &error) < 0) {
        _cleanup_free_ char *name = vo_vm_name(vm);
        log_warn("vm %s: thaw of the guest's file systems: %s", name, error);
    }
}
