/* spec-resolved.h: for unit tests of code below the daemon (argv, layout,
 * drivers) that need a resolved VM spec: parses a spec document that names
 * volumes and images, and resolves every name into a fixed fake path
 * ("/v/POOL/NAME" for a volume, "/i/IMAGE/vmlinux" or "/i/IMAGE/initrd"). */
#pragma once

#include "conf/vm-spec.h"

/* Fails the running test on any error. */
VoVmSpec *test_spec_resolved(const char *json);
