/* Listening sockets of the HTTP servers. */
#include "listen.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "config.h"

int hvd_listen_tcp(const char *addr, const char *what, int *port_out, bool *v6_out, char *err, size_t errlen)
{
    char host[256], port_s[8];
    int port = 0, fd = -1, saved = 0;
    struct addrinfo hints = {0}, *res = NULL, *ai;
    if (!addr || !hvd_parse_host_port(addr, host, sizeof host, &port, true)) {
        snprintf(err, errlen, "%s '%s': expected HOST:PORT", what, addr ? addr : "");
        return -1;
    }
    snprintf(port_s, sizeof port_s, "%d", port);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host, port_s, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "%s %s: cannot resolve %s: %s", what, addr, host, gai_strerror(gai));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0) break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        snprintf(err, errlen, "%s %s: cannot bind: %s", what, addr, strerror(saved));
        freeaddrinfo(res);
        return -1;
    }
    bool v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    *port_out = port;
    *v6_out = v6;
    return fd;
}
