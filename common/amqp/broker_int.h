/* Internals shared by the broker_*.c files (not for use outside common/amqp).
 * Who calls whom, without a circle: broker.c (connect) and broker_consume.c,
 * broker_publish.c, broker_topology.c, broker_cluster.c call broker_frame.c
 * (frames, channels, content), which calls broker_state.c (errors, settling). */
#ifndef HVD_BROKER_INT_H
#define HVD_BROKER_INT_H
#include <amqp.h>
#include <amqp_framing.h>
#include <stdatomic.h>
#include "broker.h"

#define BRK_CH_DATA 1 /* consume + publish (confirm mode) */
#define BRK_CH_RPC 2  /* declarations and other synchronous methods */
/* Delivery tags handed out carry the generation of channel 1 in their top 16 bits, so an
 * ack for a delivery of a channel since closed is refused here instead of closing the
 * new channel with PRECONDITION_FAILED (unknown delivery tag). */
#define BRK_TAG_BITS 48
#define BRK_TAG_MASK ((UINT64_C(1) << BRK_TAG_BITS) - 1)

typedef struct {
    uint64_t seq;
    HvdConfirm status;
} BrkSettled;

struct HvdBroker {
    amqp_connection_state_t conn;
    atomic_int fd; /* socket, for hvd_broker_interrupt; -1 when none */
    atomic_bool interrupted;
    bool dead;     /* connection lost: every call returns CLOSED */
    bool confirms; /* confirm mode wanted on channel 1 */
    bool ch_rpc_open;
    uint16_t ch_gen; /* generation of channel 1 (reopens) */
    int rpc_timeout_ms;
    char desc[300];  /* host:port/vhost */
    char vhost[256]; /* the vhost, for the commands an error tells an operator to run */
    char last_error[512];

    bool blocked;
    char *blocked_reason;

    bool consuming;
    bool cancelled; /* broker sent basic.cancel or closed channel 1 under it */
    amqp_bytes_t consumer_tag;

    amqp_envelope_t **stash; /* deliveries read outside hvd_broker_next */
    size_t nstash, capstash;

    uint64_t seq;   /* last publish seq on channel 1 (confirm mode) */
    uint64_t *pend; /* unsettled seqs, ascending */
    size_t npend, cappend;
    BrkSettled *done; /* settled, not yet reported */
    size_t ndone, capdone;
    bool return_pending; /* a basic.return was read: the next ack/nack is its seq */
    size_t max_body;     /* HvdBrokerOptions.max_body */
};

/* A received message as kept in the stash and in HvdDelivery.priv: the
 * library's envelope (first, so a pointer to it is a pointer to this) and
 * what brk_read_content learnt of its body. */
typedef struct {
    amqp_envelope_t env;
    uint64_t body_size;
    bool too_large;
} BrkEnvelope;

/* Writes "fmt..." into err and b->last_error (b may be NULL). */
void brk_err(HvdBroker *b, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Marks the connection lost, with a reason; returns HVD_BROKER_CLOSED. */
HvdBrokerStatus brk_lost(HvdBroker *b, int amqp_status, const char *during);
/* Handles one frame read from the connection (confirms, returns, cancel, close,
 * blocked...). Returns OK when handled (setting *changed when it settled a confirm or
 * changed the blocked state), CANCELLED, or CLOSED. */
HvdBrokerStatus brk_handle_frame(HvdBroker *b, const amqp_frame_t *f, bool *changed);
/* Reads and handles frames for up to timeout_ms (0 = only what is ready). Returns OK after
 * a frame that changed something, TIMEOUT, CANCELLED or CLOSED. */
HvdBrokerStatus brk_pump(HvdBroker *b, int timeout_ms);
/* Checks the reply of the last synchronous method on channel ch. On a channel error it
 * answers close-ok, reopens the channel when it is channel 1, copies the broker's text to
 * text and its code to *code, and returns ERROR; a connection error returns CLOSED. */
HvdBrokerStatus brk_rpc_check(HvdBroker *b, amqp_channel_t ch, int *code, char *text, size_t textlen);
/* Makes sure the RPC channel is open; CLOSED or OK. */
HvdBrokerStatus brk_rpc_channel(HvdBroker *b, char *err, size_t errlen);
/* (Re)opens channel 1 and selects confirms; resets the publish sequence. */
HvdBrokerStatus brk_open_data_channel(HvdBroker *b);
/* Reports every unsettled seq as LOST (channel or connection gone). */
void brk_lose_pending(HvdBroker *b);
/* Settles seqs: multiple = every unsettled seq <= tag, else tag alone. */
void brk_settle(HvdBroker *b, uint64_t tag, bool multiple, HvdConfirm status);
/* Reads the content (header and body frames) of a message on channel ch into
 * e->env.message, as amqp_read_message does, but copies at most b->max_body
 * bytes of its body (0 = all; the rest is read and dropped, e->too_large set).
 * Frames of other channels met meanwhile are handled. AMQP_STATUS_OK or an error. */
int brk_read_content(HvdBroker *b, amqp_channel_t ch, BrkEnvelope *e);
/* Reads the rest of a basic.deliver on channel 1 and keeps it for hvd_broker_next. */
HvdBrokerStatus brk_stash_delivery(HvdBroker *b, const amqp_basic_deliver_t *m);
/* A new envelope for the basic.deliver m on channel ch, its content not yet read. */
BrkEnvelope *brk_envelope_new(amqp_channel_t ch, const amqp_basic_deliver_t *m);
/* Frees e and whatever of it was filled. */
void brk_envelope_drop(BrkEnvelope *e);
/* A short text for a library status, with errno where it says more. */
const char *brk_status_text(int status, int saved_errno);
/* Connects to one URL (hvd_broker_connect without the list): broker.c. */
HvdBroker *brk_connect_url(const HvdBrokerOptions *o, const char *url, char *err, size_t errlen);
/* Copies an amqp_bytes_t into a new NUL-terminated string. */
char *brk_strdup_bytes(amqp_bytes_t bytes);
/* Milliseconds on the monotonic clock. */
int64_t brk_now_ms(void);

#endif
