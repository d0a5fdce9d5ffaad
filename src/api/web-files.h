/* web-files.h: the web UI's files on the users' HTTPS listener. */
#pragma once

#include <microhttpd.h>
#include <stdbool.h>

#include "api/http.h"

/* Whether the request is for the UI's files (GET/HEAD of "/", "/ui", "/ui/..."). */
bool vo_api_web_wants(const char *method, const char *raw_uri);
/* Fills rep: the file, a redirect to /ui/, or a 4xx error. */
void vo_api_web_file(VoDaemon *d, struct MHD_Connection *conn, const char *raw_uri,
                     VoReply *rep);
/* The UI's directory (realpath, malloc'd): option when given, else found
 * beside the binary (installed or in the build tree); NULL when none. */
char *vo_api_web_dir(const char *option, const char *argv0);
