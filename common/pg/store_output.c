/* Live stage output in hvdeploy.job_output: the worker appends batches of
 * redacted agent lines and keeps the last HVD_OUTPUT_KEEP of each stage; the
 * CLI and the dashboard read them after a cursor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store_priv.h"
#include "store_view.h"

/* One statement: the lines in order, then the stage's lines past the newest
 * keep deleted (the inserted rows are counted through the CTE, which the
 * DELETE's own snapshot does not see). Nothing is written for a job that is
 * gone (pruned, or never existed). */
/* clang-format off */
static const char SQL_OUTPUT_APPEND[] =
    "WITH new AS (SELECT l.stream, l.line, l.ord"
    "  FROM unnest($4::text[], $5::text[]) WITH ORDINALITY AS l(stream, line, ord)"
    "  WHERE EXISTS (SELECT 1 FROM hvdeploy.jobs WHERE job_id = $1::uuid)),"
    " ins AS (INSERT INTO hvdeploy.job_output (job_id, stage, attempt, stream, line)"
    "  SELECT $1::uuid, $2::text, $3::int, stream, line FROM new ORDER BY ord RETURNING seq),"
    " cut AS (SELECT a.seq FROM (SELECT seq FROM hvdeploy.job_output WHERE job_id = $1::uuid AND stage = $2::text"
    "  UNION ALL SELECT seq FROM ins) a ORDER BY a.seq DESC OFFSET $6::int LIMIT 1)"
    " DELETE FROM hvdeploy.job_output o USING cut"
    " WHERE o.job_id = $1::uuid AND o.stage = $2::text AND o.seq <= cut.seq";
/* clang-format on */

HvdStoreStatus hvd_store_output_append(HvdStore *s, const char *job_id, const char *stage, int attempt,
                                       const HvdOutputLine *lines, size_t n, int keep, char *err, size_t errlen)
{
    if (n == 0 || keep <= 0) return HVD_STORE_OK;
    if (!store_uuid_ok(job_id)) {
        store_set_err(err, errlen, "not a job id");
        return HVD_STORE_ERROR;
    }
    size_t from = n > (size_t)keep ? n - (size_t)keep : 0;
    HvdBuf streams = {0}, texts = {0};
    for (size_t i = from; i < n; i++) {
        store_array_add(&streams, lines[i].stream);
        store_array_add(&texts, lines[i].line);
    }
    store_array_end(&streams);
    store_array_end(&texts);
    StoreParams p = {0};
    store_p_text(&p, job_id);
    store_p_text(&p, stage);
    store_p_int(&p, attempt);
    store_p_text(&p, streams.data);
    store_p_text(&p, texts.data);
    store_p_int(&p, keep);
    HvdStoreStatus st;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (c) {
        PGresult *r = store_exec1(s, c, SQL_OUTPUT_APPEND, &p, &st, err, errlen);
        if (r) PQclear(r);
        /* the job was deleted between the check and the insert: nothing to keep */
        if (!r && st == HVD_STORE_ERROR && strstr(err, "(23503)")) st = HVD_STORE_OK;
        store_checkin(s, c);
    }
    hvd_buf_free(&streams);
    hvd_buf_free(&texts);
    return st;
}

/* clang-format off */
static const char SQL_OUTPUT_READ[] =
    "SELECT seq, stage, attempt, stream, " STORE_TS("at") ", line FROM hvdeploy.job_output"
    " WHERE job_id = $1::uuid AND seq > $2::bigint ORDER BY seq LIMIT $3::int";
/* clang-format on */

HvdStoreStatus hvd_store_output_read(HvdStore *s, const char *job_id, int64_t after_seq, size_t max,
                                     HvdOutputRow **rows, size_t *n, char *err, size_t errlen)
{
    *rows = NULL;
    *n = 0;
    if (!store_uuid_ok(job_id)) return HVD_STORE_OK;
    StoreParams p = {0};
    store_p_text(&p, job_id);
    store_p_int(&p, after_seq);
    store_p_int(&p, max > 100000 ? 100000 : (int64_t)max);
    HvdStoreStatus st;
    StoreConn *c = store_checkout(s, &st, err, errlen);
    if (!c) return st;
    PGresult *r = store_exec1(s, c, SQL_OUTPUT_READ, &p, &st, err, errlen);
    store_checkin(s, c);
    if (!r) return st;
    int k = PQntuples(r);
    HvdOutputRow *v = hvd_xcalloc(k > 0 ? (size_t)k : 1, sizeof *v);
    for (int i = 0; i < k; i++) {
        v[i].seq = store_col_int(r, i, 0);
        store_col_copy(r, i, 1, v[i].stage, sizeof v[i].stage);
        v[i].attempt = (int)store_col_int(r, i, 2);
        store_col_copy(r, i, 3, v[i].stream, sizeof v[i].stream);
        v[i].at = store_col_dup(r, i, 4);
        v[i].line = store_col_dup(r, i, 5);
    }
    PQclear(r);
    *rows = v;
    *n = (size_t)k;
    return HVD_STORE_OK;
}

void hvd_output_rows_free(HvdOutputRow *v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) {
        free(v[i].at);
        free(v[i].line);
    }
    free(v);
}
