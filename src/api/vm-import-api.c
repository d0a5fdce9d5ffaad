/* vm-import-api.c: POST /v1/vm-imports: a VM from an OVA or a libvirt
 * domain XML on this host (daemon/vm-import.c); 202 with the task and what
 * the import makes (its plan, with the warnings of what is not mapped). */
#include "api/handlers.h"
#include "daemon/vm-import.h"
#include "util/util.h"

void vo_api_vm_import(VoRequest *req, VoReply *rep)
{
    VoVmImportArgs args = { 0 };
    if (!vo_request_unpack(req, rep, "{s:s, s:s, s?s, s?s, s?s, s?s, s?s}", "source",
                           &args.source, "path", &args.path, "name", &args.name, "pool",
                           &args.pool, "network", &args.network, "kernel_image",
                           &args.kernel_image, "ca", &args.ca))
        return;
    json_t *task = NULL, *plan = NULL;
    char *error = NULL;
    int r = vo_vm_import(req->d, &args, &task, &plan, &error);
    if (r < 0)
        vo_reply_task(rep, r, NULL, error);
    else {
        vo_reply_json(rep, 202, json_pack("{s:o, s:o}", "task", task, "import", plan));
        free(error);
    }
}
