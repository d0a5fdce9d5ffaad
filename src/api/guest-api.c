/* guest-api.c: requests answered by a running VM's guest agent: a command
 * run in the guest (POST /v1/vms/{vm}/exec) and a guest user's password
 * (POST /v1/vms/{vm}/set-password). Both answer when the guest has (or the
 * bounded wait ends): no task. */
#include <string.h>

#include "api/handlers.h"
#include "daemon/vms.h"
#include "util/util.h"

#define EXEC_DEFAULT_TIMEOUT_S 30
#define EXEC_MAX_TIMEOUT_S 600

void vo_api_vm_exec(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    json_t *command = NULL;
    const char *input = NULL;
    json_int_t timeout = EXEC_DEFAULT_TIMEOUT_S;
    if (!vm || !vo_request_unpack(req, rep, "{s:o, s?s, s?I}", "command", &command, "input",
                                  &input, "timeout_s", &timeout))
        return;
    if (!json_is_array(command)) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "command: expected an array of strings "
                       "(the program, then its arguments), e.g. [\"uname\", \"-r\"]");
        return;
    }
    if (timeout < 1 || timeout > EXEC_MAX_TIMEOUT_S) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "timeout_s: must be 1..%d",
                       EXEC_MAX_TIMEOUT_S);
        return;
    }
    json_t *result = NULL;
    _cleanup_free_ char *error = NULL;
    int r = vo_vm_exec(vm, command, input, (int)timeout, &result, &error);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        return;
    }
    vo_reply_json(rep, 200, result);
}

void vo_api_vm_set_password(VoRequest *req, VoReply *rep)
{
    _cleanup_vm_ VoVm *vm = vo_api_find_vm_for_write(req, rep);
    const char *user = NULL, *password = NULL;
    int crypted = 0;
    if (!vm || !vo_request_unpack(req, rep, "{s:s, s:s, s?b}", "user", &user, "password",
                                  &password, "crypted", &crypted))
        return;
    if (!*user || strchr(user, ':') || strchr(user, '\n')) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "user: give a user name of the guest "
                       "(no ':' or newline)");
        return;
    }
    if (!*password || strchr(password, '\n')) {
        vo_reply_error(rep, VO_ERR_INVALID_ARGUMENT, "password: must not be empty or hold a "
                       "newline");
        return;
    }
    _cleanup_free_ char *error = NULL;
    int r = vo_vm_set_password(vm, user, password, crypted, &error);
    if (r < 0) {
        vo_reply_errno(rep, r, error);
        return;
    }
    vo_reply_json(rep, 200, json_pack("{s:s, s:b}", "user", user, "set", 1));
}
