/* The dashboard's RabbitMQ connection (mq.c), made per request: dead letters
 * and the doorbells of actions. */
#ifndef HVD_WEB_MQ_H
#define HVD_WEB_MQ_H
#include <stdbool.h>
#include <stddef.h>
#include "broker.h"
#include "web.h"

/* A connection with the worker's HVD_AMQP_* settings; NULL with err set. */
HvdBroker *web_broker_connect(Web *w, bool confirms, char *err, size_t errlen);

#endif
