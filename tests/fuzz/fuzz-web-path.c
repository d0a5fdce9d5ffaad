/* fuzz-web-path.c: libFuzzer target for the web UI's path check
 * (util/web-path.c). The input is a raw request URI; the properties
 * checked: a path accepted names a file below the UI's directory (no ".",
 * ".." or empty segment, no segment starting with '.', no backslash,
 * percent-escape or control byte, not absolute), and only /ui/ paths are. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/web-path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *uri = malloc(size + 1);
    if (!uri)
        return 0;
    memcpy(uri, data, size);
    uri[size] = '\0';
    char *rel = NULL;
    if (vo_web_file_of(uri, &rel) == 0) {
        if (strncmp(uri, "/ui/", 4) != 0 || !vo_web_is_ui_path(uri) || rel[0] == '/' ||
            rel[0] == '.' || strstr(rel, "/.") || strstr(rel, "//") || strchr(rel, '\\') ||
            strchr(rel, '%') || strchr(rel, '?'))
            abort();
        for (const char *p = rel; *p; p++)
            if ((unsigned char)*p < 0x20)
                abort();
        (void)vo_web_content_type(rel);
        free(rel);
    }
    free(uri);
    return 0;
}
