/* names.h: the rules every user-chosen name (VM, image, later pool, volume,
 * network, snapshot) follows, and id generation. */
#pragma once

#include <stdbool.h>

#define VO_NAME_MAX 63

/* 1..63 chars of [a-z0-9-], not starting with '-'. Such a name can never
 * escape a directory (no '/', no '.', no '..'). */
bool vo_name_valid(const char *name);

/* A random RFC 4122 version-4 UUID string (37 bytes with the NUL). */
int vo_uuid_generate(char ret[37]);
bool vo_uuid_valid(const char *s);
