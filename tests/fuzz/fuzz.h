/* fuzz.h: what every libFuzzer target in tests/fuzz shares: quiet logging,
 * a fixed jansson hash seed (so that a run is reproducible), and a check
 * that aborts with a message (libFuzzer then saves the input as a crash). */
#pragma once

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static inline void fuzz_setup(void)
{
    vo_log_set_level(VO_LOG_ERROR);
    json_object_seed(1);
}

#define FUZZ_CHECK(cond)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* Aborts unless a and b are equal JSON (printing both). */
static inline void fuzz_check_json_equal(json_t *a, json_t *b, const char *what)
{
    if (json_equal(a, b))
        return;
    char *sa = json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS);
    char *sb = json_dumps(b, JSON_COMPACT | JSON_SORT_KEYS);
    fprintf(stderr, "%s differs:\n  %s\n  %s\n", what, sa ? sa : "(null)", sb ? sb : "(null)");
    abort();
}
