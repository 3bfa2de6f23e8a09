"""IntelMQ 3.5's own AMQP pipeline code (intelmq.lib.pipeline.Amqp) at both
ends of the bridge, as an IntelMQ bot would use it.

    amqp_pipeline.py send QUEUE       # each stdin line, sent as a bot sends
    amqp_pipeline.py receive QUEUE N  # N messages, parsed and checked as a
                                      # bot parses them, printed as JSON Lines

Run by tests/amqp.rs when `intelmq` is importable (INTELMQ_PYTHON names the
interpreter).
"""

import json
import logging
import sys

from intelmq.lib.message import MessageFactory
from intelmq.lib.pipeline import PipelineFactory

ARGS = {
    "source_pipeline_broker": "amqp",
    "destination_pipeline_broker": "amqp",
    "source_pipeline_host": "127.0.0.1",
    "source_pipeline_port": 5672,
    "destination_pipeline_host": "127.0.0.1",
    "destination_pipeline_port": 5672,
}


def main():
    logger = logging.getLogger("bridge-test")
    mode, queue = sys.argv[1], sys.argv[2]
    if mode == "send":
        pipe = PipelineFactory.create(logger, direction="destination", queues=[queue], pipeline_args=dict(ARGS))
        pipe.connect()
        for line in sys.stdin:
            if line.strip():
                # Unserializing checks the event against IntelMQ's harmonization.
                pipe.send(MessageFactory.unserialize(line).serialize())
    else:
        pipe = PipelineFactory.create(logger, direction="source", queues=queue, pipeline_args=dict(ARGS))
        pipe.connect()
        for _ in range(int(sys.argv[3])):
            message = MessageFactory.unserialize(pipe.receive())
            pipe.acknowledge()
            print(json.dumps(dict(message)), flush=True)
    pipe.disconnect()


if __name__ == "__main__":
    main()
