/* place-network-projects.c: networks of another project left out of
 * placement and DRS (see place-network-projects.h). */
#include "cluster/place-network-projects.h"

#include <string.h>

#include "util/util.h"

const char *vo_place_network_owner(const json_t *owners, const char *host_id, const char *name)
{
    if (!owners || !host_id || !name)
        return NULL;
    _cleanup_free_ char *key = vo_asprintf("%s/%s", host_id, name);
    json_t *entry = json_object_get(owners, key);
    return json_string_value(json_object_get(json_object_get(entry, "doc"), "project"));
}

bool vo_place_networks_project_ok(const json_t *owners, const char *host_id, char *const *want,
                                  const char *project)
{
    if (!project)
        project = "default";
    for (size_t i = 0; want && want[i]; i++) {
        const char *owner = vo_place_network_owner(owners, host_id, want[i]);
        if (owner && strcmp(owner, project))
            return false;
    }
    return true;
}

void vo_place_drop_foreign_networks(VoPlaceSnapshot *snap, char *const *want,
                                    const json_t *owners, const char *project)
{
    if (!project)
        project = "default";
    for (size_t i = 0; i < snap->n_hosts; i++) {
        VoPlaceHost *h = &snap->hosts[i];
        if (h->state == VO_HOST_OFFLINE) /* no record: no networks */
            continue;
        for (size_t k = 0; h->networks && h->networks[k];) {
            bool wanted = false;
            for (size_t j = 0; want && want[j] && !wanted; j++)
                wanted = !strcmp(want[j], h->networks[k]);
            const char *owner = wanted ? vo_place_network_owner(owners, h->id, h->networks[k])
                                       : NULL;
            if (!owner || !strcmp(owner, project)) {
                k++;
                continue;
            }
            free(h->networks[k]);
            memmove(&h->networks[k], &h->networks[k + 1],
                    (vo_strv_len(h->networks + k + 1) + 1) * sizeof(char *));
        }
    }
}

const char *vo_place_network_nowhere(const VoPlaceSnapshot *snap, char *const *want)
{
    /* Each host must say: an offline one (no live record) and one of an
     * older vireod (no "networks") may have it. */
    for (size_t i = 0; i < snap->n_hosts; i++)
        if (snap->hosts[i].state == VO_HOST_OFFLINE || !snap->hosts[i].networks)
            return NULL;
    if (!snap->n_hosts)
        return NULL;
    for (size_t j = 0; want && want[j]; j++) {
        char *const one[] = { want[j], NULL };
        bool somewhere = false;
        for (size_t i = 0; i < snap->n_hosts && !somewhere; i++)
            somewhere = vo_place_networks_ok(snap->hosts[i].networks, one);
        if (!somewhere)
            return want[j];
    }
    return NULL;
}
