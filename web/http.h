/* hvdeploy-web's HTTP server (http.c): start on --listen, the port it got, stop. */
#ifndef HVD_WEB_HTTP_H
#define HVD_WEB_HTTP_H
#include <stddef.h>
#include "web.h"

struct WebServer;
/* NULL with err set when the socket or the server cannot start. */
struct WebServer *web_server_start(Web *w, char *err, size_t errlen);
int web_server_port(const struct WebServer *s);
/* Ends every connection (streams see w->stopping) and frees s; NULL is fine. */
void web_server_stop(struct WebServer *s);

#endif
