/* HTML for the dashboard: escaping (every piece of text from a job, an agent
 * or a message goes through html_esc), URL encoding, and the page layout. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "html.h"

void html_esc(HvdBuf *b, const char *s)
{
    if (!s) return;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '&': hvd_buf_puts(b, "&amp;"); break;
        case '<': hvd_buf_puts(b, "&lt;"); break;
        case '>': hvd_buf_puts(b, "&gt;"); break;
        case '"': hvd_buf_puts(b, "&quot;"); break;
        case '\'': hvd_buf_puts(b, "&#39;"); break;
        default:
            if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f)
                hvd_buf_puts(b, "&#xFFFD;");
            else
                hvd_buf_append(b, p, 1);
        }
    }
}

void html_printf(HvdBuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            hvd_buf_append(b, p, 1);
            continue;
        }
        p++;
        if (*p == 's') {
            html_esc(b, va_arg(ap, const char *));
        } else if (*p == 'd') {
            hvd_buf_printf(b, "%d", va_arg(ap, int));
        } else if (strncmp(p, "lld", 3) == 0) {
            hvd_buf_printf(b, "%lld", va_arg(ap, long long));
            p += 2;
        } else if (*p == '%') {
            hvd_buf_puts(b, "%");
        } else {
            break; /* not a format this allows: stop rather than misread the arguments */
        }
    }
    va_end(ap);
}

void html_url(HvdBuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '.' || *p == '_' || *p == '~') {
            hvd_buf_append(b, p, 1);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            hvd_buf_append(b, e, 3);
        }
    }
}

void html_begin(WebReq *r, const char *title, const char *nav)
{
    HvdBuf *b = &r->body;
    r->content_type = "text/html; charset=utf-8";
    html_printf(b,
                "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                "<title>%s · hvdeploy</title><link rel=\"stylesheet\" href=\"/static/app.css\">"
                "<script src=\"/static/app.js\" defer></script></head><body>\n",
                title);
    static const char *const items[][2] = {{"jobs", "Jobs"}, {"hosts", "Hosts"}, {"dead", "Dead letters"}};
    hvd_buf_puts(b, "<header><a class=\"brand\" href=\"/jobs\">hvdeploy</a><nav>");
    for (size_t i = 0; i < 3; i++) {
        html_printf(b, "<a href=\"/%s\"", items[i][0]);
        if (nav && strcmp(nav, items[i][0]) == 0) hvd_buf_puts(b, " class=\"current\"");
        html_printf(b, ">%s</a>", items[i][1]);
    }
    html_printf(b, "</nav><span class=\"mode\">%s</span></header>\n<main>\n",
                r->web->allow_actions ? "actions on" : "read-only");
}

void html_end(WebReq *r)
{
    hvd_buf_puts(&r->body, "</main>\n</body></html>\n");
}

void html_error(WebReq *r, unsigned status, const char *message)
{
    hvd_buf_free(&r->body);
    r->status = status;
    html_begin(r, "Error", NULL);
    html_printf(&r->body, "<h1>%d</h1><p class=\"error\">%s</p>", (int)status, message);
    html_end(r);
}

void html_badge(HvdBuf *b, const char *status)
{
    html_printf(b, "<span class=\"badge s-%s\">%s</span>", status ? status : "none", status ? status : "-");
}
