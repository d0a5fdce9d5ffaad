/* web-path.h: the pure parts of serving the web UI's files (api/web-files.c):
 * which request paths are the UI's, the file a path names inside the UI's
 * directory (never outside it), and the Content-Type of a file name. */
#pragma once

#include <stdbool.h>

/* The UI's paths: "/" (sent on to /ui/), "/ui" and everything under "/ui/". */
bool vo_web_is_ui_path(const char *raw_uri);

/* The file raw_uri names, relative to the UI's directory ("index.html" for
 * "/ui/"; a query string is ignored), malloc'd in *ret. -EINVAL for a path
 * that could leave the directory or name a hidden file: any "." or ".."
 * segment, an empty segment, a segment starting with '.', a backslash, a
 * percent-escape (the UI's own file names need none), a control byte. */
int vo_web_file_of(const char *raw_uri, char **ret);

/* The Content-Type of a file by its name's extension
 * (application/octet-stream when unknown). */
const char *vo_web_content_type(const char *name);
