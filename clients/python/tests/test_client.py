"""Tests of hvdeploy_client against the real broker and a real worker (started
by tests/run.sh, whose agent makes every vm.create take a few seconds and print
lines): submit and await, a control plane restarted while its job runs, each
envelope delivered once, live events, and the refusals (direct reply-to, an
unroutable job type)."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import unittest
import uuid

import aio_pika
import msgpack

from hvdeploy_client import Client, DirectReplyToError, JobNotRoutedError

URL = os.environ["HVD_AMQP_URL"]
PREFIX = os.environ["HVD_AMQP_PREFIX"]
CTL = os.environ["HVDEPLOYCTL"]


def request(host="hv-py.lab"):
    return {"target_host": host,
            "vm_spec": {"vm_name": "py-" + uuid.uuid4().hex[:8], "gb_ram": 2, "cpu_cores": 1},
            "guest_config": {"guest_la_uid": "Administrator", "guest_la_pw": os.environ["PY_TEST_SECRET"]}}


def status(job_id):
    r = subprocess.run([CTL, "status", job_id, "--output", "json"], capture_output=True, text=True, timeout=60)
    return json.loads(r.stdout) if r.stdout else {}


async def queue_depth(name):
    conn = await aio_pika.connect(URL)
    try:
        ch = await conn.channel()
        q = await ch.declare_queue(name, passive=True)
        return q.declaration_result.message_count
    finally:
        await conn.close()


class ClientTests(unittest.IsolatedAsyncioTestCase):

    async def test_submit_and_await(self):
        async with Client(URL, prefix=PREFIX, control_plane="cp-basic") as c:
            job_id = await c.submit(request(), correlation_id="corr-py")
            env = await c.await_result(job_id, timeout=60)
        self.assertEqual(env["status"], "success", env.get("message"))
        self.assertEqual(env["job_id"], job_id)
        self.assertEqual(env["correlation_id"], "corr-py")
        self.assertEqual([s["name"] for s in env["stages"]], ["vm.create", "vm.initialize"])
        self.assertNotIn(os.environ["PY_TEST_SECRET"], json.dumps(env))

    async def test_restarted_control_plane_still_gets_the_envelope(self):
        # a control plane submits and dies (SIGKILL) while its job runs
        script = ("import asyncio, sys, json\n"
                  "from hvdeploy_client import Client\n"
                  "async def main():\n"
                  "    c = await Client(sys.argv[1], prefix=sys.argv[2], control_plane='cp-restart').connect()\n"
                  "    print(await c.submit(json.loads(sys.argv[3])), flush=True)\n"
                  "    await asyncio.sleep(3600)\n"
                  "asyncio.run(main())\n")
        p = subprocess.Popen([sys.executable, "-c", script, URL, PREFIX, json.dumps(request())],
                             stdout=subprocess.PIPE, text=True)
        job_id = p.stdout.readline().strip()
        self.assertTrue(job_id)
        self.assertNotIn(status(job_id).get("status"), ("succeeded", "failed"), "killed while the job runs")
        p.send_signal(signal.SIGKILL)
        p.wait()
        p.stdout.close()
        deadline = time.time() + 60
        while status(job_id).get("status") != "succeeded" and time.time() < deadline:
            await asyncio.sleep(0.5)
        self.assertEqual(status(job_id).get("status"), "succeeded", "the job ended while nobody listened")
        # the same control plane, started again, collects it
        async with Client(URL, prefix=PREFIX, control_plane="cp-restart") as c:
            env = await c.await_result(job_id, timeout=20)
        self.assertEqual(env["job_id"], job_id)
        self.assertEqual(env["status"], "success")
        self.assertEqual(await queue_depth(f"{PREFIX}.replies.cp-restart"), 0, "acknowledged once taken")

    async def test_duplicates_are_delivered_once(self):
        async with Client(URL, prefix=PREFIX, control_plane="cp-dup") as c:
            req = request()
            job_id = await c.submit(req)
            first = await c.await_result(job_id, timeout=60)
            # upstream sends the finished job again: the fleet answers with the stored envelope, byte for byte
            await c.submit(req, job_id=job_id)
            # and an outbox resend after a crash: the same envelope once more
            conn = await aio_pika.connect(URL)
            ch = await conn.channel()
            await ch.default_exchange.publish(
                aio_pika.Message(msgpack.packb(first, use_bin_type=True), content_type="application/msgpack",
                                 message_id=job_id), routing_key=f"{PREFIX}.replies.cp-dup")
            await conn.close()
            other = await c.submit(request())
            got = []

            async def collect():
                async for env in c.results(timeout=8):
                    got.append(env["job_id"])

            with self.assertRaises(asyncio.TimeoutError):
                await collect()
            self.assertEqual(got, [other], "only the other job's envelope comes; the duplicates are dropped")
            self.assertEqual(await c.await_result(job_id, timeout=1), first, "await_result keeps its answer")
        self.assertEqual(await queue_depth(f"{PREFIX}.replies.cp-dup"), 0, "the duplicates were acknowledged")

    async def test_events_show_transitions_and_output(self):
        async with Client(URL, prefix=PREFIX, control_plane="cp-events") as c:
            job_id = str(uuid.uuid4())
            stream = await c.open_events(job_id)
            await c.submit(request(), job_id=job_id)
            keys, lines = [], []
            async for ev in stream:
                keys.append(ev["routing_key"])
                lines += ev.get("lines", [])
            await c.await_result(job_id, timeout=30)
        self.assertIn("stage.vm.create.running", keys)
        self.assertIn("stage.vm.create.output", keys)
        self.assertEqual(keys[-1], "job.succeeded")
        self.assertIn("vm.create line 1", lines)

    async def test_direct_reply_to_is_refused(self):
        with self.assertRaises(DirectReplyToError):
            Client(URL, prefix=PREFIX, reply_queue="amq.rabbitmq.reply-to")
        # a client that uses it anyway (the RPC pattern): the fleet refuses the job
        conn = await aio_pika.connect(URL)
        ch = await conn.channel()
        direct = await ch.get_queue("amq.rabbitmq.reply-to", ensure=False)
        answers = []
        await direct.consume(lambda m: answers.append(m), no_ack=True)
        job_id = str(uuid.uuid4())
        body = {"job_id": job_id, "job_type": "managed_deployment", "request": request()}
        jobs = await ch.get_exchange(f"{PREFIX}.jobs")
        await jobs.publish(aio_pika.Message(msgpack.packb(body), content_type="application/msgpack",
                                            message_id=job_id, reply_to="amq.rabbitmq.reply-to"),
                           routing_key="managed_deployment")
        deadline = time.time() + 20
        while status(job_id).get("status") != "failed" and time.time() < deadline:
            await asyncio.sleep(0.3)
        s = status(job_id)
        self.assertEqual(s.get("status"), "failed")
        self.assertEqual(s.get("code"), "validation_error")
        # the envelope went to <prefix>.results, not to the pseudo-queue
        results = await ch.declare_queue(f"{PREFIX}.results", passive=True)
        found = None
        for _ in range(20):
            m = await results.get(no_ack=True, fail=False)
            if m is None:
                break
            env = msgpack.unpackb(m.body, raw=False)
            if env.get("job_id") == job_id:
                found = env
        await conn.close()
        self.assertIsNotNone(found, "the refusal envelope is in the results queue")
        self.assertEqual(found["errors"][0]["loc"], "reply_to")
        self.assertIn("durable named queue", found["errors"][0]["msg"])
        self.assertEqual(answers, [], "nothing was sent to direct reply-to")

    async def test_unroutable_job_type(self):
        async with Client(URL, prefix=PREFIX, control_plane="cp-route") as c:
            with self.assertRaises(JobNotRoutedError):
                await c.submit(request(), job_type="no_such_type")


if __name__ == "__main__":
    unittest.main(verbosity=2)
