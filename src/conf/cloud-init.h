/* cloud-init.h: a VM's cloud-init settings ("cloud_init" in its spec): the
 * C struct, JSON conversion, validation, and the NoCloud seed's documents
 * (user-data, meta-data, network-config v2) rendered from them. No I/O. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum { VO_CI_NET_DEFAULT, VO_CI_NET_DHCP, VO_CI_NET_STATIC } VoCiNetMode;

#define VO_CI_MAX_KEYS 32
#define VO_CI_MAX_KEY_LEN 16384
#define VO_CI_MAX_USER_DATA (64 * 1024)
#define VO_CI_MAX_DNS 3

typedef struct {
    char *user;          /* the user cloud-init makes (sudo, no password unless hash) */
    char *password_hash; /* crypt(3) hash ("$6$...", "$y$..."), or NULL */
    char **ssh_keys;     /* strv of "TYPE BASE64 [COMMENT]", or NULL */
    char *hostname;      /* NULL: the VM's name */
    char *user_data;     /* verbatim user-data ("#cloud-config" or "#!"), or NULL */
    VoCiNetMode net;     /* DEFAULT: no network-config (cloud-init's fallback: DHCP) */
    char *address;       /* static: "IP/PREFIX" */
    char *gateway;       /* static, optional */
    char **dns;          /* static, optional strv */
} VoCloudInit;

VoCloudInit *vo_cloud_init_free(VoCloudInit *ci);
VoCloudInit *vo_cloud_init_copy(const VoCloudInit *ci);

/* Parses and validates a "cloud_init" object ({} is valid: defaults only).
 * -EINVAL with *ret_error naming the field and what to fix. */
int vo_cloud_init_from_json(json_t *o, VoCloudInit **ret, char **ret_error);
json_t *vo_cloud_init_to_json(const VoCloudInit *ci);
/* The secrets of the "cloud_init" object in a document the API shows to
 * every reader (a VM, its stored document, a backup: doc."cloud_init" or
 * doc."spec"."cloud_init"): the password hash and the user-data replaced
 * by VO_CI_HIDDEN. GET /v1/vms/{vm}/cloud-init, an admin's, shows them. */
#define VO_CI_HIDDEN "(hidden: GET /v1/vms/VM/cloud-init shows it)"
void vo_cloud_init_hide_secrets(json_t *doc);
int vo_cloud_init_validate(const VoCloudInit *ci, char **ret_error);

/* "dhcp" or "static:IP/PREFIX,gw=GW[,dns=IP[;IP...]]" (the CLI's --ci-network)
 * as the API's "network" object. */
int vo_cloud_init_network_parse(const char *s, json_t **ret, char **ret_error);
/* The ssh public keys in a file's text (an authorized_keys-style list: one
 * key a line, blank lines and # comments skipped) as a JSON array. */
int vo_cloud_init_keys_parse(const char *text, json_t **ret, char **ret_error);

typedef struct {
    char *instance_id;
    char *user_data;
    char *meta_data;
    char *network_config; /* NULL: none (cloud-init's fallback) */
} VoCloudInitSeed;

void vo_cloud_init_seed_clear(VoCloudInitSeed *s);

/* The seed of VM vm_id named vm_name whose first NIC has MAC mac (NULL: no
 * NIC). The instance-id is derived from vm_id and the documents: the same
 * settings give the same id at every start, changed settings a new one. */
int vo_cloud_init_render(const VoCloudInit *ci, const char *vm_id, const char *vm_name,
                         const char *mac, VoCloudInitSeed *ret);

/* A YAML double-quoted scalar of s (appended to *buf). */
void vo_yaml_quote(char **buf, const char *s);
