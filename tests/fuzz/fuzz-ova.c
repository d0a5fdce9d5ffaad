/* fuzz-ova.c: libFuzzer target for the OVA (tar) reader (storage/ova.c),
 * the first code to see an untrusted OVA: the input is the whole file (a
 * memfd). What opens must hold to what the import relies on (members with
 * plain names, each once, within the file; a descriptor of at most 1 MiB);
 * what does not must say why. Members are not digested: a 1 MiB buffer
 * and two digests per member made each input 50 times slower. */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf/vm-import.h"
#include "fuzz.h"
#include "storage/ova.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("ova", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0);
    for (size_t done = 0; done < size;) {
        ssize_t k = write(fd, data + done, size - done);
        FUZZ_CHECK(k > 0);
        done += (size_t)k;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    VoOva ova;
    char *error = NULL;
    int r = vo_ova_open(path, &ova, &error);
    close(fd);
    if (r < 0) {
        FUZZ_CHECK(r == -EINVAL && error);
        free(error);
        return 0;
    }
    FUZZ_CHECK(!error && ova.ovf && ova.ovf_len <= 1024 * 1024 && ova.ovf_name);
    FUZZ_CHECK(strlen(ova.ovf) <= ova.ovf_len);
    for (size_t i = 0; i < ova.n_members; i++) {
        const VoOvaMember *m = &ova.members[i];
        FUZZ_CHECK(vo_import_file_name_valid(m->name) && vo_ova_find(&ova, m->name) == m);
        FUZZ_CHECK(m->offset <= size && m->size <= size - m->offset);
    }
    vo_ova_close(&ova);
    return 0;
}
