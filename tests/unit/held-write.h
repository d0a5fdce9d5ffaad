/* held-write.h: for unit tests of a write that must not lose another
 * writer's change (daemon/settings-put.h): runs the write on a thread held
 * at its hold point between its read and its write, makes the other
 * writer's change meanwhile, then lets it go on. */
#pragma once

#include "state/store.h"

/* Runs write(arg) on a thread, waits until it is held at hold point hold
 * ($VIREO_FAKE_FAULTS=dir), puts value at key (no condition: the other
 * writer), releases the thread and returns what write returned (an int).
 * Fails the running test when the hold is never reached or the put fails. */
int test_held_write(const char *dir, const char *hold, void *(*write)(void *), void *arg,
                    VoStore *store, const char *key, const char *value);
