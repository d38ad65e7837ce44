"""The hvdeploy client (contract v1.1 §2-§5) on aio-pika and msgpack.

One Client per control plane instance. Its reply queue is a durable quorum
queue named "<prefix>.replies.<control_plane>": the fleet publishes every
envelope there persistently, so an envelope that arrives while the control
plane is down waits for it. Envelopes are acknowledged only once
await_result() or results() handed them to the caller, and deduplicated by
job_id (the fleet may publish an envelope twice after a crash; consumers
deduplicate by job_id, contract §4).
"""

import asyncio
import json
import uuid
from collections import OrderedDict
from typing import Any, AsyncIterator, Dict, Optional

import aio_pika
import aio_pika.exceptions
import msgpack
from pamqp.commands import Basic

JOB_TYPE = "managed_deployment"
DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
MSGPACK = "application/msgpack"
JSON = "application/json"


class DirectReplyToError(ValueError):
    """RabbitMQ's direct reply-to cannot carry the envelope of a long job."""


class JobNotRoutedError(RuntimeError):
    """The broker returned the job (mandatory): no fleet handles its job type."""


class JobRefusedError(RuntimeError):
    """The broker refused the job (nack): the job queue is full or unavailable."""


def _decode(message: aio_pika.abc.AbstractIncomingMessage) -> Any:
    if message.content_type == JSON:
        return json.loads(message.body)
    return msgpack.unpackb(message.body, raw=False)


def _encode(body: Dict[str, Any], content_type: str) -> bytes:
    if content_type == JSON:
        return json.dumps(body, separators=(",", ":")).encode()
    return msgpack.packb(body, use_bin_type=True)


class Client:
    """A control plane's connection to the fleet.

    url            the broker (amqp:// or amqps://)
    control_plane  names this control plane's durable reply queue; use the same
                   name after a restart to get the envelopes that came meanwhile
    prefix         HVD_AMQP_PREFIX of the fleet
    reply_queue    another reply queue name (not direct reply-to)
    content_type   how jobs are encoded (msgpack by default; envelopes come back in it)
    """

    def __init__(self, url: str, *, control_plane: str = "default", prefix: str = "hvdeploy",
                 reply_queue: Optional[str] = None, content_type: str = MSGPACK,
                 prefetch: int = 64) -> None:
        self.url = url
        self.prefix = prefix
        self.reply_queue_name = reply_queue or f"{prefix}.replies.{control_plane}"
        if self.reply_queue_name.startswith(DIRECT_REPLY_TO):
            raise DirectReplyToError(
                "direct reply-to (amq.rabbitmq.reply-to) lives only as long as this channel, and a "
                "deployment may take hours and outlive it: the fleet refuses it; use a durable named queue")
        if content_type not in (MSGPACK, JSON):
            raise ValueError(f"content_type must be {MSGPACK} or {JSON}")
        self.content_type = content_type
        self.prefetch = prefetch
        self._conn: Optional[aio_pika.abc.AbstractRobustConnection] = None
        self._channel = None
        self._jobs = None
        self._replies = None
        self._consumer_tag = None
        self._seen: "OrderedDict[str, Dict[str, Any]]" = OrderedDict()  # job_id -> envelope handed out
        self.max_remembered = 100000  # envelopes remembered for deduplication
        self._waiting: Dict[str, asyncio.Future] = {}
        self._unclaimed: "asyncio.Queue" = asyncio.Queue()
        self._stash: Dict[str, Any] = {}             # job_id -> (envelope, message) not yet asked for

    # ---- connection ----

    async def connect(self) -> "Client":
        self._conn = await aio_pika.connect_robust(self.url, client_properties={
            "connection_name": f"hvdeploy_client {self.reply_queue_name}"})
        # confirms on; a mandatory job that no queue takes raises instead of vanishing
        self._channel = await self._conn.channel(publisher_confirms=True, on_return_raises=True)
        await self._channel.set_qos(prefetch_count=self.prefetch)
        try:
            self._jobs = await self._channel.get_exchange(f"{self.prefix}.jobs", ensure=True)
        except aio_pika.exceptions.ChannelClosed as e:
            raise RuntimeError(f"no exchange {self.prefix}.jobs: has a worker with prefix "
                               f"'{self.prefix}' ever started?") from e
        self._replies = await self._channel.declare_queue(
            self.reply_queue_name, durable=True, arguments={"x-queue-type": "quorum"})
        self._consumer_tag = await self._replies.consume(self._on_reply)
        return self

    async def close(self) -> None:
        """Closes the connection; envelopes not yet handed out stay in the queue."""
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> "Client":
        return await self.connect()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ---- submitting ----

    async def submit(self, request: Dict[str, Any], *, job_id: Optional[str] = None,
                     options: Optional[Dict[str, Any]] = None, correlation_id: Optional[str] = None,
                     job_type: str = JOB_TYPE) -> str:
        """Publishes one job (persistent, mandatory, with a confirm) and returns its job_id.

        Raises JobNotRoutedError when no fleet handles job_type, JobRefusedError
        when the broker refused it. Sending the same job_id again is safe: a
        finished job is answered with its stored envelope (deduplicated here)."""
        job_id = job_id or str(uuid.uuid4())
        body = {"job_id": job_id, "job_type": job_type, "request": request}
        if options:
            body["options"] = options
        message = aio_pika.Message(
            _encode(body, self.content_type), content_type=self.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=job_id,
            correlation_id=correlation_id or job_id, reply_to=self.reply_queue_name)
        try:
            confirm = await self._jobs.publish(message, routing_key=job_type, mandatory=True)
        except aio_pika.exceptions.PublishError as e:  # basic.return: no queue took it
            raise JobNotRoutedError(f"no fleet handles job type '{job_type}' on {self.prefix}.jobs") from e
        except aio_pika.exceptions.DeliveryError as e:  # basic.nack
            raise JobRefusedError(f"the broker refused job {job_id} (is {self.prefix}.jobs full?)") from e
        if not isinstance(confirm, Basic.Ack):
            raise JobRefusedError(f"the broker did not confirm job {job_id} ({type(confirm).__name__})")
        return job_id

    # ---- results ----

    async def _on_reply(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        try:
            env = _decode(message)
        except Exception:  # not an envelope: nothing to wait for, do not loop on it
            await message.reject(requeue=False)
            return
        job_id = env.get("job_id") if isinstance(env, dict) else None
        if job_id is None or job_id in self._seen or job_id in self._stash:
            await message.ack()   # a duplicate (or an envelope without a job id): delivered once
            return
        fut = self._waiting.pop(job_id, None)
        if fut is not None and not fut.done():
            self._remember(job_id, env)
            await message.ack()
            fut.set_result(env)
            return
        self._stash[job_id] = (env, message)   # acked when someone takes it
        self._unclaimed.put_nowait(job_id)

    def _remember(self, job_id: str, env: Dict[str, Any]) -> None:
        self._seen[job_id] = env
        while len(self._seen) > self.max_remembered:
            self._seen.popitem(last=False)

    async def await_result(self, job_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The envelope of job_id, once (a second call returns the same envelope;
        a duplicate delivery is dropped). Raises asyncio.TimeoutError."""
        if job_id in self._seen:
            return self._seen[job_id]
        if job_id in self._stash:
            env, message = self._stash.pop(job_id)
            self._remember(job_id, env)
            await message.ack()
            return env
        fut = self._waiting.get(job_id) or asyncio.get_running_loop().create_future()
        self._waiting[job_id] = fut
        # shielded: a timeout leaves the future in place for a later call
        return await asyncio.wait_for(asyncio.shield(fut), timeout)

    async def results(self, timeout: Optional[float] = None) -> AsyncIterator[Dict[str, Any]]:
        """Every envelope that nobody awaits by job id, each job once, as it comes."""
        while True:
            job_id = await asyncio.wait_for(self._unclaimed.get(), timeout)
            if job_id not in self._stash:
                continue
            env, message = self._stash.pop(job_id)
            self._remember(job_id, env)
            await message.ack()
            yield env

    # ---- progress ----

    async def open_events(self, job_id: Optional[str] = None) -> "EventStream":
        """Binds a private queue to <prefix>.events now (so that no event after
        this call is missed) and returns it as an async iterator of events; see
        events()."""
        channel = await self._conn.channel()
        exchange = await channel.get_exchange(f"{self.prefix}.events", ensure=True)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in ("job.#", "stage.#"):
            await queue.bind(exchange, key)
        return EventStream(channel, queue, job_id)

    async def events(self, job_id: Optional[str] = None) -> AsyncIterator[Dict[str, Any]]:
        """Live progress (contract §5): job and stage transitions and the agent's
        output lines (stage.<stage>.output, with "lines"), of one job or of all,
        each with its "routing_key". Best effort: an event published while
        nobody listens is not kept. Ends after the job's terminal transition
        when job_id is given."""
        async for ev in await self.open_events(job_id):
            yield ev


class EventStream:
    """Events of one private queue bound to <prefix>.events (Client.open_events)."""

    TERMINAL = ("job.succeeded", "job.failed", "job.cancelled")

    def __init__(self, channel, queue, job_id: Optional[str]) -> None:
        self._channel, self._queue, self._job_id = channel, queue, job_id

    async def __aiter__(self) -> AsyncIterator[Dict[str, Any]]:
        try:
            async with self._queue.iterator(no_ack=True) as it:
                async for message in it:
                    try:
                        ev = _decode(message)
                    except Exception:
                        continue
                    if not isinstance(ev, dict) or (self._job_id is not None and ev.get("job_id") != self._job_id):
                        continue
                    ev["routing_key"] = message.routing_key
                    yield ev
                    if self._job_id is not None and message.routing_key in self.TERMINAL:
                        return
        finally:
            await self.close()

    async def close(self) -> None:
        if not self._channel.is_closed:
            await self._channel.close()
