/* Splitting a whitespace-separated list of broker URLs, and spotting the
 * comma form rabbitmq-c would truncate (see urllist.h). */
#include "urllist.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"

void hvd_url_list_free(HvdUrlList *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    memset(l, 0, sizeof *l);
}

bool hvd_url_list_split(const char *s, HvdUrlList *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    const char *p = s ? s : "";
    for (;;) {
        while (isspace((unsigned char)*p)) p++;
        if (!*p) break;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        if (out->n == HVD_URL_LIST_MAX) {
            if (why && whylen) snprintf(why, whylen, "more than %d URLs", HVD_URL_LIST_MAX);
            hvd_url_list_free(out);
            return false;
        }
        out->v[out->n++] = hvd_xstrndup(start, (size_t)(p - start));
    }
    if (out->n == 0) {
        if (why && whylen) snprintf(why, whylen, "no URL");
        return false;
    }
    return true;
}

bool hvd_url_host_has_comma(const char *url)
{
    const char *auth = url ? strstr(url, "://") : NULL;
    auth = auth ? auth + 3 : (url ? url : "");
    size_t len = strcspn(auth, "/?#");
    const char *host = auth;
    for (const char *p = auth; p < auth + len; p++)
        if (*p == '@') host = p + 1; /* userinfo ends at the last '@' */
    return memchr(host, ',', (size_t)(auth + len - host)) != NULL;
}
