/* Each connection's absolute deadline (watchdog.c): the server registers its
 * connections, a thread shuts the socket of one past its deadline, and an
 * event stream extends its own. */
#ifndef HVD_WEB_WATCHDOG_H
#define HVD_WEB_WATCHDOG_H
#include <stdbool.h>
#include "web.h"

typedef struct WebWatchdog WebWatchdog;
/* The process's one watchdog (what web_extend_deadline reaches); a new
 * connection's deadline is w->request_timeout_s from its start. */
WebWatchdog *web_watchdog_new(const Web *w);
/* Starts its thread; false when it cannot. */
bool web_watchdog_start(WebWatchdog *wd);
/* libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION callback; cls is the watchdog. */
void web_watchdog_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                         enum MHD_ConnectionNotificationCode code);
/* Joins its thread when started and frees it (after the server stopped); NULL is fine. */
void web_watchdog_free(WebWatchdog *wd);
/* Extends the connection's absolute deadline to seconds from now (event streams). */
void web_extend_deadline(WebReq *r, unsigned seconds);

#endif
