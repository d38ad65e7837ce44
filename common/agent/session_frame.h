/* The framing of session mode (contract §6a), apart from pipes and threads:
 * bytes read from a session's stdout become lines (a line longer than the
 * limit is dropped whole, up to its newline), and each line is read as what
 * it is — an answer or an output line of a request, or noise. Pure: the
 * session reader (session.c) and the fuzzer (tests/fuzz) share it. */
#ifndef HVD_SESSION_FRAME_H
#define HVD_SESSION_FRAME_H
#include <stdbool.h>
#include <stddef.h>
#include "buf.h"
#include "node.h"

/* A line splitter over a byte stream. Zero-initialise; free with hvd_frame_free. */
typedef struct {
    HvdBuf part;    /* the current line so far */
    bool skipping;  /* it passed max_line: dropped until its newline */
    size_t dropped; /* over-long lines dropped so far */
} HvdFrame;

/* Feeds n bytes; on_line gets every complete line (without its newline) of at
 * most max_line bytes, in order. */
void hvd_frame_feed(HvdFrame *f, const char *p, size_t n, size_t max_line,
                    void (*on_line)(void *arg, const char *line, size_t len), void *arg);
void hvd_frame_free(HvdFrame *f);

typedef enum {
    HVD_LINE_NOISE,  /* empty, not a JSON object, or without a request_id */
    HVD_LINE_OUTPUT, /* {"request_id", "output": "<line>", "stream"} */
    HVD_LINE_ANSWER, /* an envelope with its request_id (removed from *msg) */
} HvdLineKind;

typedef struct {
    HvdLineKind kind;
    char id[32];      /* the request_id (a string, or an integer in decimal) */
    HvdNode *msg;     /* the decoded line (ANSWER, OUTPUT); caller frees */
    const char *text; /* OUTPUT: the line's text (inside msg) */
    size_t text_len;
    bool stderr_line; /* OUTPUT: "stream": "stderr" */
} HvdLine;

/* Reads one line of at most max_bytes; NOISE lines hold no msg. */
void hvd_frame_line(const char *line, size_t len, size_t max_bytes, HvdLine *out);

#endif
