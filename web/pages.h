/* The dashboard's handlers, one per route (pages_*.c, actions.c, sse.c,
 * assets.c): each fills r's answer. */
#ifndef HVD_WEB_PAGES_H
#define HVD_WEB_PAGES_H
#include <stdbool.h>
#include "web.h"

void page_jobs(WebReq *r);
void page_job(WebReq *r, const char *job_id);
void page_hosts(WebReq *r);
void page_dead(WebReq *r);
void page_dead_one(WebReq *r, const char *id);
/* POST /jobs/<id>/cancel|retry, /dead/<id>/replay: checks actions, password, CSRF. */
void action_job(WebReq *r, const char *job_id, const char *verb);
void action_dead_replay(WebReq *r, const char *id);
/* Actions are on, the password matched and the CSRF token too; else the
 * refusal is answered (403, or 401 asking for the password) and false. */
bool web_action_allowed(WebReq *r);
/* GET /jobs/<id>/stream */
void sse_job(WebReq *r, const char *job_id);
/* /static/... ; false when unknown */
bool assets_serve(WebReq *r, const char *path);

#endif
