/* held-write.h: for unit tests of a write that must not lose another
 * writer's change (daemon/settings-put.h): runs the write on a thread held
 * at its hold point between its read and its write, makes the other
 * writer's change meanwhile, then lets it go on; and the fixture those
 * tests share, a daemon on a SQLite store of its own. */
#pragma once

#include <stdbool.h>

#include "cluster/cluster-config.h"
#include "daemon/daemon.h"
#include "state/store.h"

typedef struct {
    char dir[64];
    VoStore *store;
    VoClusterConfig cluster;
    VoDaemon d;
} SettingsFixture;

/* cmocka setup: *state a SettingsFixture whose daemon's store is a SQLite
 * store in a new directory /tmp/vireo-test-NAME-XXXXXX; with cluster, the
 * same store stands in for the cluster's (etcd: the same contract) and the
 * daemon is in a cluster. */
int settings_fixture_setup(void **state, const char *name, bool cluster);
/* cmocka teardown of settings_fixture_setup (the fault variables unset). */
int settings_fixture_teardown(void **state);

/* Runs write(arg) on a thread, waits until it is held at hold point hold
 * ($VIREO_FAKE_FAULTS=dir), puts value at key (no condition: the other
 * writer), releases the thread and returns what write returned (an int).
 * Fails the running test when the hold is never reached or the put fails. */
int test_held_write(const char *dir, const char *hold, void *(*write)(void *), void *arg,
                    VoStore *store, const char *key, const char *value);
