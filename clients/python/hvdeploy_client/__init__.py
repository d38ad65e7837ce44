"""hvdeploy_client: submit managed VM deployments to an hvdeploy fleet over
RabbitMQ and collect their result envelopes, from an asyncio control plane.

    async with Client(url, control_plane="cp-eu1") as c:
        job_id = await c.submit(request)          # confirmed by the broker, mandatory
        envelope = await c.await_result(job_id)   # survives restarts of this process

See README.md beside this package for why the reply queue is a durable named
queue and not RabbitMQ's direct reply-to.
"""

from .client import (
    Client,
    DirectReplyToError,
    JobNotRoutedError,
    JobRefusedError,
    JOB_TYPE,
)

__all__ = ["Client", "DirectReplyToError", "JobNotRoutedError", "JobRefusedError", "JOB_TYPE"]
__version__ = "1.1.0"
