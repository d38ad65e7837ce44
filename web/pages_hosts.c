/* The hosts page: per Hyper-V host its slots in use, the jobs waiting and
 * why, its circuit, and the agent's profile when the fleet records it. */
#include <stdio.h>
#include <string.h>
#include "store_view.h"
#include "html.h"
#include "pages.h"

static const char *dash(const char *s)
{
    return s && *s ? s : "-";
}

void page_hosts(WebReq *r)
{
    HvdHostView *v = NULL;
    size_t n = 0;
    char err[512] = "";
    if (hvd_store_hosts(r->web->store, &v, &n, err, sizeof err) != HVD_STORE_OK)
        return html_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "The database cannot be read right now.");
    bool agents = false;
    for (size_t i = 0; i < n; i++) agents |= v[i].agent || v[i].profile || v[i].capabilities;
    HvdBuf *b = &r->body;
    html_begin(r, "Hosts", "hosts");
    html_printf(b,
                "<h1>Hosts</h1><p class=\"hint\">Slots per host across the fleet: %lld "
                "(HVD_HOST_CONCURRENCY as this dashboard is configured).</p>\n",
                (long long)r->web->cfg.host_concurrency);
    if (n == 0) hvd_buf_puts(b, "<p class=\"empty\">No host has live jobs or a circuit record.</p>");
    for (size_t i = 0; i < n; i++) {
        const HvdHostView *h = &v[i];
        html_printf(b, "<section class=\"host\"><h2>%s ", h->host);
        html_badge(b, h->circuit);
        html_printf(b,
                    "</h2><dl class=\"facts\"><dt>Slots in use</dt><dd>%d of %lld</dd><dt>Running</dt><dd>%d</dd>"
                    "<dt>Queued</dt><dd>%d</dd><dt>Retrying</dt><dd>%d</dd>"
                    "<dt>Waiting</dt><dd>%d for a slot, %d for a retry, %d for the circuit, %d other</dd>"
                    "<dt>Circuit</dt><dd>%s, %d consecutive failure(s)",
                    h->slots_in_use, (long long)r->web->cfg.host_concurrency, h->running, h->queued, h->retrying,
                    h->waiting_host_busy, h->waiting_retry, h->waiting_circuit, h->waiting_other, h->circuit,
                    h->consecutive_fails);
        if (h->open_until) html_printf(b, ", open until %s", h->open_until);
        if (h->trial_owner) html_printf(b, ", trial by %s", h->trial_owner);
        hvd_buf_puts(b, "</dd>");
        if (agents)
            html_printf(b, "<dt>Agent</dt><dd>%s (%s profile): %s</dd>", dash(h->agent), dash(h->profile),
                        dash(h->capabilities));
        hvd_buf_puts(b, "</dl>\n");
        HvdWaitingJob *wj = NULL;
        size_t nw = 0;
        if (hvd_store_host_waiting(r->web->store, h->host, 200, &wj, &nw, err, sizeof err) == HVD_STORE_OK && nw) {
            hvd_buf_puts(b, "<table class=\"waiting\"><thead><tr><th>Waiting job</th><th>Status</th><th>VM</th>"
                            "<th>Stage</th><th>Why</th><th>Next try</th></tr></thead><tbody>\n");
            for (size_t k = 0; k < nw; k++)
                html_printf(b,
                            "<tr><td class=\"id\"><a href=\"/jobs/%s\">%s</a></td><td>%s</td><td>%s</td><td>%s</td>"
                            "<td>%s</td><td>%s</td></tr>\n",
                            wj[k].job_id, wj[k].job_id, wj[k].status, dash(wj[k].vm_name), dash(wj[k].stage),
                            dash(wj[k].reason), dash(wj[k].next_run_at));
            hvd_buf_puts(b, "</tbody></table>\n");
        }
        hvd_waiting_jobs_free(wj, nw);
        hvd_buf_puts(b, "</section>\n");
    }
    html_end(r);
    hvd_host_views_free(v, n);
}
