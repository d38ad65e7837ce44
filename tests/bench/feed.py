#!/usr/bin/python3
"""The benchmark's feeder: publishes N jobs as upstream would (msgpack,
persistent, one publisher confirm each) to PREFIX.jobs with reply_to REPLY,
in a process of its own so that it runs concurrently with the collecting of
the envelopes; prints the wall time of its first and last publish.

usage: feed.py PREFIX REPLY N HOSTS
"""
import os
import sys
import time
import uuid

import msgpack
import pika


def job_body(i, host):
    return {
        "job_id": str(uuid.uuid4()),
        "job_type": "managed_deployment",
        "request": {
            "target_host": host,
            "vm_spec": {"vm_name": "bench-%06d" % i, "gb_ram": 4, "cpu_cores": 2},
            "disk_spec": {"image_name": "Ubuntu 22.04"},
            "nic_spec": {"network": "Production"},
            "guest_config": {"guest_la_uid": "admin", "guest_la_pw": "S3cret!pw-TEST"},
        },
    }


def main():
    prefix, reply, n, nhosts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    hosts = ["hv%03d.bench.example" % (h + 1) for h in range(nhosts)]
    bodies = [job_body(i, hosts[i % nhosts]) for i in range(n)]
    conn = pika.BlockingConnection(pika.URLParameters(os.environ["HVD_AMQP_URL"]))
    ch = conn.channel()
    ch.confirm_delivery()
    t0 = time.time()
    for b in bodies:
        ch.basic_publish(prefix + ".jobs", "managed_deployment", msgpack.packb(b),
                         pika.BasicProperties(content_type="application/msgpack", delivery_mode=2,
                                              message_id=b["job_id"], correlation_id=b["job_id"], reply_to=reply))
    t1 = time.time()
    conn.close()
    print("%.6f %.6f" % (t0, t1))


if __name__ == "__main__":
    main()
