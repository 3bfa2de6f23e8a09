"""Times IntelMQ 3.5's own conversions and `intelmq-bridge translate` on the
same input, in one run, and prints events per second and the ratios.

    python3 compare.py BRIDGE DATADIR

Run by run.sh, which generates DATADIR and provides IntelMQ in a venv.
"""

import base64
import json
import logging
import os
import shutil
import subprocess
import sys
import time


def harmonization():
    from importlib.resources import files
    return json.loads(files("intelmq").joinpath("etc/harmonization.conf").read_text())


def idea_expert():
    """IntelMQ's IdeaExpertBot with its translation table, without a broker."""
    from intelmq.bots.experts.idea.expert import IdeaExpertBot
    bot = IdeaExpertBot.__new__(IdeaExpertBot)
    bot.test_mode = False
    bot.stop = lambda *_, **__: None  # nothing to shut down; keeps __del__ quiet
    bot.init()
    return bot


def to_idea(bot, line, harm):
    """What the IDEA expert does per message: the message is loaded and
    checked as a bot receives it (MessageFactory.unserialize), the
    translation table applied, and the IDEA message written as JSON."""
    from intelmq.lib.message import MessageFactory
    event = MessageFactory.unserialize(line, harmonization=harm)
    return json.dumps(bot.process_dict(event, bot.translation))


def python_idea(lines, harm):
    bot = idea_expert()
    out = 0
    for line in lines:
        out += len(to_idea(bot, line, harm))
    return out


def python_idea_table_only(lines):
    """The translation table alone on plain dicts (no harmonization check):
    the most favourable reading of IntelMQ's speed."""
    bot = idea_expert()
    out = 0
    for line in lines:
        idea = bot.process_dict(json.loads(line), bot.translation)
        out += len(json.dumps(idea))
    return out


def python_n6(lines, harm):
    """IntelMQ's n6 parser (parser_n6stomp) on each Stream API message, as
    its process() runs per received report; events are serialised as a bot
    sends them."""
    from intelmq.bots.parsers.n6.parser_n6stomp import N6StompParserBot
    from intelmq.lib.message import MessageFactory, Report
    bot = N6StompParserBot.__new__(N6StompParserBot)
    bot._harmonization = harm
    bot.copy_collector_provided_fields = None
    bot.logger = logging.getLogger("n6-parser")
    sent = []
    report = None
    bot.receive_message = lambda: report
    bot.send_message = lambda *messages, **_: sent.extend(messages)
    bot.acknowledge_message = lambda: None
    bot.stop = lambda *_, **__: None
    out = 0
    for line in lines:
        raw = base64.b64encode(line.encode()).decode()
        report = Report({"raw": raw}, harmonization=harm)
        bot.process()
        for event in sent:
            out += len(MessageFactory.serialize(event))
        sent.clear()
    return out


def timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def bridge_run(bridge, source, target, path, one_core):
    command = [bridge, "translate", "--from", source, "--to", target, "--origin", "bench", path]
    if one_core and shutil.which("taskset"):
        command = ["taskset", "-c", "0", *command]
    start = time.perf_counter()
    with open(os.devnull, "wb") as devnull:
        result = subprocess.run(command, stdout=devnull, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)}: exit {result.returncode}: {result.stderr.decode()[-500:]}")
    return elapsed


def best_of(runs, function, *args):
    return min(function(*args) for _ in range(runs))


def main():
    bridge, data = sys.argv[1], sys.argv[2]
    intelmq_path, n6_path = f"{data}/intelmq.jsonl", f"{data}/n6.jsonl"
    with open(intelmq_path) as f:
        intelmq_lines = f.read().splitlines()
    with open(n6_path) as f:
        n6_lines = f.read().splitlines()
    count = len(intelmq_lines)
    harm = harmonization()
    runs = int(os.environ.get("RUNS", "3"))
    rate = lambda seconds: count / seconds

    print(f"{count} events per input ({os.path.getsize(intelmq_path) // count} bytes per IntelMQ event), "
          f"best of {runs} runs for the bridge, 1 run for Python")
    print()
    python = {
        "intelmq -> idea": rate(timed(python_idea, intelmq_lines, harm)),
        "n6 -> intelmq": rate(timed(python_n6, n6_lines, harm)),
    }
    table_only = rate(timed(python_idea_table_only, intelmq_lines))
    print(f"{'IntelMQ 3.5 (Python)':<36}{'events/s':>12}")
    print(f"{'  IDEA expert (unserialize+table)':<36}{python['intelmq -> idea']:>12,.0f}")
    print(f"{'  IDEA expert (table only, dicts)':<36}{table_only:>12,.0f}")
    print(f"{'  n6 parser (parser_n6stomp)':<36}{python['n6 -> intelmq']:>12,.0f}")
    print()
    pairs = [("intelmq", "idea"), ("n6", "intelmq"), ("intelmq", "intelmq"),
             ("intelmq", "n6"), ("intelmq", "stix")]
    print(f"{'intelmq-bridge translate':<36}{'events/s':>12}{'one core':>12}{'vs Python':>12}")
    for source, target in pairs:
        path = n6_path if source == "n6" else intelmq_path
        both = rate(best_of(runs, bridge_run, bridge, source, target, path, False))
        one = rate(best_of(runs, bridge_run, bridge, source, target, path, True))
        name = f"{source} -> {target}"
        ratio = f"{both / python[name]:.1f}x" if name in python else ""
        print(f"{'  --from ' + source + ' --to ' + target:<36}{both:>12,.0f}{one:>12,.0f}{ratio:>12}")
    print()
    print(f"IDEA against the table-only Python reading: {rate(best_of(runs, bridge_run, bridge, 'intelmq', 'idea', intelmq_path, False)) / table_only:.1f}x")


if __name__ == "__main__":
    main()
