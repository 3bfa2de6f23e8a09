"""Reference check of the STIX 2.1 adapter with the OASIS validator.

Every bundle the bridge writes for the project's fixtures must be fully
valid under ``stix2_validator --strict`` (PyPI ``stix2-validator``): the
IntelMQ inputs of ``fixtures/stix/from-intelmq/``, and the foreign bundles
of ``fixtures/stix/foreign/`` after a trip through IntelMQ (STIX -> IntelMQ
envelope -> STIX).

    check(bridge, repo) -> (passed, failed)

prints one line per failure. Run alone: ``python3 check_stix.py BRIDGE REPO``.
"""

import json
import subprocess
import sys
from pathlib import Path

from stix2validator import ValidationOptions, validate_instance

OPTIONS = ValidationOptions(version="2.1", strict=True)


def _run(bridge, args, data=None):
    """Runs the bridge; returns (stdout lines as JSON, stderr, exit code)."""
    done = subprocess.run(
        [bridge, *args, "--origin", "test-origin"],
        input=data,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return lines, done.stderr, done.returncode


def _problems(bundle):
    """The validator's errors and warnings for one bundle (empty: valid)."""
    results = validate_instance(bundle, OPTIONS)
    problems = [str(error.message) for error in results.errors]
    problems += [str(warning) for warning in getattr(results, "warnings", [])]
    if not results.is_valid and not problems:
        problems.append("not valid")
    return problems


def _bundles(bridge, repo):
    """Yields (label, bundle or None, failure reason) for every bundle written."""
    fixtures = Path(repo) / "fixtures" / "stix"
    for path in sorted((fixtures / "from-intelmq").iterdir()):
        if path.suffix not in (".json", ".jsonl"):
            continue
        bundles, stderr, code = _run(bridge, ["translate", "--from", "auto", "--to", "stix", str(path)])
        if code != 0 or not bundles:
            yield path.name, None, f"bridge exit {code}: {stderr.strip()}"
        for index, bundle in enumerate(bundles):
            yield f"{path.name}#{index}", bundle, None
    for path in sorted((fixtures / "foreign").glob("*.json")):
        events, stderr, code = _run(
            bridge, ["translate", "--from", "stix", "--to", "intelmq", "--envelope", str(path)]
        )
        if code != 0:
            yield path.name, None, f"decode exit {code}: {stderr.strip()}"
            continue
        text = "".join(json.dumps(event) + "\n" for event in events)
        bundles, stderr, code = _run(bridge, ["translate", "--from", "auto", "--to", "stix"], text)
        if code != 0 or not bundles:
            yield f"{path.name} (re-encoded)", None, f"bridge exit {code}: {stderr.strip()}"
        for index, bundle in enumerate(bundles):
            yield f"{path.name} (re-encoded)#{index}", bundle, None


def check(bridge: str, repo: str) -> tuple[int, int]:
    """Validates every bundle the bridge writes for the fixtures, strictly."""
    passed = failed = 0
    for label, bundle, reason in _bundles(bridge, repo):
        problems = [reason] if reason else _problems(bundle)
        if problems:
            failed += 1
            print(f"stix: {label}: " + "; ".join(problems))
        else:
            passed += 1
    return passed, failed


if __name__ == "__main__":
    PASSED, FAILED = check(sys.argv[1], sys.argv[2])
    print(f"stix: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)
