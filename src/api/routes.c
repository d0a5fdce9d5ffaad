/* routes.c: the REST route table with its handlers; the routes themselves are
 * listed once, in routes.def. */
#include "api/handlers.h"
#include "util/util.h"

#define VO_ROUTE(method, pattern, fn) { method, pattern, fn, NULL },
#define VO_UPLOAD(method, pattern, fn, prepare) { method, pattern, fn, prepare },

const VoRoute vo_routes[] = {
#include "api/routes.def"
};
const size_t vo_n_routes = ELEMENTSOF(vo_routes);
