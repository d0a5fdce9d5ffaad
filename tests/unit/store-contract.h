/* store-contract.h: the contract every store backend (store.h) must keep, as
 * one cmocka group that runs against any backend: SQLite today
 * (test-store.c), etcd later. */
#pragma once

#include "state/store.h"

typedef struct {
    const char *name;
    /* Opens a fresh, empty store (0 or -errno). */
    int (*open)(void *userdata, VoStore **ret);
    /* Closes one opened by open and removes what it left behind. */
    void (*close)(void *userdata, VoStore *s);
    void *userdata;
} VoStoreBackend;

/* Runs every contract test on the backend; returns the number of failures. */
int vo_store_contract_run(const VoStoreBackend *backend);
