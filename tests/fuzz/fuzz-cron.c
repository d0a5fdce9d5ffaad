/* fuzz-cron.c: libFuzzer target for the cron parser (conf/cron.c), which
 * reads what a user gives after `vireo schedule create --at`. A refusal
 * must come with a message; an accepted expression must have a value in
 * every field, and its due times (in a zone with daylight saving) must
 * be later than the instant asked about, increase, and match the fields. */
#include <string.h>
#include <time.h>

#include "conf/cron.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
    tzset();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    FUZZ_CHECK(text);
    memcpy(text, data, size);
    text[size] = '\0';
    VoCron c;
    char *err = NULL;
    int r = vo_cron_parse(text, &c, &err);
    free(text);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL && err && *err);
        free(err);
        return 0;
    }
    FUZZ_CHECK(!err);
    FUZZ_CHECK(c.minutes && c.hours && c.mdays && c.months && c.wdays);
    FUZZ_CHECK(!(c.minutes >> 60) && !(c.hours >> 24) && !(c.mdays & 1) && !(c.months & 1));
    /* Three due times from a day before the spring change of 2026. */
    time_t t = 1774699200; /* 2026-03-28 12:00 UTC */
    for (int i = 0; i < 3; i++) {
        time_t next;
        if (vo_cron_next(&c, t, &next) < 0)
            break;
        FUZZ_CHECK(next > t);
        struct tm tm;
        FUZZ_CHECK(localtime_r(&next, &tm));
        FUZZ_CHECK(c.months & (1u << (tm.tm_mon + 1)));
        t = next;
    }
    return 0;
}
