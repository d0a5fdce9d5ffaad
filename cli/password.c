/* password.c: passwords the CLI reads (`user create|passwd --password-file`,
 * `--ci-password-file`): from a file or standard input, or asked twice on
 * the terminal without echo; and the crypt(3) hash of a guest's password,
 * made here so that vireod never sees the password itself. */
#include <crypt.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "util/util.h"

char *cli_read_password(const char *option, const char *file)
{
    char buf[1100] = "";
    if (file) {
        FILE *f = !strcmp(file, "-") ? stdin : fopen(file, "re");
        if (!f) {
            cli_error("%s %s: %m", option, file);
            return NULL;
        }
        bool ok = fgets(buf, sizeof(buf), f) != NULL;
        if (f != stdin)
            fclose(f);
        buf[strcspn(buf, "\r\n")] = '\0';
        if (!ok || !buf[0]) {
            cli_error("%s %s: empty (the password is its first line)", option, file);
            return NULL;
        }
        return vo_strdup(buf);
    }
    FILE *tty = fopen("/dev/tty", "r+e");
    if (!tty) {
        cli_error("no terminal to ask the password on: use %s FILE (or - for standard input)",
                  option);
        return NULL;
    }
    struct termios old, quiet;
    bool echo_off = tcgetattr(fileno(tty), &old) == 0;
    char again[sizeof(buf)] = "";
    if (echo_off) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
    }
    fputs("Password: ", tty);
    fflush(tty);
    bool ok = fgets(buf, sizeof(buf), tty) != NULL;
    fputs("\nAgain: ", tty);
    fflush(tty);
    ok = ok && fgets(again, sizeof(again), tty) != NULL;
    fputs("\n", tty);
    if (echo_off)
        tcsetattr(fileno(tty), TCSAFLUSH, &old);
    fclose(tty);
    buf[strcspn(buf, "\r\n")] = '\0';
    again[strcspn(again, "\r\n")] = '\0';
    if (!ok || strcmp(buf, again) != 0) {
        cli_error("the passwords differ; nothing changed");
        explicit_bzero(buf, sizeof(buf));
        explicit_bzero(again, sizeof(again));
        return NULL;
    }
    explicit_bzero(again, sizeof(again));
    char *pw = vo_strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    return pw;
}

char *cli_crypt_password(const char *password)
{
    /* SHA-512 crypt: every Linux guest's libc verifies it (yescrypt only
     * newer ones); the salt from the system's random source. */
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$6$", 0, NULL, 0, salt, sizeof(salt))) {
        cli_error("cannot make a salt for the password hash: %m");
        return NULL;
    }
    struct crypt_data data;
    memset(&data, 0, sizeof(data));
    const char *hash = crypt_rn(password, salt, &data, sizeof(data));
    char *out = hash && hash[0] != '*' ? vo_strdup(hash) : NULL;
    explicit_bzero(&data, sizeof(data));
    if (!out)
        cli_error("cannot hash the password: %m");
    return out;
}
