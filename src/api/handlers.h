/* handlers.h: every route handler, one file per noun. */
#pragma once

#include "api/http.h"

/* Resolves the {vm} parameter (a reference to unref), or fills rep with 404. */
VoVm *vo_api_find_vm(VoRequest *req, VoReply *rep);
/* The same for a request that changes the VM: also 412 when If-Match names
 * another revision than the VM's (checked now; see vms-api.c). */
VoVm *vo_api_find_vm_for_write(VoRequest *req, VoReply *rep);

/* ETag / If-Match of a document stored under key (etag.c): its revision (0
 * when missing), and a pre-check of If-Match against it (false with rep
 * filled: 400 malformed, 412 another revision). */
int64_t vo_api_key_rev(VoDaemon *d, const char *key);
bool vo_api_if_match_key(VoRequest *req, VoReply *rep, const char *key, const char *what);

void vo_api_host_show(VoRequest *req, VoReply *rep);
void vo_api_hosts_list(VoRequest *req, VoReply *rep);
void vo_api_host_get(VoRequest *req, VoReply *rep);
/* Monitoring (metrics-api.c). */
void vo_api_vm_metrics(VoRequest *req, VoReply *rep);
void vo_api_host_metrics(VoRequest *req, VoReply *rep);
void vo_api_prometheus(VoRequest *req, VoReply *rep);
void vo_api_host_remove(VoRequest *req, VoReply *rep);
void vo_api_cluster_show(VoRequest *req, VoReply *rep);
void vo_api_cluster_init(VoRequest *req, VoReply *rep);
void vo_api_cluster_token(VoRequest *req, VoReply *rep);
void vo_api_cluster_join(VoRequest *req, VoReply *rep);
void vo_api_cluster_join_request(VoRequest *req, VoReply *rep);
void vo_api_cluster_ca(VoRequest *req, VoReply *rep);
void vo_api_cluster_leave(VoRequest *req, VoReply *rep);
/* DRS (drs-api.c). */
void vo_api_cluster_drs_show(VoRequest *req, VoReply *rep);
void vo_api_cluster_drs_set(VoRequest *req, VoReply *rep);
/* HA's restart limit (ha-settings-api.c). */
void vo_api_cluster_ha_show(VoRequest *req, VoReply *rep);
void vo_api_cluster_ha_set(VoRequest *req, VoReply *rep);
void vo_api_cluster_recommendations(VoRequest *req, VoReply *rep);
void vo_api_cluster_recommendation_apply(VoRequest *req, VoReply *rep);
void vo_api_groups_list(VoRequest *req, VoReply *rep);
void vo_api_group_create(VoRequest *req, VoReply *rep);
void vo_api_group_show(VoRequest *req, VoReply *rep);
void vo_api_group_delete(VoRequest *req, VoReply *rep);
void vo_api_placement_show(VoRequest *req, VoReply *rep);
/* Projects (projects-api.c). */
void vo_api_projects_list(VoRequest *req, VoReply *rep);
void vo_api_user_grant(VoRequest *req, VoReply *rep);  /* access-api.c */
void vo_api_user_revoke(VoRequest *req, VoReply *rep);
void vo_api_project_create(VoRequest *req, VoReply *rep);
void vo_api_project_show(VoRequest *req, VoReply *rep);
void vo_api_project_set(VoRequest *req, VoReply *rep);
void vo_api_project_delete(VoRequest *req, VoReply *rep);
/* A request's field naming project: true when it exists, else false with
 * rep filled (400 naming it). */
bool vo_api_project_named(VoRequest *req, VoReply *rep, const char *project);
void vo_api_placement_set(VoRequest *req, VoReply *rep);
void vo_api_images_list(VoRequest *req, VoReply *rep);
void vo_api_image_show(VoRequest *req, VoReply *rep);
void vo_api_tasks_list(VoRequest *req, VoReply *rep);
void vo_api_task_show(VoRequest *req, VoReply *rep);
void vo_api_task_cancel(VoRequest *req, VoReply *rep);
void vo_api_events(VoRequest *req, VoReply *rep);
/* Live migration (migrate-api.c). */
void vo_api_vm_migrate(VoRequest *req, VoReply *rep);
void vo_api_migration_prepare(VoRequest *req, VoReply *rep);
void vo_api_migration_digest(VoRequest *req, VoReply *rep);
void vo_api_migration_commit(VoRequest *req, VoReply *rep);
void vo_api_migration_abort(VoRequest *req, VoReply *rep);
void vo_api_migration_alive(VoRequest *req, VoReply *rep);
void vo_api_migration_recover(VoRequest *req, VoReply *rep);
void vo_api_migration_outgoing_resume(VoRequest *req, VoReply *rep);
void vo_api_migration_outgoing_source(VoRequest *req, VoReply *rep);
/* Cold move (move-api.c). */
void vo_api_vm_move(VoRequest *req, VoReply *rep);
void vo_api_move_incoming(VoRequest *req, VoReply *rep);
void vo_api_move_outgoing_file(VoRequest *req, VoReply *rep);
void vo_api_migration_moved(VoRequest *req, VoReply *rep);
void vo_api_host_maintenance(VoRequest *req, VoReply *rep);
void vo_api_host_evacuate(VoRequest *req, VoReply *rep);

void vo_api_vms_list(VoRequest *req, VoReply *rep);
void vo_api_vm_create(VoRequest *req, VoReply *rep);
void vo_api_vm_show(VoRequest *req, VoReply *rep);
void vo_api_vm_edit(VoRequest *req, VoReply *rep);
void vo_api_vm_delete(VoRequest *req, VoReply *rep);
void vo_api_vm_start(VoRequest *req, VoReply *rep);
void vo_api_vm_stop(VoRequest *req, VoReply *rep);
void vo_api_vm_reboot(VoRequest *req, VoReply *rep);
void vo_api_vm_pause(VoRequest *req, VoReply *rep);
void vo_api_vm_migrate_target(VoRequest *req, VoReply *rep);
void vo_api_vm_resume(VoRequest *req, VoReply *rep);

void vo_api_vm_console(VoRequest *req, VoReply *rep);
void vo_api_vm_console_log(VoRequest *req, VoReply *rep);
/* The display (display-api.c). */
void vo_api_vm_screenshot(VoRequest *req, VoReply *rep);
void vo_api_vm_send_keys(VoRequest *req, VoReply *rep);
void vo_api_vm_vnc(VoRequest *req, VoReply *rep);
void vo_api_vm_vnc_ticket(VoRequest *req, VoReply *rep);

void vo_api_image_import(VoRequest *req, VoReply *rep);
void vo_api_vm_import(VoRequest *req, VoReply *rep);
void vo_api_image_delete(VoRequest *req, VoReply *rep);
/* Peers only (image-files-api.c): an own image's manifest and files. */
void vo_api_image_files(VoRequest *req, VoReply *rep);
void vo_api_image_file(VoRequest *req, VoReply *rep);
void vo_api_vm_template(VoRequest *req, VoReply *rep);
void vo_api_vm_clone(VoRequest *req, VoReply *rep);
void vo_api_vm_disks_list(VoRequest *req, VoReply *rep);
void vo_api_vm_disk_add(VoRequest *req, VoReply *rep);
void vo_api_vm_disk_remove(VoRequest *req, VoReply *rep);

void vo_api_pools_list(VoRequest *req, VoReply *rep);
void vo_api_pool_create(VoRequest *req, VoReply *rep);
void vo_api_pool_show(VoRequest *req, VoReply *rep);
void vo_api_pool_delete(VoRequest *req, VoReply *rep);
void vo_api_pool_refresh(VoRequest *req, VoReply *rep);
void vo_api_volume_format(VoRequest *req, VoReply *rep);
void vo_api_volumes_list(VoRequest *req, VoReply *rep);
void vo_api_volume_create(VoRequest *req, VoReply *rep);
void vo_api_volume_show(VoRequest *req, VoReply *rep);
void vo_api_volume_delete(VoRequest *req, VoReply *rep);
void vo_api_volume_edit(VoRequest *req, VoReply *rep);
void vo_api_volume_resize(VoRequest *req, VoReply *rep);
void vo_api_volume_clone(VoRequest *req, VoReply *rep);
void vo_api_volume_flatten(VoRequest *req, VoReply *rep);
int vo_api_volume_upload_prepare(VoRequest *req, char **ret_path_template, char **ret_error);
void vo_api_volume_upload(VoRequest *req, VoReply *rep);
void vo_api_volume_download(VoRequest *req, VoReply *rep);

void vo_api_networks_list(VoRequest *req, VoReply *rep);
void vo_api_network_create(VoRequest *req, VoReply *rep);
void vo_api_network_show(VoRequest *req, VoReply *rep);
void vo_api_network_delete(VoRequest *req, VoReply *rep);
void vo_api_network_edit(VoRequest *req, VoReply *rep);
void vo_api_vm_nics_list(VoRequest *req, VoReply *rep);
void vo_api_vm_nic_add(VoRequest *req, VoReply *rep);
void vo_api_vm_nic_remove(VoRequest *req, VoReply *rep);
void vo_api_vm_cdrom(VoRequest *req, VoReply *rep);
void vo_api_vm_cloud_init_get(VoRequest *req, VoReply *rep);
void vo_api_vm_cloud_init_set(VoRequest *req, VoReply *rep);
void vo_api_vm_exec(VoRequest *req, VoReply *rep);
void vo_api_vm_set_password(VoRequest *req, VoReply *rep);

void vo_api_snapshots_list(VoRequest *req, VoReply *rep);
void vo_api_snapshot_show(VoRequest *req, VoReply *rep);
void vo_api_snapshot_create(VoRequest *req, VoReply *rep);
void vo_api_snapshot_revert(VoRequest *req, VoReply *rep);
void vo_api_snapshot_delete(VoRequest *req, VoReply *rep);

void vo_api_backup_create(VoRequest *req, VoReply *rep);
void vo_api_backups_list(VoRequest *req, VoReply *rep);
void vo_api_backup_show(VoRequest *req, VoReply *rep);
void vo_api_backup_delete(VoRequest *req, VoReply *rep);
void vo_api_backup_restore(VoRequest *req, VoReply *rep);
void vo_api_backup_verify(VoRequest *req, VoReply *rep);

/* Access: users, API tokens, browser sessions (access-api.c). */
void vo_api_login(VoRequest *req, VoReply *rep);
void vo_api_logout(VoRequest *req, VoReply *rep);
void vo_api_whoami(VoRequest *req, VoReply *rep);
void vo_api_users_list(VoRequest *req, VoReply *rep);
void vo_api_user_create(VoRequest *req, VoReply *rep);
void vo_api_user_delete(VoRequest *req, VoReply *rep);
void vo_api_user_password(VoRequest *req, VoReply *rep);
void vo_api_tokens_list(VoRequest *req, VoReply *rep);
void vo_api_token_create(VoRequest *req, VoReply *rep);
void vo_api_token_revoke(VoRequest *req, VoReply *rep);
/* Scheduled snapshots and backups (schedules-api.c). */
void vo_api_schedules_list(VoRequest *req, VoReply *rep);
void vo_api_schedule_create(VoRequest *req, VoReply *rep);
void vo_api_schedule_show(VoRequest *req, VoReply *rep);
void vo_api_schedule_set(VoRequest *req, VoReply *rep);
void vo_api_schedule_delete(VoRequest *req, VoReply *rep);
void vo_api_schedule_run(VoRequest *req, VoReply *rep);
