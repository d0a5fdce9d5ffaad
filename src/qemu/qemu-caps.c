/* qemu-caps.c: host capability probing for the QEMU driver. */
#include "qemu/qemu-caps.h"

#include <fcntl.h>
#include <string.h>

#include "util/spawn.h"
#include "util/util.h"

static bool cpuinfo_has_hw_virt(const char *cpuinfo_path)
{
    _cleanup_fclose_ FILE *f = fopen(cpuinfo_path, "re");
    if (!f)
        return false;
    char line[8192];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "flags", 5))
            continue;
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        char *save = NULL;
        for (char *tok = strtok_r(colon + 1, " \t\n", &save); tok;
             tok = strtok_r(NULL, " \t\n", &save))
            if (!strcmp(tok, "vmx") || !strcmp(tok, "svm"))
                return true;
        return false; /* the first CPU's flags speak for all */
    }
    return false;
}

bool vo_qemu_kvm_usable(const char *dev_path, const char *cpuinfo_path, char **ret_reason)
{
    int fd = open(dev_path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        if (ret_reason)
            *ret_reason = vo_asprintf("%s cannot be opened: %s", dev_path, strerror(errno));
        return false;
    }
    close(fd);
    if (!cpuinfo_has_hw_virt(cpuinfo_path)) {
        if (ret_reason)
            *ret_reason = vo_asprintf("%s opens but the CPU shows neither vmx nor svm "
                                      "(a paravirtual KVM would be slower than TCG)",
                                      dev_path);
        return false;
    }
    return true;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **vo_qemu_machines_parse(const char *help_text)
{
    char **v = vo_malloc0(sizeof(char *));
    for (const char *line = help_text; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        size_t word = strcspn(line, " \t\n");
        if (word > len)
            word = len;
        size_t last = len;
        while (last > 0 && (line[last - 1] == ' ' || line[last - 1] == '\r'))
            last--;
        /* The heading ("Supported machines are:") ends with a colon. */
        bool heading = last > 0 && line[last - 1] == ':';
        if (word > 0 && !heading && line[0] != ' ' && line[0] != '\t')
            vo_strv_push(&v, strndup(line, word));
        line = end ? end + 1 : NULL;
    }
    size_t n = vo_strv_len(v), kept = 0;
    qsort(v, n, sizeof(char *), cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (kept && !strcmp(v[i], v[kept - 1]))
            free(v[i]);
        else
            v[kept++] = v[i];
    }
    v[kept] = NULL;
    return v;
}

char **vo_qemu_machines_probe(const char *binary)
{
    char *argv[] = { (char *)binary, "-machine", "help", NULL };
    _cleanup_free_ char *out = NULL;
    if (vo_spawn_wait_split(argv, 10000, &out, NULL) < 0)
        return vo_malloc0(sizeof(char *));
    return vo_qemu_machines_parse(out);
}

char *vo_qemu_version_parse(const char *version_text)
{
    static const char prefix[] = "QEMU emulator version ";
    if (!version_text || strncmp(version_text, prefix, sizeof(prefix) - 1))
        return NULL;
    const char *v = version_text + sizeof(prefix) - 1;
    /* Digits and dots: "10.0.2", "9.2.92" (a release candidate), "8.2.2". */
    size_t len = strspn(v, "0123456789.");
    if (len == 0 || v[0] == '.' || v[len - 1] == '.' || !strchr(v, '.'))
        return NULL;
    return strndup(v, len);
}

char *vo_qemu_version_probe(const char *binary)
{
    char *argv[] = { (char *)binary, "--version", NULL };
    _cleanup_free_ char *out = NULL;
    if (vo_spawn_wait_split(argv, 10000, &out, NULL) < 0)
        return NULL;
    return vo_qemu_version_parse(out);
}
