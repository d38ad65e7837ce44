/* hvdeployctl: ringing a job's doorbell (dead replay, retry). */
#include <stdio.h>
#include "amqp_util.h"
#include "buf.h"
#include "codec.h"
#include "model.h"

bool ctlq_ring_doorbell(HvdBroker *b, const char *jobs_exchange, const char *job_id, const char *job_type,
                        int timeout_ms, char *err, size_t errlen)
{
    HvdNode *n = hvd_node_map();
    hvd_node_map_set_str(n, "job_id", job_id);
    hvd_node_map_set_str(n, "job_type", job_type && *job_type ? job_type : HVD_JOB_TYPE_MANAGED);
    hvd_node_map_set_bool(n, "doorbell", true);
    HvdBuf body = {0};
    hvd_encode(HVD_CT_MSGPACK, n, &body);
    hvd_node_free(n);
    HvdHeader h = {.key = HVD_BROKER_DOORBELL_HEADER, .i = 1};
    HvdPublish p = {
        .exchange = jobs_exchange,
        .routing_key = HVD_BROKER_JOB_KEY,
        .body = body.data,
        .len = body.len,
        .content_type = hvd_content_type_name(HVD_CT_MSGPACK),
        .message_id = job_id,
        .persistent = true,
        .mandatory = true,
        .headers = &h,
        .n_headers = 1,
    };
    HvdConfirm cf = ctlq_publish_wait(b, &p, timeout_ms, err, errlen);
    hvd_buf_free(&body);
    if (cf == HVD_CONFIRM_RETURNED)
        snprintf(err, errlen, "no queue is bound to %s for doorbells", jobs_exchange);
    else if (cf == HVD_CONFIRM_NACKED)
        snprintf(err, errlen, "RabbitMQ refused the doorbell");
    return cf == HVD_CONFIRM_ACKED;
}
