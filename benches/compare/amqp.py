"""IntelMQ 3.5's own AMQP bot loop against `intelmq-bridge serve`, on the
same local RabbitMQ and the same messages, in one run; prints messages per
second for each and the ratio.

    python3 amqp.py BRIDGE DATADIR

Run by run.sh, which generates DATADIR/intelmq.jsonl and provides IntelMQ
and pika in a venv. For each side the N events are first published to a
fresh source queue declared as IntelMQ declares it (durable,
x-queue-mode=lazy, persistent messages); the clock then runs

  (a) IntelMQ: from the bot's pipeline connections (`intelmq.lib.pipeline`,
      PipelineFactory/Amqp with pika, as `Bot` opens them) until the N-th
      message is acknowledged; per message: receive, unserialize with the
      harmonization check (MessageFactory), the IdeaExpertBot translation
      table, send the IDEA JSON to the destination queue (persistent,
      mandatory, confirmed), acknowledge;
  (b) the bridge: from the start of `intelmq-bridge serve --config` (its
      start-up is charged to it) until its IDEA partner queue holds N.

Loopback only (127.0.0.1:5672, guest/guest); every queue is deleted
afterwards. AMQP_TIMEOUT (seconds, default 600) bounds each side.
"""

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pika
from intelmq.lib.pipeline import Amqp, PipelineFactory

import compare

HOST, PORT, USER, PASSWORD = "127.0.0.1", 5672, "guest", "guest"
URL = f"amqp://{USER}:{PASSWORD}@{HOST}:{PORT}/%2f"
TIMEOUT = int(os.environ.get("AMQP_TIMEOUT", "600"))
PREFETCH = 256  # the bridge's default


class Broker:
    """A plain pika connection for what is not timed: preloading, queue
    depths, clean-up."""

    def __init__(self):
        credentials = pika.PlainCredentials(USER, PASSWORD)
        self.connection = pika.BlockingConnection(
            pika.ConnectionParameters(HOST, PORT, credentials=credentials))
        self.channel = self.connection.channel()
        self.queues = []

    def declare(self, queue):
        """Declared as IntelMQ declares its queues; deleted by close()."""
        self.channel.queue_declare(queue, durable=True, arguments=Amqp.queue_args)
        self.queues.append(queue)

    def depth(self, queue):
        return self.channel.queue_declare(queue, passive=True).method.message_count

    def wait_for(self, queue, count, deadline, alive=lambda: True):
        while self.depth(queue) < count:
            if time.monotonic() > deadline or not alive():
                raise SystemExit(f"{queue}: {self.depth(queue)} of {count} messages arrived")
            self.connection.sleep(0.005)

    def preload(self, queue, lines):
        """The messages as an IntelMQ bot sends them: persistent, no
        content type, through the default exchange."""
        self.declare(queue)
        persistent = pika.BasicProperties(delivery_mode=2)
        for line in lines:
            self.channel.basic_publish("", queue, line.encode(), persistent)
        self.wait_for(queue, len(lines), time.monotonic() + TIMEOUT)

    def first_format(self, queue):
        """The IDEA `Format` of the first message in `queue`, as a sanity check."""
        _, _, body = self.channel.basic_get(queue, auto_ack=False)
        return json.loads(body).get("Format") if body else None

    def close(self):
        for queue in self.queues:
            self.channel.queue_delete(queue)
        self.connection.close()


class Timeout(Exception):
    pass


def raise_timeout(*_):
    raise Timeout()


def intelmq_bot(source, destination, count, harm):
    """IntelMQ's IDEA expert as a bot runs it on AMQP; seconds for `count`."""
    args = {}
    for side in ("source", "destination"):
        args.update({
            f"{side}_pipeline_broker": "amqp",
            f"{side}_pipeline_host": HOST,
            f"{side}_pipeline_port": PORT,
            f"{side}_pipeline_username": USER,
            f"{side}_pipeline_password": PASSWORD,
        })
    logger = logging.getLogger("idea-expert")
    bot = compare.idea_expert()
    signal.signal(signal.SIGALRM, raise_timeout)
    signal.alarm(TIMEOUT)
    try:
        start = time.perf_counter()
        # Two pipelines, two connections, as Bot.__connect_pipelines opens them.
        inbound = PipelineFactory.create(logger, direction="source", queues=source, pipeline_args=dict(args))
        inbound.connect()
        outbound = PipelineFactory.create(logger, direction="destination", queues=[destination],
                                          pipeline_args=dict(args))
        outbound.connect()
        for _ in range(count):
            message = inbound.receive()
            outbound.send(compare.to_idea(bot, message, harm))
            inbound.acknowledge()
        elapsed = time.perf_counter() - start
    except Timeout:
        raise SystemExit(f"IntelMQ bot loop: not done within {TIMEOUT} s")
    finally:
        signal.alarm(0)
    inbound.disconnect()
    outbound.disconnect()
    return elapsed


def free_port():
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def bridge_config(workdir, source, destination):
    return f"""origin = "bench"
[http]
listen = "{HOST}:{free_port()}"
[seen]
path = "{workdir}/seen.redb"
[[inputs]]
name = "from-intelmq"
url = "{URL}"
queue = "{source}"
format = "intelmq"
declare = "intelmq"
prefetch = {PREFETCH}
[[partners]]
name = "idea"
format = "idea"
url = "{URL}"
queue = "{destination}"
declare = "intelmq"
[[routes]]
input = "from-intelmq"
partners = ["idea"]
"""


def bridge_serve(bridge, broker, source, destination, count):
    """`intelmq-bridge serve` from IntelMQ's queue to an IDEA partner queue;
    seconds until the partner queue holds `count`."""
    with tempfile.TemporaryDirectory(prefix="ib-compare-") as workdir:
        config = os.path.join(workdir, "bridge.toml")
        with open(config, "w") as f:
            f.write(bridge_config(workdir, source, destination))
        broker.declare(destination)
        broker.queues.append(f"{source}.dead-letter")
        log_path = os.path.join(workdir, "bridge.log")
        with open(log_path, "wb") as log:
            start = time.perf_counter()
            serve = subprocess.Popen([bridge, "serve", "--config", config], stdout=subprocess.DEVNULL,
                                     stderr=log, env={**os.environ, "RUST_LOG": "warn"})
        try:
            broker.wait_for(destination, count, time.monotonic() + TIMEOUT,
                            alive=lambda: serve.poll() is None)
            elapsed = time.perf_counter() - start
        except BaseException:
            with open(log_path) as f:
                print(f"intelmq-bridge serve:\n{f.read()[-2000:]}", file=sys.stderr)
            raise
        finally:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                serve.kill()
                serve.wait()
    return elapsed


def main():
    bridge, data = sys.argv[1], sys.argv[2]
    with open(f"{data}/intelmq.jsonl") as f:
        lines = f.read().splitlines()
    count = len(lines)
    harm = compare.harmonization()
    tag = f"ib-compare-{os.getpid()}"
    queues = {side: (f"{tag}-{side}-queue", f"{tag}-{side}-idea") for side in ("intelmq", "bridge")}
    broker = Broker()
    try:
        source, destination = queues["intelmq"]
        broker.preload(source, lines)
        broker.declare(destination)
        python = intelmq_bot(source, destination, count, harm)
        broker.wait_for(destination, count, time.monotonic() + 10)
        python_format = broker.first_format(destination)

        source, destination = queues["bridge"]
        broker.preload(source, lines)
        rust = bridge_serve(bridge, broker, source, destination, count)
        rust_format = broker.first_format(destination)
    finally:
        broker.close()

    if python_format != "IDEA0" or rust_format != "IDEA0":
        raise SystemExit(f"not IDEA: IntelMQ wrote Format {python_format!r}, the bridge {rust_format!r}")
    rate = lambda seconds: count / seconds
    print(f"AMQP on {HOST}:{PORT}: {count} IntelMQ events -> IDEA, persistent, "
          "durable lazy queues, publisher confirms")
    print(f"{'':<44}{'msg/s':>10}{'seconds':>10}")
    print(f"{'  IntelMQ 3.5 bot loop (pipeline.Amqp, pika)':<44}{rate(python):>10,.0f}{python:>10.2f}")
    print(f"{'  intelmq-bridge serve':<44}{rate(rust):>10,.0f}{rust:>10.2f}")
    print(f"  serve against IntelMQ's bot loop: {python / rust:.1f}x")


if __name__ == "__main__":
    main()
