#!/usr/bin/python3
"""An upstream client of hvdeploy: enqueue one managed VM deployment and await
its result envelope with the hvdeploy_client package (clients/python), as an
asyncio control plane (FastAPI, say) would.

    pip install --no-build-isolation clients/python     # or PYTHONPATH=clients/python
    /usr/bin/python3 deploy/examples/upstream_client.py --host hv01.lab.example --vm-name web-01

Prints the envelope as JSON on stdout (and, with --follow, the job's progress
and its agent's output lines on stderr); exits 0 when its status is "success",
1 otherwise (an error or partial envelope, an unroutable or refused publish,
no envelope within --timeout, a broker error).

The reply queue is durable and named after the control plane (--control-plane):
run the example again with --resume JOB_ID after killing it mid-job and the
envelope is still there.
"""
import argparse
import asyncio
import json
import os
import secrets
import sys
import uuid

import aio_pika.exceptions

try:
    from hvdeploy_client import Client, JobNotRoutedError, JobRefusedError
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python"))
    from hvdeploy_client import Client, JobNotRoutedError, JobRefusedError


def build_request(host, vm_name, guest_password):
    """A four-stage deployment (vm.create, disk.create, nic.create,
    vm.initialize) in the shape of contract §3."""
    return {
        "target_host": host,
        "vm_spec": {"vm_name": vm_name, "gb_ram": 4, "cpu_cores": 2, "storage_class": "fast-ssd"},
        "disk_spec": {"image_name": "Windows Server 2022"},
        "nic_spec": {"network": "Production"},
        "guest_config": {"guest_la_uid": "Administrator", "guest_la_pw": guest_password},
    }


async def follow(stream):
    async for ev in stream:
        if "lines" in ev:
            for line in ev["lines"]:
                print("  %s | %s" % (ev.get("stage"), line), file=sys.stderr)
        else:
            print("%s %s%s" % (ev["routing_key"], ev.get("message") or "",
                               " (attempt %s)" % ev["attempt"] if ev.get("attempt") else ""), file=sys.stderr)


async def run(args):
    async with Client(args.url, prefix=args.prefix, control_plane=args.control_plane) as client:
        watcher = None
        if args.resume:
            job_id = args.resume
        else:
            job_id = str(uuid.uuid4())
            vm_name = args.vm_name or "py-" + job_id[:8]
            # The guest's password travels in the request only; hvdeploy never
            # returns it. HVD_EXAMPLE_GUEST_PW lets a test choose it.
            password = os.environ.get("HVD_EXAMPLE_GUEST_PW") or secrets.token_urlsafe(18)
            # bound before the job goes out, so that no event of it is missed
            watcher = asyncio.ensure_future(follow(await client.open_events(job_id))) if args.follow else None
            await client.submit(build_request(args.host, vm_name, password), job_id=job_id)
            print("submitted job %s" % job_id, file=sys.stderr)
        try:
            return job_id, await client.await_result(job_id, timeout=args.timeout)
        finally:
            if watcher:
                watcher.cancel()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("HVD_AMQP_URL"), help="broker URL (default: $HVD_AMQP_URL)")
    ap.add_argument("--prefix", default=os.environ.get("HVD_AMQP_PREFIX", "hvdeploy"),
                    help="the fleet's HVD_AMQP_PREFIX (default: hvdeploy)")
    ap.add_argument("--control-plane", default="example",
                    help="names the durable reply queue <prefix>.replies.<name> (default: example)")
    ap.add_argument("--host", default="hv01.lab.example", help="request.target_host (default: hv01.lab.example)")
    ap.add_argument("--vm-name", help="vm_spec.vm_name (default: py-<id>)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the envelope (default: 120)")
    ap.add_argument("--follow", action="store_true", help="print progress and output lines on stderr")
    ap.add_argument("--resume", metavar="JOB_ID", help="only await the envelope of a job submitted earlier")
    args = ap.parse_args(argv)
    if not args.url:
        ap.error("no broker URL: pass --url or set HVD_AMQP_URL")
    try:
        job_id, envelope = asyncio.run(run(args))
    except JobNotRoutedError as e:
        print("error: %s (wrong --prefix, or no fleet declared its topology)" % e, file=sys.stderr)
        return 1
    except JobRefusedError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    except asyncio.TimeoutError:
        print("error: no envelope within %g s (it stays in the reply queue: --resume JOB_ID later)" % args.timeout,
              file=sys.stderr)
        return 1
    except (aio_pika.exceptions.AMQPError, OSError, RuntimeError) as e:
        print("error: %s" % (str(e) or type(e).__name__), file=sys.stderr)
        return 1
    json.dump(envelope, sys.stdout, indent=2, sort_keys=True,
              default=lambda b: b.hex() if isinstance(b, bytes) else str(b))
    sys.stdout.write("\n")
    print("job %s: %s%s" % (job_id, envelope.get("status"),
                            ": " + str(envelope.get("code")) if envelope.get("code") else ""), file=sys.stderr)
    return 0 if envelope.get("status") == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
