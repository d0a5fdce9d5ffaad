/* qemu-caps.c: host capability probing for the QEMU driver. */
#include "qemu/qemu-caps.h"

#include <fcntl.h>
#include <string.h>

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
