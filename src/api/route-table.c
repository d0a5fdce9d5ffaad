/* route-table.c: methods and patterns of the REST routes (routes.def) without
 * their handlers, for the route matcher and the fuzz target. Same order as
 * vo_routes[] in routes.c. */
#include "api/route-match.h"

#define VO_ROUTE(method, pattern, fn) { method, pattern },
#define VO_UPLOAD(method, pattern, fn, prepare) { method, pattern },

const VoRouteSpec vo_route_specs[] = {
#include "api/routes.def"
};
const size_t vo_n_route_specs = sizeof(vo_route_specs) / sizeof(vo_route_specs[0]);
