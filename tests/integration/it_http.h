/* HTTP helpers of the integration tests that read a worker's /metrics and
 * /healthz: a plain-socket GET and a parser of the Prometheus text format.
 * Header-only (static inline), like it_pg.h. */
#ifndef HVD_IT_HTTP_H
#define HVD_IT_HTTP_H
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "buf.h"

/* GET path on 127.0.0.1:port with a plain socket: returns the HTTP status
 * and the body in *body (caller frees), or -1 when nothing answered. */
static inline int http_get(int port, const char *path, char **body)
{
    *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    HvdBuf b = {0};
    char chunk[4096];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0) hvd_buf_append(&b, chunk, (size_t)r);
    close(fd);
    int status = -1;
    if (b.data) sscanf(b.data, "HTTP/1.%*d %d", &status);
    const char *sep = b.data ? strstr(b.data, "\r\n\r\n") : NULL;
    *body = hvd_xstrdup(sep ? sep + 4 : "");
    hvd_buf_free(&b);
    return status;
}

/* Parses the text format: every sample line is NAME{labels} VALUE or NAME VALUE,
 * every # line is HELP or TYPE. Returns the sum of the samples whose series
 * starts with `series` (a name, optionally with the opening of its labels). */
static inline double sample_sum(const char *text, const char *series, bool *well_formed)
{
    double sum = 0;
    *well_formed = true;
    char *copy = hvd_xstrdup(text), *save = NULL;
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            if (strncmp(line, "# HELP ", 7) != 0 && strncmp(line, "# TYPE ", 7) != 0) *well_formed = false;
            continue;
        }
        char *sp = strrchr(line, ' ');
        char *end = NULL;
        double v = sp ? strtod(sp + 1, &end) : 0;
        if (!sp || !end || *end != '\0') {
            *well_formed = false;
            continue;
        }
        if (strncmp(line, series, strlen(series)) == 0) sum += v;
    }
    free(copy);
    return sum;
}

#endif
