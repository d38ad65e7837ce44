/* hvd_broker_connect over a list of URLs: the nodes of a RabbitMQ cluster,
 * tried in turn on every (re)connect (see broker.h). */
#include "broker_int.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "urllist.h"

/* Index of the node to try first, shared by the process's connections: the
 * one that last worked, moved past one that just failed (so that after a
 * node dies, the next connect does not wait on it first). */
static atomic_uint brk_cursor;

static void advance_past(unsigned failed, size_t n)
{
    unsigned expected = failed;
    (void)atomic_compare_exchange_strong(&brk_cursor, &expected, (unsigned)((failed + 1) % n));
}

HvdBroker *hvd_broker_connect(const HvdBrokerOptions *opt, char *err, size_t errlen)
{
    static const HvdBrokerOptions defaults = {0};
    const HvdBrokerOptions *o = opt ? opt : &defaults;
    const char *url = o->url && *o->url ? o->url : HVD_BROKER_DEFAULT_URL;
    HvdUrlList urls;
    char why[128];
    if (!hvd_url_list_split(url, &urls, why, sizeof why)) {
        brk_err(NULL, err, errlen, "HVD_AMQP_URL has %s (one URL, or several separated by spaces)", why);
        return NULL;
    }
    for (size_t i = 0; i < urls.n; i++) {
        if (!hvd_url_host_has_comma(urls.v[i])) continue;
        char *masked = hvd_broker_mask_url(urls.v[i]);
        brk_err(NULL, err, errlen,
                "HVD_AMQP_URL '%s' names several hosts with ',', which rabbitmq-c would cut to the first: give one "
                "URL per node, separated by spaces",
                masked);
        free(masked);
        hvd_url_list_free(&urls);
        return NULL;
    }
    HvdBroker *b = NULL;
    if (urls.n == 1) {
        b = brk_connect_url(o, urls.v[0], err, errlen);
        hvd_url_list_free(&urls);
        return b;
    }
    HvdBuf why_all = {0};
    unsigned start = atomic_load(&brk_cursor) % (unsigned)urls.n;
    for (size_t k = 0; k < urls.n && !b; k++) {
        unsigned i = (unsigned)((start + k) % urls.n);
        char one[512] = "";
        b = brk_connect_url(o, urls.v[i], one, sizeof one);
        if (b) {
            atomic_store(&brk_cursor, i);
        } else {
            advance_past(i, urls.n);
            hvd_buf_printf(&why_all, "%s%s", why_all.len ? "; " : "", one);
        }
    }
    if (!b) brk_err(NULL, err, errlen, "no RabbitMQ node of %zu answered: %s", urls.n, why_all.data);
    hvd_buf_free(&why_all);
    hvd_url_list_free(&urls);
    return b;
}
