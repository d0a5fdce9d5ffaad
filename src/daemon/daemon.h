/* daemon.h: the state vireod shares between its HTTP threads, task workers
 * and event loop. */
#pragma once

#include <pthread.h>

#include "conf/vm-spec.h"
#include "daemon/loop.h"
#include "hypervisor/driver.h"
#include "jobs/tasks.h"
#include "state/store.h"

typedef struct VoVm VoVm;
typedef struct VoPool VoPool;
typedef struct VoVolume VoVolume;
typedef struct VoNetwork VoNetwork;

typedef struct VoDaemon {
    char *state_dir;
    char *run_dir;
    char *socket_path;
    VoStore *store;
    VoLoop *loop;
    VoTasks *tasks;
    VoHvDriver *driver;
    VoHostLimits limits;
    pthread_mutex_t vms_lock; /* protects vms/n_vms (the registry, not the VMs) */
    VoVm **vms;
    size_t n_vms;
    pthread_mutex_t storage_lock; /* protects pools and volumes */
    VoPool **pools;
    size_t n_pools;
    VoVolume **volumes;
    size_t n_volumes;
    pthread_mutex_t networks_lock; /* protects networks and their fields */
    VoNetwork **networks;
    size_t n_networks;
} VoDaemon;
