/* The dashboard's RabbitMQ connection, made per request (dead letters, the
 * doorbells of actions): the worker's HVD_AMQP_* settings under the name
 * hvdeploy-web. */
#include "mq.h"

HvdBroker *web_broker_connect(Web *w, bool confirms, char *err, size_t errlen)
{
    HvdBrokerOptions o = {
        .url = w->cfg.amqp_url,
        .connection_name = "hvdeploy-web",
        .heartbeat_s = 30,
        .connect_timeout_ms = 5000,
        .rpc_timeout_ms = 10000,
        .confirms = confirms,
        .tls_ca_file = w->cfg.amqp_ca_file && *w->cfg.amqp_ca_file ? w->cfg.amqp_ca_file : NULL,
        .tls_cert_file = w->cfg.amqp_cert_file && *w->cfg.amqp_cert_file ? w->cfg.amqp_cert_file : NULL,
        .tls_key_file = w->cfg.amqp_key_file && *w->cfg.amqp_key_file ? w->cfg.amqp_key_file : NULL,
        .tls_no_verify_peer = !w->cfg.amqp_verify,
        .tls_no_verify_hostname = !w->cfg.amqp_verify,
    };
    return hvd_broker_connect(&o, err, errlen);
}
