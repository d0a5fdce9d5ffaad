/* cluster-storage.h: images and pools as a cluster shows them (see
 * cluster-storage-api.c). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "api/http.h"

/* Gives each image of images (this host's list) "hosts": the names of the
 * hosts that have it as their own (null for a shared pool's), and appends
 * the images of other hosts only (only: just that name, or NULL: all), with
 * disk, kernel and initrd null (no files here yet). 0 or the store's error. */
int vo_api_cluster_images(VoDaemon *d, json_t *images, const char *only);
/* Appends the other hosts' local pools (with "host"; sizes null: ask that
 * host), sorted by name then host. 0 or the store's error. */
int vo_api_cluster_pools(VoDaemon *d, json_t *pools);
/* Before GET /v1/pools/{pool} or GET /v1/volumes?pool=: forwards to the
 * host that has the pool (?host=NAME, or the one other host with a local
 * pool of that name when this host has none); true when rep is filled. */
bool vo_api_pool_door(VoRequest *req, VoReply *rep, const char *pool);
