/* migration-status.c: names of the driver's live-migration states (the
 * words the API and the docs use for VoHvMigrationStatus). */
#include "hypervisor/driver.h"

const char *vo_hv_migration_status_to_string(VoHvMigrationStatus s)
{
    static const char *const names[_VO_HV_MIGRATION_MAX] = {
        [VO_HV_MIGRATION_NONE] = "none",
        [VO_HV_MIGRATION_SETUP] = "setup",
        [VO_HV_MIGRATION_ACTIVE] = "active",
        [VO_HV_MIGRATION_COMPLETED] = "completed",
        [VO_HV_MIGRATION_FAILED] = "failed",
        [VO_HV_MIGRATION_FAILING] = "failing",
        [VO_HV_MIGRATION_CANCELLING] = "cancelling",
        [VO_HV_MIGRATION_CANCELLED] = "cancelled",
    };
    return (unsigned)s < _VO_HV_MIGRATION_MAX ? names[s] : "unknown";
}
