/* import-xml.h: the small libxml2 helpers the OVF and libvirt XML parsers
 * share (conf/import-plan.c): safe parsing of an untrusted document, child
 * lookup by local name (namespaces vary between exporters), bounded text. */
#pragma once

#include <libxml/tree.h>
#include <stdint.h>

#include "conf/vm-import.h"
#include "util/util.h"

/* Parses xml (at most VO_IMPORT_MAX_XML_BYTES) with no network, no entity
 * substitution and no DTD loading; NULL with *ret_error when it is not XML. */
xmlDoc *vo_import_xml_read(const char *xml, size_t len, const char *what, char **ret_error);
/* First element child of node named name (local name), or NULL. */
xmlNode *vo_import_xml_child(const xmlNode *node, const char *name);
/* The next element sibling after node with the same local name. */
xmlNode *vo_import_xml_next(const xmlNode *node);
/* The text of node (malloc'd, trimmed; NULL when none or over 4 KiB). */
char *vo_import_xml_text(const xmlNode *node);
/* The text of child name of node (as vo_import_xml_text). */
char *vo_import_xml_child_text(const xmlNode *node, const char *name);
/* Attribute by local name, any namespace (malloc'd, NULL when absent). */
char *vo_import_xml_attr(const xmlNode *node, const char *name);
/* A decimal unsigned integer, whole string; -EINVAL otherwise. */
int vo_import_parse_u64(const char *s, uint64_t *ret);
/* Bytes per unit for an OVF allocation unit ("byte * 2^20", "MegaBytes",
 * "byte * 1024") or a libvirt unit ("KiB", "M", "GiB", ...); 0 when unknown. */
uint64_t vo_import_unit_bytes(const char *unit);
/* value * unit / per, refused (-ERANGE) on overflow. */
int vo_import_scale(uint64_t value, uint64_t unit, uint64_t per, uint64_t *ret);
/* The memory a descriptor states: value (decimal) in unit (NULL: bare_unit
 * bytes) as MiB, 1 MiB..VO_IMPORT_MAX_MEMORY_MIB; else -EINVAL with
 * *ret_error naming both ("WHAT: memory ..."). */
int vo_import_memory(const char *what, const char *value, const char *unit, uint64_t bare_unit,
                     const char *bare_unit_name, uint64_t *ret_mib, char **ret_error);
/* Adds a warning to p (at most VO_IMPORT_MAX_WARNINGS; then one saying
 * that more were left out). */
#define VO_IMPORT_MAX_WARNINGS 64
void vo_import_warn(VoImportPlan *p, const char *fmt, ...) _printf_(2, 3);
/* Appends a disk / NIC to p (bounded: -E2BIG past the maximum). */
int vo_import_plan_add_disk(VoImportPlan *p, VoImportDisk disk, char **ret_error);
int vo_import_plan_add_nic(VoImportPlan *p, VoImportNic nic, char **ret_error);
/* The checks every plan passes before it is returned: a name, 1..max
 * vCPUs, memory within bounds. */
int vo_import_plan_check(const VoImportPlan *p, const char *what, char **ret_error);
