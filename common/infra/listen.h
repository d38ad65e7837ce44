/* A listening TCP socket for the HTTP servers (/metrics, the dashboard). */
#ifndef HVD_LISTEN_H
#define HVD_LISTEN_H
#include <stdbool.h>
#include <stddef.h>

/* Binds "host:port" (or "[v6]:port"; port 0 = any free one) and listens.
 * Returns the socket (close-on-exec) with the bound port and whether it is
 * IPv6, or -1 with one line in err that starts with what (e.g.
 * "HVD_METRICS_ADDR"). */
int hvd_listen_tcp(const char *addr, const char *what, int *port, bool *v6, char *err, size_t errlen);

#endif
