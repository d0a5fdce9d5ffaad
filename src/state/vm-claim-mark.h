/* vm-claim-mark.h: the mark a live migration's destination writes in the
 * VM's document when it claims the VM (docs/internals.md, "The claim
 * mark"): top-level "claimed_in": the migration's id. A source whose QEMU
 * runs the guest again after the switch takes the VM back only from a
 * document without its migration's mark: the source's own settling
 * rewrites the document unchanged (no mark), the destination's claim
 * marks it, and every later save there keeps the mark. */
#pragma once

#include <stdbool.h>

#define VO_VM_CLAIMED_IN_FIELD "claimed_in"

/* The VM document text marked as claimed in migration (a new string), or
 * NULL when text is no JSON object. */
char *vo_vm_doc_claim_mark(const char *text, const char *migration);

/* Whether the VM document text carries migration's claim mark. */
bool vo_vm_doc_claimed_in(const char *text, const char *migration);
