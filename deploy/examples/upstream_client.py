#!/usr/bin/python3
"""An upstream client of hvdeploy: enqueue one managed VM deployment and await
its result envelope, with pika and msgpack as a FastAPI control plane would.

    /usr/bin/python3 deploy/examples/upstream_client.py --host hv01.lab.example --vm-name web-01

Prints the envelope as JSON on stdout; exits 0 when its status is "success",
1 otherwise (an error or partial envelope, an unroutable or refused publish,
no envelope within --timeout, a broker error).

In a web service, run submit_and_wait() in a worker thread (pika's
BlockingConnection is not thread-safe: one connection per thread), or keep
one long-lived consumer on a reply queue and match envelopes to requests by
job_id, as here.
"""
import argparse
import json
import os
import secrets
import sys
import time
import uuid

import msgpack
import pika
import pika.exceptions

JOB_TYPE = "managed_deployment"


def build_job(job_id, host, vm_name, guest_password):
    """A four-stage deployment (vm.create, disk.create, nic.create,
    vm.initialize) in the shape of contract §3."""
    return {
        "job_id": job_id,
        "job_type": JOB_TYPE,
        "request": {
            "target_host": host,
            "vm_spec": {"vm_name": vm_name, "gb_ram": 4, "cpu_cores": 2,
                        "storage_class": "fast-ssd"},
            "disk_spec": {"image_name": "Windows Server 2022"},
            "nic_spec": {"network": "Production"},
            "guest_config": {"guest_la_uid": "Administrator",
                             "guest_la_pw": guest_password},
        },
    }


def decode(body, content_type):
    if content_type == "application/json":
        return json.loads(body)
    return msgpack.unpackb(body, raw=False)


def submit_and_wait(url, prefix, job, timeout):
    """Publishes job and returns its envelope (a dict), or raises."""
    params = pika.URLParameters(url)
    params.blocked_connection_timeout = 30
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        # A private reply queue: server-named, gone with the connection.
        reply_q = ch.queue_declare(queue="", exclusive=True,
                                   auto_delete=True).method.queue
        props = pika.BasicProperties(
            content_type="application/msgpack",
            delivery_mode=2,  # persistent
            message_id=job["job_id"],
            correlation_id=job["job_id"],
            reply_to=reply_q,
        )
        # With confirms on, basic_publish returns once the broker has the
        # message; it raises UnroutableError when no queue is bound for the
        # job type (mandatory) and NackError when the broker refuses it
        # (e.g. x-overflow=reject-publish on a full queue).
        ch.basic_publish(exchange=prefix + ".jobs", routing_key=JOB_TYPE,
                         body=msgpack.packb(job, use_bin_type=True),
                         properties=props, mandatory=True)
        print("published job %s, waiting for its envelope on %s"
              % (job["job_id"], reply_q), file=sys.stderr)

        seen = set()    # job ids answered already: envelopes are at-least-once
        deadline = time.monotonic() + timeout
        envelope = None
        for method, p, body in ch.consume(reply_q, inactivity_timeout=1.0):
            if method is not None:
                ch.basic_ack(method.delivery_tag)
                env = decode(body, p.content_type)
                jid = env.get("job_id") if isinstance(env, dict) else None
                if jid in seen:
                    print("duplicate envelope for %s ignored" % jid,
                          file=sys.stderr)
                elif jid != job["job_id"]:
                    print("envelope for another job (%s) ignored" % jid,
                          file=sys.stderr)
                else:
                    seen.add(jid)
                    envelope = env
                    break
            if time.monotonic() >= deadline:
                break
        ch.cancel()
        if envelope is None:
            raise TimeoutError("no envelope for job %s within %g s"
                               % (job["job_id"], timeout))
        return envelope
    finally:
        if conn.is_open:
            conn.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("HVD_AMQP_URL"),
                    help="broker URL (default: $HVD_AMQP_URL)")
    ap.add_argument("--prefix", default=os.environ.get("HVD_AMQP_PREFIX",
                                                       "hvdeploy"),
                    help="the fleet's HVD_AMQP_PREFIX (default: hvdeploy)")
    ap.add_argument("--host", default="hv01.lab.example",
                    help="request.target_host (default: hv01.lab.example)")
    ap.add_argument("--vm-name", help="vm_spec.vm_name (default: py-<id>)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds to wait for the envelope (default: 120)")
    args = ap.parse_args(argv)
    if not args.url:
        ap.error("no broker URL: pass --url or set HVD_AMQP_URL")

    job_id = str(uuid.uuid4())
    vm_name = args.vm_name or "py-" + job_id[:8]
    # The guest's password travels in the request only; hvdeploy never
    # returns it. HVD_EXAMPLE_GUEST_PW lets a test choose it.
    password = os.environ.get("HVD_EXAMPLE_GUEST_PW") or secrets.token_urlsafe(18)
    job = build_job(job_id, args.host, vm_name, password)
    try:
        envelope = submit_and_wait(args.url, args.prefix, job, args.timeout)
    except pika.exceptions.UnroutableError:
        print("error: the broker returned the job: no queue is bound to %s.jobs "
              "for %s (wrong --prefix, or no fleet declared its topology)"
              % (args.prefix, JOB_TYPE), file=sys.stderr)
        return 1
    except pika.exceptions.ChannelClosedByBroker as e:
        if e.reply_code == 404:
            print("error: no exchange %s.jobs on the broker (wrong --prefix, or "
                  "no worker has declared its topology yet)" % args.prefix,
                  file=sys.stderr)
        else:
            print("error: the broker closed the channel: %s %s"
                  % (e.reply_code, e.reply_text), file=sys.stderr)
        return 1
    except pika.exceptions.NackError:
        print("error: the broker refused the job (queue full?)",
              file=sys.stderr)
        return 1
    except (pika.exceptions.AMQPError, OSError, TimeoutError) as e:
        print("error: %s" % (str(e) or type(e).__name__), file=sys.stderr)
        return 1
    json.dump(envelope, sys.stdout, indent=2, sort_keys=True,
              default=lambda b: b.hex() if isinstance(b, bytes) else str(b))
    sys.stdout.write("\n")
    print("job %s: %s%s" % (job_id, envelope.get("status"),
                            ": " + str(envelope.get("code"))
                            if envelope.get("code") else ""),
          file=sys.stderr)
    return 0 if envelope.get("status") == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
