/* Helpers shared by the hvdeployctl subcommands: output flag, input files, errors. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "ctl.h"

bool ctl_parse_output(const char *prog, const char *arg, CtlOutput *out)
{
    if (arg && strcmp(arg, "json") == 0) {
        *out = CTL_OUTPUT_JSON;
        return true;
    }
    if (arg && strcmp(arg, "human") == 0) {
        *out = CTL_OUTPUT_HUMAN;
        return true;
    }
    ctl_error(prog, "--output must be json or human, not '%s'", arg ? arg : "");
    return false;
}

CtlReadStatus ctl_read_input(const char *path, size_t max, HvdBuf *out, char *why, size_t whylen)
{
    bool is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    CtlReadStatus st = CTL_READ_OK;
    size_t got = 0;
    char chunk[65536];

    if (fd < 0) goto fail;
    for (;;) {
        size_t want = sizeof(chunk);
        if (want > max + 1 - got) want = max + 1 - got;
        ssize_t n = read(fd, chunk, want);
        if (n < 0) {
            if (errno == EINTR) continue;
            goto fail;
        }
        if (n == 0) break;
        size_t keep = (size_t)n;
        if (got + keep > max) {
            keep = max - got;
            st = CTL_READ_TOO_LARGE;
        }
        hvd_buf_append(out, chunk, keep);
        got += keep;
        if (st == CTL_READ_TOO_LARGE) break;
    }
    if (!is_stdin) close(fd);
    if (!out->data) hvd_buf_append(out, "", 0); /* empty input: still a C string */
    return st;
fail:
    snprintf(why, whylen, "%s: %s", is_stdin ? "stdin" : path, strerror(errno));
    if (fd >= 0 && !is_stdin) close(fd);
    return CTL_READ_ERROR;
}

const char *ctl_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v && *v) ? v : def;
}

void ctl_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "hvdeployctl %s: ", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void ctl_json_string(HvdBuf *b, const char *s)
{
    hvd_buf_puts(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        switch (*p) {
        case '"': hvd_buf_puts(b, "\\\""); break;
        case '\\': hvd_buf_puts(b, "\\\\"); break;
        case '\n': hvd_buf_puts(b, "\\n"); break;
        case '\r': hvd_buf_puts(b, "\\r"); break;
        case '\t': hvd_buf_puts(b, "\\t"); break;
        default:
            if (*p < 0x20)
                hvd_buf_printf(b, "\\u%04x", *p);
            else
                hvd_buf_append(b, p, 1);
        }
    }
    hvd_buf_puts(b, "\"");
}
