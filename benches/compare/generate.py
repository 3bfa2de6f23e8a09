"""Writes N realistic, varied IntelMQ events and the equivalent n6 Stream
API input, deterministically (fixed seed), for the side-by-side benchmark.

    python3 generate.py N OUTDIR

OUTDIR/intelmq.jsonl: N IntelMQ 3.x events (one per line, about 1 KB each,
as a parser bot's output queue carries them: feed, time, source and
destination, classification, extra fields and the base64 `raw` line).
OUTDIR/n6.jsonl: N n6 Stream API events describing the same incidents
(one address each, so both sides make N IntelMQ events).
"""

import base64
import json
import random
import sys

SEED = 20260301

# (n6 category, IntelMQ taxonomy, type, identifier, protocol, port, feed)
KINDS = [
    ("scanning", "information-gathering", "scanner", "scanning", "tcp", 22, "Scan-SSH"),
    ("bots", "malicious-code", "infected-system", "mirai", "tcp", 23, "Sinkhole-HTTP-Drone"),
    ("cnc", "malicious-code", "c2-server", "c&c server", "tcp", 443, "CnC-Feed"),
    ("phish", "fraud", "phishing", "phishing", "tcp", 80, "Phishing-URLs"),
    ("spam", "abusive-content", "spam", "spam", "tcp", 25, "Spam-Sources"),
    ("amplifier", "vulnerable", "vulnerable-system", "amplifier", "udp", 123, "Open-NTP"),
    ("malurl", "malicious-code", "exploit", "malurl", "tcp", 8080, "Malicious-URLs"),
    ("proxy", "other", "proxy", "openproxy", "tcp", 3128, "Open-Proxy"),
    ("tor", "other", "tor", "tor exit node", "tcp", 9001, "Tor-Exit-Nodes"),
    ("dos-attacker", "availability", "ddos", "dos-attacker", "udp", 53, "DDoS-Sources"),
]
PROVIDERS = ["Shadowserver", "CERT.pl", "Spamhaus", "abuse.ch", "CERT-XY"]
CCS = ["DE", "PL", "CZ", "NL", "FR", "US", "AT", "SK"]
MALWARE = ["mirai", "emotet", "qakbot", "zeus", "gozi", "andromeda"]
TLDS = ["example.com", "example.net", "example.org", "test.example"]


def address(rng, v6):
    if v6:
        return "2001:db8:%x::%x" % (rng.randrange(1, 0xFFFF), rng.randrange(1, 0xFFFF))
    return "%d.%d.%d.%d" % (rng.choice([192, 198, 203]), rng.randrange(0, 256),
                            rng.randrange(0, 256), rng.randrange(1, 255))


def incident(rng, index):
    category, taxonomy, kind, identifier, proto, port, feed = rng.choice(KINDS)
    day = 1 + index % 28
    hour, minute, second = rng.randrange(24), rng.randrange(60), rng.randrange(60)
    return {
        "index": index,
        "category": category, "taxonomy": taxonomy, "type": kind,
        "identifier": identifier, "proto": proto, "dport": port, "feed": feed,
        "provider": rng.choice(PROVIDERS),
        "ip": address(rng, rng.random() < 0.15),
        # n6's address list holds IPv4 only: its side of an IPv6 incident
        # names the IPv4 address the same host was also seen at.
        "ip4": address(rng, False),
        "dip": address(rng, False),
        "sport": rng.randrange(1024, 65536),
        "asn": rng.randrange(64496, 64512),
        "cc": rng.choice(CCS),
        "fqdn": "host%d.%s" % (rng.randrange(100000), rng.choice(TLDS)),
        "malware": rng.choice(MALWARE),
        "time": "2026-02-%02dT%02d:%02d:%02d+00:00" % (day, hour, minute, second),
        "observed": "2026-02-%02dT%02d:%02d:%02d+00:00" % (day, (hour + 1) % 24, minute, second),
        "accuracy": rng.choice([50.0, 75.0, 90.0, 100.0]),
        "id": "%032x" % rng.getrandbits(128),
        "banner": "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789 -/.") for _ in range(60)),
    }


def intelmq_event(i):
    line = ",".join(str(v) for v in (i["time"], i["ip"], i["proto"], i["sport"], i["fqdn"],
                                     i["asn"], i["cc"], i["malware"], i["banner"]))
    event = {
        "__type": "Event",
        "feed.accuracy": i["accuracy"],
        "feed.name": i["feed"],
        "feed.provider": i["provider"],
        "feed.url": "https://feeds.%s/%s.csv" % (i["provider"].lower().replace(" ", ""), i["feed"].lower()),
        "feed.documentation": "https://docs.example.org/feeds/%s" % i["feed"].lower(),
        "time.observation": i["observed"],
        "time.source": i["time"],
        "source.ip": i["ip"],
        "source.port": i["sport"],
        "source.asn": i["asn"],
        "source.geolocation.cc": i["cc"],
        "source.fqdn": i["fqdn"],
        "source.reverse_dns": "rev-%d.%s" % (i["index"] % 9973, i["fqdn"]),
        "destination.ip": i["dip"],
        "destination.port": i["dport"],
        "protocol.transport": i["proto"],
        "classification.taxonomy": i["taxonomy"],
        "classification.type": i["type"],
        "classification.identifier": i["identifier"],
        "malware.name": i["malware"],
        "extra.tag": i["category"],
        "extra.banner": i["banner"],
        "raw": base64.b64encode(line.encode()).decode(),
    }
    return event


def n6_event(i):
    return {
        "category": i["category"],
        "confidence": "medium",
        "restriction": "public",
        "rid": i["id"],
        "source": "%s.%s" % (i["provider"].lower().replace(" ", "-").replace(".", "-"),
                             i["feed"].lower()),
        "address": [{"ip": i["ip"] if ":" not in i["ip"] else i["ip4"], "asn": i["asn"], "cc": i["cc"]}],
        "time": i["time"].replace("T", " ").replace("+00:00", ""),
        "dip": i["dip"],
        "dport": i["dport"],
        "sport": i["sport"],
        "proto": i["proto"],
        "fqdn": i["fqdn"],
        "name": i["malware"],
        "type": "event",
        "id": i["id"],
    }


def main():
    count, outdir = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(SEED)
    with open(f"{outdir}/intelmq.jsonl", "w") as intelmq, open(f"{outdir}/n6.jsonl", "w") as n6:
        for index in range(count):
            i = incident(rng, index)
            intelmq.write(json.dumps(intelmq_event(i)) + "\n")
            n6.write(json.dumps(n6_event(i)) + "\n")


if __name__ == "__main__":
    main()
