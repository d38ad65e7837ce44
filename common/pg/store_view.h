/* (v1.1) The operator's view of the store: live stage output kept in
 * hvdeploy.job_output (store_output.c), and the read-only queries behind
 * `hvdeployctl status --events|--follow`, `list` filters, `hosts` and the web
 * dashboard (store_view.c). Return convention as store.h. */
#ifndef HVD_STORE_VIEW_H
#define HVD_STORE_VIEW_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "store.h"

/* ---- live output (store_output.c) ---------------------------------------- */

typedef struct {
    const char *stream; /* "stdout" or "stderr" */
    const char *line;   /* valid UTF-8 without NUL (the caller cleans it) */
} HvdOutputLine;

/* One statement: appends lines to the output of (job, stage, attempt) and
 * deletes the stage's older lines so that at most keep remain (only the last
 * keep of lines are written). A job that no longer exists is no error (the
 * lines are dropped). */
HvdStoreStatus hvd_store_output_append(HvdStore *s, const char *job_id, const char *stage, int attempt,
                                       const HvdOutputLine *lines, size_t n, int keep, char *err, size_t errlen);

typedef struct {
    int64_t seq; /* increasing over the job's lines: the cursor of a live reader */
    char stage[24];
    int attempt;
    char stream[8];
    char *at; /* RFC 3339 */
    char *line;
} HvdOutputRow;

/* Up to max lines of job_id with seq > after_seq, in order (*n of them in a
 * new array *rows, free with hvd_output_rows_free). */
HvdStoreStatus hvd_store_output_read(HvdStore *s, const char *job_id, int64_t after_seq, size_t max,
                                     HvdOutputRow **rows, size_t *n, char *err, size_t errlen);
void hvd_output_rows_free(HvdOutputRow *v, size_t n); /* NULL-safe */

/* ---- the job's timeline (store_view.c) ----------------------------------- */

typedef struct {
    int64_t id;                                              /* increasing: the cursor of a live reader */
    char *at;                                                /* RFC 3339 */
    char *stage, *from_status, *to_status, *worker, *detail; /* NULL when SQL NULL */
    int attempt;
} HvdJobEvent;

/* Up to max job_events rows of job_id with id > after_id, oldest first. */
HvdStoreStatus hvd_store_job_events(HvdStore *s, const char *job_id, int64_t after_id, size_t max, HvdJobEvent **v,
                                    size_t *n, char *err, size_t errlen);
void hvd_job_events_free(HvdJobEvent *v, size_t n); /* NULL-safe */

/* ---- filtered job lists (store_view.c) ----------------------------------- */

typedef struct {
    const char *status, *host; /* exact (host case-insensitive); NULL = any */
    int64_t since_ms;          /* created at or after (Unix ms); 0 = any */
    const char *code;          /* terminal code, exact */
    const char *vm_name;       /* case-insensitive exact */
    const char *correlation_id;
    const char *stage;  /* the job's current stage (running, else first not succeeded) */
    const char *search; /* substring (case-insensitive) of job id, VM name, host or correlation id */
    size_t limit, offset;
} HvdListFilter;

/* Jobs matching every filter set, newest first, with their stages' names,
 * statuses and attempts (free with hvd_job_records_free). */
HvdStoreStatus hvd_store_list_filtered(HvdStore *s, const HvdListFilter *f, HvdJobRecord **out, size_t *n, char *err,
                                       size_t errlen);

/* ---- hosts (store_view.c) -------------------------------------------------- */

typedef struct {
    char *host;
    int slots_in_use;              /* live jobs holding a slot under an unexpired lease */
    int running, queued, retrying; /* live jobs by status */
    int waiting_host_busy, waiting_retry, waiting_circuit, waiting_other; /* not running, by why */
    char circuit[12];      /* closed, open, trial (one trial call is out), half-open (cooled down, none yet) */
    int consecutive_fails; /* from host_health */
    char *open_until;      /* RFC 3339 or NULL */
    char *trial_owner;     /* NULL when none */
    char *agent, *profile; /* from hvdeploy.host_agents when that table exists, else NULL */
    char *capabilities;    /* comma list, same source */
} HvdHostView;

/* Every host with live jobs or a circuit record, by name. */
HvdStoreStatus hvd_store_hosts(HvdStore *s, HvdHostView **out, size_t *n, char *err, size_t errlen);
void hvd_host_views_free(HvdHostView *v, size_t n); /* NULL-safe */

typedef struct {
    char job_id[37];
    char status[16];
    char *vm_name, *stage;
    char *reason;      /* host_busy, retry, circuit_open, queued (due) */
    char *next_run_at; /* RFC 3339 or NULL */
    int attempts;
} HvdWaitingJob;

/* The live jobs of host that are not running, in arrival order (at most max). */
HvdStoreStatus hvd_store_host_waiting(HvdStore *s, const char *host, size_t max, HvdWaitingJob **out, size_t *n,
                                      char *err, size_t errlen);
void hvd_waiting_jobs_free(HvdWaitingJob *v, size_t n); /* NULL-safe */

#endif
