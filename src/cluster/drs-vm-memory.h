/* drs-vm-memory.h: the memory DRS weighs a VM by, from its host's sample
 * (the host record's vm_load entry) and its spec (docs/drs.md, "What is
 * sampled"). Pure: no I/O. */
#pragma once

#include <jansson.h>
#include <stdint.h>

/* A VM's memory measure (MiB): what its host measured ("mem_mib", where
 * "mem_source" says: the guest's use, the balloon's actual or RSS; "rss"
 * when a host of an older vireod says nothing), else its configured size
 * ("memory_mib" of spec; *ret_source "configured"): a host that published
 * no sample of it (none yet, or an older vireod's) or a sample below
 * 1 MiB. *ret_source points into load or is static. */
uint64_t vo_drs_vm_memory_measure(json_t *load, json_t *spec, const char **ret_source);
