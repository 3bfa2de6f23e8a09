#!/usr/bin/env python3
"""Check fixtures and the bridge's real output with the upstream reference tools.

Run through run.sh, which provides the pinned venv. Environment:
  REPO    repository root (default: two levels above this file)
  BRIDGE  bridge binary (default: $REPO/target/release/intelmq-bridge)

Each format check is one function returning (passed, failed); it prints one
line per failure. The checks are listed in CHECKS at the bottom: a new format
(idea, n6, stix) is a new function appended there. The last line printed is
always "N passed, M failed"; the exit status is 1 if M > 0.
"""

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = Path(os.environ.get("REPO") or HERE.parent.parent)
BRIDGE = Path(os.environ.get("BRIDGE") or REPO / "target" / "release" / "intelmq-bridge")
FIXTURES = REPO / "fixtures"
BRIDGE_TIMEOUT = 60  # seconds per invocation


# --------------------------------------------------------------------------
# shared helpers


class Tally:
    """Counts units (one fixture file, one bridge run) as passed or failed."""

    def __init__(self, check):
        self.check = check
        self.passed = 0
        self.failed = 0

    def record(self, what, problems):
        """One unit: passes if `problems` is empty, else prints each problem."""
        if problems:
            self.failed += 1
            for p in problems:
                print(f"FAIL {self.check}: {what}: {p}")
        else:
            self.passed += 1

    def counts(self):
        return self.passed, self.failed


def rel(path):
    try:
        return str(Path(path).relative_to(REPO))
    except ValueError:
        return str(path)


def _no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen[k] = v
    return seen


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def strict_json(text):
    """json.loads that rejects duplicate keys and NaN/Infinity."""
    return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def same(a, b):
    """Equal values with equal JSON types: true != 1, "1" != 1, but 90 == 90.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def dict_diff(got, want):
    """Human-readable differences between two flat event dicts."""
    out = []
    for k in sorted(set(got) | set(want)):
        if k not in got:
            out.append(f"missing {k} = {json.dumps(want[k], ensure_ascii=False)}")
        elif k not in want:
            out.append(f"unexpected {k} = {json.dumps(got[k], ensure_ascii=False)}")
        elif not same(got[k], want[k]):
            out.append(f"{k}: got {json.dumps(got[k], ensure_ascii=False)}, "
                       f"want {json.dumps(want[k], ensure_ascii=False)}")
    return out


def changes(before, after):
    """What IntelMQ changed when re-reading an event: "key: before -> after"."""
    out = []
    for k in sorted(set(before) | set(after)):
        b = json.dumps(before[k], ensure_ascii=False) if k in before else "(absent)"
        a = json.dumps(after[k], ensure_ascii=False) if k in after else "(dropped)"
        if k not in before or k not in after or not same(before[k], after[k]):
            out.append(f"{k}: {b} -> {a}")
    return out


def bridge_available():
    return BRIDGE.is_file() and os.access(BRIDGE, os.X_OK)


def run_bridge(*args):
    """Run the bridge; returns (exit code, stdout text, stderr text) or raises RuntimeError."""
    try:
        p = subprocess.run([str(BRIDGE), *map(str, args)], capture_output=True,
                           timeout=BRIDGE_TIMEOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"bridge did not finish within {BRIDGE_TIMEOUT}s")
    except OSError as e:
        raise RuntimeError(f"cannot run bridge: {e}")
    try:
        stdout = p.stdout.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RuntimeError(f"stdout is not UTF-8: {e}")
    return p.returncode, stdout, p.stderr.decode("utf-8", errors="replace")


def output_lines(stdout):
    return [line for line in stdout.split("\n") if line.strip()]


def markdown_rows(path, first_header):
    """Rows (lists of cell strings, backticks stripped) of the table whose
    header's first cell is `first_header`. Cells split on unescaped '|'."""
    rows, in_table = [], False
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if not in_table:
            in_table = cells[0] == first_header
            continue
        if set(cells[0]) <= set("-: "):
            continue
        rows.append([c[1:-1] if len(c) > 1 and c[0] == c[-1] == "`" else c for c in cells])
    return rows


def named_in(stderr, field, value):
    """Problems if stderr does not name the field / value (case-insensitive)."""
    problems, low = [], stderr.lower()
    if field != "—" and field.lower() not in low:
        problems.append(f"stderr does not name the field {field!r}: {stderr.strip()[:300]!r}")
    if value != "—":
        v = json.loads(value)
        text = v if isinstance(v, str) else json.dumps(v)
        if text.lower() not in low:
            problems.append(f"stderr does not name the value {text!r}: {stderr.strip()[:300]!r}")
    return problems


# --------------------------------------------------------------------------
# IntelMQ 3.5


def check_intelmq():
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    import intelmq
    from intelmq.lib.message import MessageFactory

    tally = Tally("intelmq")
    harmonization = json.loads(
        (Path(intelmq.__file__).parent / "etc" / "harmonization.conf").read_text(encoding="utf-8"))
    base = FIXTURES / "intelmq"
    valid = sorted((base / "valid").glob("*.json"))
    sanitizable = sorted(p for p in (base / "sanitizable").glob("*.json")
                         if not p.name.endswith(".expected.json"))
    invalid = sorted((base / "invalid").glob("*.json"))
    print(f"intelmq {intelmq.__version__}: {len(valid)} valid, {len(sanitizable)} sanitizable, "
          f"{len(invalid)} invalid fixtures; bridge {rel(BRIDGE)}")

    def intelmq_roundtrip(text):
        """(dict IntelMQ makes of `text`, None) or (None, error text)."""
        try:
            msg = MessageFactory.unserialize(text, harmonization=harmonization)
            return json.loads(msg.serialize()), None
        except Exception as e:  # IntelMQ raises several unrelated types
            return None, f"IntelMQ rejects it: {type(e).__name__}: {e}"

    def expected_of(path):
        return strict_json(path.with_name(path.name[:-len(".json")] + ".expected.json")
                           .read_text(encoding="utf-8"))

    # (1) the fixtures themselves, judged by IntelMQ
    for path in valid:
        text = path.read_text(encoding="utf-8")
        event, err = intelmq_roundtrip(text)
        if err:
            tally.record(rel(path), [err])
        else:
            tally.record(rel(path), [f"IntelMQ changes it: {c}"
                                     for c in changes(strict_json(text), event)])
    for path in sanitizable:
        event, err = intelmq_roundtrip(path.read_text(encoding="utf-8"))
        problems = [err] if err else [f"IntelMQ result differs from .expected.json: {d}"
                                      for d in dict_diff(event, expected_of(path))]
        tally.record(rel(path), problems)
    for path in invalid:
        event, err = intelmq_roundtrip(path.read_text(encoding="utf-8"))
        tally.record(rel(path), [] if err else ["IntelMQ accepts this invalid fixture"])

    # (2)-(4) the bridge
    if not bridge_available():
        tally.record("bridge", [f"binary not found or not executable: {BRIDGE} "
                                "(build it with `cargo build --release`, or set BRIDGE); "
                                "bridge checks skipped"])
        return tally.counts()

    def check_output_event(line, want, exact):
        """Problems with one output line. `want`: dict it must equal (exact)
        or contain (not exact)."""
        try:
            got = strict_json(line)
        except ValueError as e:
            return [f"output line is not JSON: {e}: {line[:200]!r}"]
        if not isinstance(got, dict):
            return [f"output line is not a JSON object: {line[:200]!r}"]
        problems = []
        if got.get("__type") != "Event":
            problems.append(f'"__type" is {got.get("__type")!r}, want "Event"')
        event, err = intelmq_roundtrip(line)
        if err:
            return problems + [err]
        problems += [f"IntelMQ changes the output: {c}" for c in changes(got, event)]
        if exact:
            problems += dict_diff(got, want)
        else:
            problems += [d for d in dict_diff(got, want) if not d.startswith("unexpected ")]
        return problems

    def translate_one(path, want, exact):
        try:
            code, stdout, stderr = run_bridge("translate", "--from", "intelmq", "--to", "intelmq", path)
        except RuntimeError as e:
            return [str(e)]
        problems = []
        if code != 0:
            problems.append(f"exit status {code}, want 0; stderr: {stderr.strip()[:300]!r}")
        lines = output_lines(stdout)
        if len(lines) != 1:
            problems.append(f"{len(lines)} output lines, want 1")
        for line in lines[:1]:
            problems += check_output_event(line, want, exact)
        return problems

    # (2) valid: accepted and unchanged by IntelMQ, keeps every input field;
    #     sanitizable: exactly IntelMQ's sanitised result
    for path in valid:
        tally.record(f"bridge {rel(path)}",
                     translate_one(path, strict_json(path.read_text(encoding="utf-8")), exact=False))
    for path in sanitizable:
        tally.record(f"bridge {rel(path)}", translate_one(path, expected_of(path), exact=True))

    # (3) invalid: exit 1, nothing on stdout, stderr names field and value
    expected_md = base / "invalid" / "EXPECTED.md"
    rows = {r[0]: r for r in markdown_rows(expected_md, "file")}
    for path in invalid:
        row = rows.get(path.name)
        if row is None:
            tally.record(f"bridge {rel(path)}", [f"no row for it in {rel(expected_md)}"])
            continue
        _, field, value = row[:3]
        try:
            code, stdout, stderr = run_bridge("translate", "--from", "intelmq", "--to", "intelmq", path)
        except RuntimeError as e:
            tally.record(f"bridge {rel(path)}", [str(e)])
            continue
        problems = []
        if code != 1:
            problems.append(f"exit status {code}, want 1")
        if output_lines(stdout):
            problems.append(f"{len(output_lines(stdout))} events on stdout, want none")
        if not stderr.strip():
            problems.append("nothing on stderr")
        else:
            problems += named_in(stderr, field, value)
        tally.record(f"bridge {rel(path)}", problems)

    # (4) multi.jsonl: bad lines reported by number, the others go through in order
    multi = base / "multi.jsonl"
    bad = {int(r[0]): r for r in markdown_rows(base / "multi.EXPECTED.md", "line")
           if r[0].isdigit() and len(r) >= 4}
    inputs = [line for n, line in enumerate(multi.read_text(encoding="utf-8").split("\n")[:-1], 1)
              if n not in bad]
    try:
        code, stdout, stderr = run_bridge("translate", "--from", "intelmq", "--to", "intelmq", multi)
    except RuntimeError as e:
        tally.record(f"bridge {rel(multi)}", [str(e)])
        return tally.counts()
    problems = []
    if code != 1:
        problems.append(f"exit status {code}, want 1")
    lines = output_lines(stdout)
    if len(lines) != len(inputs):
        problems.append(f"{len(lines)} output lines, want {len(inputs)} (lines not compared)")
    else:
        for n, (line, source) in enumerate(zip(lines, inputs), 1):
            problems += [f"output line {n}: {p}"
                         for p in check_output_event(line, strict_json(source), exact=False)]
    for n, row in sorted(bad.items()):
        if not re.search(rf"(?<![0-9]){n}(?![0-9])", stderr):
            problems.append(f"stderr does not mention bad line {n} ({row[1]})")
        problems += [f"line {n}: {p}" for p in named_in(stderr, row[2], row[3])]
    tally.record(f"bridge {rel(multi)}", problems)

    return tally.counts()


# --------------------------------------------------------------------------
# The other formats' checks live in check_<format>.py, each exposing
# check(bridge, repo) -> (passed, failed).

def format_check(name):
    def run():
        module = __import__(f"check_{name}")
        return module.check(str(BRIDGE), str(REPO))
    run.__name__ = f"check_{name}"
    return run


CHECKS = [
    check_intelmq,
    format_check("idea"),
    format_check("n6"),
    format_check("stix"),
]


def main():
    passed = failed = 0
    for check in CHECKS:
        try:
            p, f = check()
        except Exception as e:  # a broken check is a failure, not a crash
            print(f"FAIL {check.__name__}: crashed: {type(e).__name__}: {e}")
            p, f = 0, 1
        passed += p
        failed += f
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
