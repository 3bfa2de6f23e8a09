"""Checks the bridge's IDEA output with CESNET's own validator.

`idea.valid.Idea(message)` (PyPI `idea-format`) raises on any key whose
value breaks IDEA's types; `checkRequired(recursive=True)` reports missing
required keys. Every IDEA message the bridge writes for the project's
fixtures must pass both:

- fixtures/idea/from-intelmq/*.json translated `--to idea` (IntelMQ → IDEA);
- fixtures/idea/valid/*.json translated IDEA → IntelMQ envelopes → IDEA;
- fixtures/intelmq/valid/*.json, when present, translated `--to idea`.
"""

import glob
import json
import os
import subprocess
import sys


def _translate(bridge, source, target, data=None, path=None, envelope=False):
    args = [bridge, "translate", "--from", source, "--to", target, "--origin", "test-origin"]
    if envelope:
        args.append("--envelope")
    if path:
        args.append(path)
    result = subprocess.run(args, input=data, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip() or f"exit {result.returncode}")
    return result.stdout


def _problems(message):
    from idea.valid import Idea

    try:
        # Type errors raise on construction; missing required keys raise
        # (typedcols.KeysRequired) or are returned, depending on the version.
        missing = Idea(message).checkRequired(recursive=True)
    except Exception as error:  # the validator raises several types
        return f"{type(error).__name__}: {error}"
    return f"missing {missing}" if missing else None


def check(bridge: str, repo: str) -> tuple[int, int]:
    """Runs `bridge` over the fixtures in `repo`; returns (passed, failed)."""
    passed = failed = 0
    runs = []
    for path in sorted(glob.glob(os.path.join(repo, "fixtures/idea/from-intelmq/*.json"))):
        runs.append((path, lambda p=path: _translate(bridge, "auto", "idea", path=p)))
    for path in sorted(glob.glob(os.path.join(repo, "fixtures/intelmq/valid/*.json"))):
        runs.append((path, lambda p=path: _translate(bridge, "auto", "idea", path=p)))
    for path in sorted(glob.glob(os.path.join(repo, "fixtures/idea/valid/*.json"))):
        runs.append(
            (
                path,
                lambda p=path: _translate(
                    bridge,
                    "auto",
                    "idea",
                    data=_translate(bridge, "idea", "intelmq", path=p, envelope=True),
                ),
            )
        )
    for path, run in runs:
        name = os.path.relpath(path, repo)
        try:
            lines = [line for line in run().splitlines() if line.strip()]
        except RuntimeError as error:
            print(f"FAIL {name}: bridge: {error}")
            failed += 1
            continue
        if not lines:
            print(f"FAIL {name}: no IDEA output")
            failed += 1
            continue
        for number, line in enumerate(lines, 1):
            problem = _problems(json.loads(line))
            if problem:
                print(f"FAIL {name} message {number}: idea.valid: {problem}")
                failed += 1
            else:
                passed += 1
    return passed, failed


if __name__ == "__main__":
    bridge = sys.argv[1] if len(sys.argv) > 1 else "target/debug/intelmq-bridge"
    repo = sys.argv[2] if len(sys.argv) > 2 else "."
    ok, bad = check(bridge, repo)
    print(f"idea.valid: {ok} passed, {bad} failed")
    sys.exit(1 if bad else 0)
