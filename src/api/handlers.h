/* handlers.h: every route handler, one file per noun. */
#pragma once

#include "api/http.h"

void vo_api_host_show(VoRequest *req, VoReply *rep);
void vo_api_images_list(VoRequest *req, VoReply *rep);
void vo_api_tasks_list(VoRequest *req, VoReply *rep);
void vo_api_task_show(VoRequest *req, VoReply *rep);

void vo_api_vms_list(VoRequest *req, VoReply *rep);
void vo_api_vm_create(VoRequest *req, VoReply *rep);
void vo_api_vm_show(VoRequest *req, VoReply *rep);
void vo_api_vm_edit(VoRequest *req, VoReply *rep);
void vo_api_vm_delete(VoRequest *req, VoReply *rep);
void vo_api_vm_start(VoRequest *req, VoReply *rep);
void vo_api_vm_stop(VoRequest *req, VoReply *rep);
void vo_api_vm_reboot(VoRequest *req, VoReply *rep);
void vo_api_vm_pause(VoRequest *req, VoReply *rep);
void vo_api_vm_resume(VoRequest *req, VoReply *rep);

void vo_api_vm_console(VoRequest *req, VoReply *rep);
void vo_api_vm_console_log(VoRequest *req, VoReply *rep);
