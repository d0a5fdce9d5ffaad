/* vm-load.c: the load samples of this host's running VMs (vm-load.h). The
 * last cumulative CPU and wait times of each VM are kept here, keyed by VM
 * id, so the next sample can take the delta; entries of VMs no longer
 * running go. */
#include "daemon/vm-load.h"

#include <pthread.h>
#include <string.h>

#include "cluster/drs.h"
#include "daemon/vm-internal.h"
#include "daemon/vm-job.h"
#include "util/util.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* {vm id: {"ns": cumulative cpu ns, "wait_ns": cumulative wait ns, "at":
 * monotonic ms, "cpu", "cpu_demand", "mem_mib", "mem_source", "rss_mib"}} */
static json_t *last;

static uint64_t counter(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* The VM's instance's load, when no task holds its job lock: 1 with *ret,
 * 0 when busy or not running. */
static int sample(VoDaemon *d, VoVm *vm, VoHvLoad *ret)
{
    if (!d->driver->load || !vo_vm_job_try_brief(vm)) /* never waits: vm-job.h */
        return 0;
    /* Holding job, the instance cannot be released (vm-watch.c). */
    pthread_mutex_lock(&vm->lock);
    VoHvInstance *hv = vm->migrated_away ? NULL : vm->hv;
    pthread_mutex_unlock(&vm->lock);
    int r = hv ? d->driver->load(hv, ret) : -ESRCH;
    vo_vm_job_end_brief(vm);
    return r >= 0;
}

json_t *vo_vm_load_json(VoDaemon *d)
{
    size_t n = 0;
    VoVm **vms = vo_vms_ref_all(d, &n);

    json_t *out = json_object(), *next = json_object();
    pthread_mutex_lock(&lock);
    if (!last)
        last = json_object();
    for (size_t i = 0; i < n; i++) {
        VoVm *vm = vms[i];
        pthread_mutex_lock(&vm->lock);
        bool running = vm->hv != NULL;
        unsigned vcpus = vm->spec->vcpus;
        double cpu_limit = vm->spec->cpu_limit;
        pthread_mutex_unlock(&vm->lock);
        _cleanup_free_ char *id = vo_vm_id(vm);
        json_t *before = json_object_get(last, id);
        VoHvLoad l;
        if (running && sample(d, vm, &l)) {
            /* The counters' time, not this line's: a load that waited for
             * the balloon (up to half a second, on a QEMU its CPU limit
             * throttles) would otherwise stretch one sample's wall time
             * and shrink the next's, and the cores with them. */
            int64_t now = l.at_ms > 0 ? l.at_ms : vo_now_ms();
            /* Its first reading here (a new process: started, restarted,
             * arrived by a migration) has no delta: its cores are not
             * known, which is not 0 (the manager carries the last it knew). */
            double cpu = 0, demand = 0;
            bool sampled = false;
            if (before) {
                VoDrsCpuCounters was = { counter(before, "ns"), counter(before, "wait_ns") },
                                 is = { l.cpu_ns, l.wait_ns };
                int64_t at = json_integer_value(json_object_get(before, "at"));
                sampled = vo_drs_cpu_sample(&was, &is, now - at,
                                            vcpus, cpu_limit, &cpu, &demand);
            }
            const char *source = vo_hv_mem_source_to_string(l.mem_source);
            json_object_set_new(next, id,
                                json_pack("{s:I, s:I, s:I, s:o, s:o, s:I, s:s, s:I}", "ns",
                                          (json_int_t)l.cpu_ns, "wait_ns", (json_int_t)l.wait_ns,
                                          "at", (json_int_t)now,
                                          "cpu", sampled ? json_real(cpu) : json_null(),
                                          "cpu_demand", sampled ? json_real(demand) : json_null(),
                                          "mem_mib", (json_int_t)l.mem_used_mib, "mem_source",
                                          source ? source : "rss", "rss_mib",
                                          (json_int_t)l.rss_mib));
        } else if (running && before)
            json_object_set(next, id, before); /* busy: the last numbers stand */
        json_t *e = json_object_get(next, id);
        if (e)
            json_object_set_new(out, id,
                                json_pack("{s:O, s:O, s:O, s:O?, s:O?}", "cpu",
                                          json_object_get(e, "cpu"), "cpu_demand",
                                          json_object_get(e, "cpu_demand"), "mem_mib",
                                          json_object_get(e, "mem_mib"), "mem_source",
                                          json_object_get(e, "mem_source"), "rss_mib",
                                          json_object_get(e, "rss_mib")));
        vo_vm_unref(vm);
    }
    json_decref(last);
    last = next;
    pthread_mutex_unlock(&lock);
    free(vms);
    return out;
}
