/* loop.h: vireod's event loop: one thread, epoll, owning every event-driven fd
 * (QEMU pidfds, console sockets, console clients). Other threads never touch
 * those sources directly; they hand work to the loop with vo_loop_call.
 * Nothing on the loop may block: its fds are non-blocking, and slow work
 * (waiting for a process, a file to appear) belongs to a thread. */
#pragma once

#include <stdint.h>

typedef struct VoLoop VoLoop;
typedef void (*VoLoopFdFn)(int fd, uint32_t events, void *userdata);
typedef void (*VoLoopCallFn)(void *userdata);

int vo_loop_new(VoLoop **ret);
VoLoop *vo_loop_free(VoLoop *l);

/* Loop thread only. */
int vo_loop_add_fd(VoLoop *l, int fd, uint32_t events, VoLoopFdFn fn, void *userdata);
/* Changes what fd is watched for (EPOLLIN, EPOLLOUT, ...). The watch is
 * named by fd and the userdata it was added with: a watch another owner
 * left behind on a reused fd number is never taken for it. */
int vo_loop_set_events(VoLoop *l, int fd, void *userdata, uint32_t events);
void vo_loop_remove_fd(VoLoop *l, int fd, void *userdata);

/* Any thread: run fn(userdata) on the loop thread soon. */
void vo_loop_call(VoLoop *l, VoLoopCallFn fn, void *userdata);
/* Any thread: make vo_loop_run return. */
void vo_loop_quit(VoLoop *l);

int vo_loop_run(VoLoop *l);
