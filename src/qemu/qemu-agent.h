/* qemu-agent.h: a client of QEMU's guest agent (qemu-ga), which answers on
 * the VM's virtio-serial channel org.qemu.guest_agent.0, a Unix socket in
 * the run dir. A session is one connection, brought in step with the agent
 * by guest-sync-delimited (0xFF to reset its parser, a random id, and the
 * reply found after the agent's own 0xFF, older replies skipped); then one
 * command at a time, each with a deadline. An agent that is absent (nothing
 * in the guest reads the port) or silent times out: never a hang. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VO_QEMU_AGENT_PORT "org.qemu.guest_agent.0"
#define VO_QEMU_AGENT_SOCKET "agent.sock"

/* Longest reply line taken from the agent (guest-exec output is base64). */
#define VO_QEMU_AGENT_MAX_LINE (8u << 20)

typedef struct VoQemuAgent VoQemuAgent;

/* The command answers nothing when it succeeds (guest-shutdown): only an
 * error that arrives before the deadline is reported. */
#define VO_QEMU_AGENT_NO_REPLY 1u

/* Opens a session on a connected socket (taken: closed on failure too),
 * synchronised before deadline_ms (vo_now_ms clock). -ETIMEDOUT when the
 * agent did not answer, -ECONNRESET when the socket closed, -EPROTO on a
 * reply that is not the agent's; *ret_error says so. */
int vo_qemu_agent_open_fd(int fd, int64_t deadline_ms, VoQemuAgent **ret, char **ret_error);
/* The same after connecting to the socket at path. */
int vo_qemu_agent_open(const char *path, int64_t deadline_ms, VoQemuAgent **ret,
                       char **ret_error);

/* Runs cmd with args (borrowed, may be NULL); *ret (may be NULL) gets the
 * "return" value. The agent's own error is -EIO with its description; a
 * session that timed out or broke is out of step and must be closed. */
int vo_qemu_agent_call(VoQemuAgent *a, const char *cmd, json_t *args, unsigned flags,
                       int64_t deadline_ms, json_t **ret, char **ret_error);

/* Whether the session may take another command (no timeout or broken
 * stream so far). */
bool vo_qemu_agent_usable(const VoQemuAgent *a);

void vo_qemu_agent_close(VoQemuAgent *a);

/* Base64 (RFC 4648, padded) as the agent's data fields use it: encode
 * gives a malloc'd string; decode a malloc'd buffer (NUL-terminated, its
 * length in *ret_len) or -EINVAL on a character or length base64 has not. */
char *vo_qemu_agent_b64_encode(const void *data, size_t len);
int vo_qemu_agent_b64_decode(const char *text, char **ret, size_t *ret_len);
