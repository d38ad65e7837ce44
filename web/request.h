/* What a handler reads from its request (request.c): query-string and form
 * values, and the check of a job id. */
#ifndef HVD_WEB_REQUEST_H
#define HVD_WEB_REQUEST_H
#include <stdbool.h>
#include "web.h"

/* A query-string value (NULL when absent or empty). */
const char *web_arg(WebReq *r, const char *name);
/* A form field of a POST body (malloc'd, URL-decoded; NULL when absent). */
char *web_form_value(const WebReq *r, const char *name);
/* s is a UUID in its 36-character text form. */
bool web_uuid_ok(const char *s);

#endif
