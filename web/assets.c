/* The dashboard's stylesheet and script (web/assets/, embedded at build time
 * by web/embed.cmake) served as files: the Content-Security-Policy allows no
 * inline code. */
#include <string.h>
#include "pages.h"

extern const unsigned char hvd_web_app_js[], hvd_web_app_css[];
extern const unsigned long hvd_web_app_js_len, hvd_web_app_css_len;

bool assets_serve(WebReq *r, const char *path)
{
    const unsigned char *data = NULL;
    unsigned long len = 0;
    if (strcmp(path, "app.js") == 0) {
        data = hvd_web_app_js;
        len = hvd_web_app_js_len;
        r->content_type = "text/javascript; charset=utf-8";
    } else if (strcmp(path, "app.css") == 0) {
        data = hvd_web_app_css;
        len = hvd_web_app_css_len;
        r->content_type = "text/css; charset=utf-8";
    } else {
        return false;
    }
    hvd_buf_append(&r->body, data, len);
    return true;
}
