#!/usr/bin/env python3
"""`make mutants`: generated mutation testing of the rule modules, with mutmut 3.

mutmut changes one operator, constant or call at a time in a module (``>`` to ``>=``, ``"utf-8"``
to ``"XXutf-8XX"``, an argument dropped, a ``return x`` to ``return None``...) and runs the tests
that reached the changed function. A mutant whose tests still pass *survives*: the rule can
break unnoticed. Unlike scripts/mutants.py (22 mutants chosen by hand), nobody chooses these.

Each rule module runs in its own work tree under ``.mutants/<name>/`` (a copy of the files git
knows, plus mutmut's ``mutants/`` beside it) with its own fast test selection: mutmut reads
``[tool.mutmut]`` from the copy's pyproject.toml, written here. A module whose source and
tests have not changed since its last run is not run again: its stored score is printed. mutmut
itself also remembers every verdict and reruns only the functions that changed.

Mutants reviewed as equivalent (no behaviour a user could notice changes) are listed in
tests/mutants-equivalent.txt, one a line, ``mutant-name  # reason``; they are left out of the
score and the survivors. A listed name that no longer exists is reported (stale entry).

    .venv/bin/python scripts/mutation.py               # every module, incrementally
    .venv/bin/python scripts/mutation.py scope export  # only these (names from MODULES)
    .venv/bin/python scripts/mutation.py --force scope # run again even if nothing changed
    .venv/bin/python scripts/mutation.py --list        # the modules and their tests

Exit status: 0 no survivors beyond the equivalent list; 1 survivors; 2 the tool failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / ".mutants"
EQUIVALENT = REPO / "tests" / "mutants-equivalent.txt"


@dataclass(frozen=True)
class Module:
    name: str
    path: str  # the module mutated
    tests: tuple[str, ...]  # its test selection: fast tests that reach its rules (files, node ids)
    functions: tuple[str, ...] = ()  # only these functions' mutants (all when empty)


T = "tests/test_{}.py".format  # a test file by its short name
# tests/test_trust.py's own reading of the headers (its other tests go through Dovecot)
# sender trust: the forgeries and proofs, ingested through a Maildir (no servers)
TRUST = (T("trust_forgeries"), T("trust_proof"))
SCOPE = (T("campaign_items"), T("rules_scope"))
EXPORT = (T("export"), T("rules_export"))

# Each module's selection avoids Dovecot and Chromium where the rules can be reached without:
# a mutant runs every selected test that reaches the changed function, and an end-to-end test
# takes seconds. Mutants that only the slow tests would kill are counted as survivors here.
MODULES: tuple[Module, ...] = (
    Module("tables_csv", "reconcile/tables_csv.py", EXPORT),
    Module("authresults", "reconcile/authresults.py", TRUST),
    Module("scope", "reconcile/scope.py", SCOPE, ("decide", "keyword_hits", "fit", "_doc_fits")),
    Module("campaigns", "ingest/campaigns.py", SCOPE, ("*is_open",)),
    Module("status_images", "reconcile/status.py", SCOPE, ("_images_status",)),
    Module(
        "config_times",
        "ingest/config.py",
        (T("config"), T("rules_config")),
        ("_time", "parse_rfc3339", "_timezone", "parse_time_of_day"),
    ),
    Module("guards", "ingest/guards.py", (T("bounded_work"), T("rules_limits"))),
    Module("export_names", "reconcile/export.py", EXPORT, ("unit_folders", "_history", "safe_name")),
    Module("versions", "reconcile/versions.py", (T("versions"), T("rules_versions"))),
)

# mutmut's exit codes per mutant (mutmut.models status_by_exit_code), by verdict
KILLED = "killed"


def sh(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=True).stdout


def git_files() -> list[str]:
    out = sh("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    return [n for n in out.split("\0") if n and (REPO / n).is_file()]


def fingerprint(m: Module) -> str:
    """What the module's verdicts depend on: its source, its tests, the fixtures, the equivalents."""
    h = hashlib.sha256()
    tests = {t.split("::")[0] for t in m.tests}
    names = sorted({m.path, *tests, *(n for n in git_files() if n.startswith("tests/fixtures/"))})
    for name in (*names, "tests/conftest.py", "pyproject.toml"):
        p = REPO / name
        h.update(name.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"-") + b"\0")
    return h.hexdigest()


def prepare(m: Module) -> Path:
    """The module's work tree, refreshed from the repository; mutmut's own state is kept."""
    tree = WORK / m.name
    tree.mkdir(parents=True, exist_ok=True)
    for name in git_files():
        src, dst = REPO / name, tree / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
            stale = tree / "mutants" / name  # mutmut copies once and then keeps its copy
            if stale.exists() and not name.endswith(".py"):
                stale.unlink()
    shutil.copy2(REPO / "scripts" / "mutation_plugin.py", tree / "mutation_plugin.py")
    # mutmut's copy must exist before it starts: Python caches a missing sys.path entry as absent
    (tree / "mutants").mkdir(exist_ok=True)
    shutil.copy2(REPO / "scripts" / "mutation_plugin.py", tree / "mutants" / "mutation_plugin.py")
    tests = [t for t in m.tests if (REPO / t.split("::")[0]).is_file()]
    top = sorted({n.split("/")[0] for n in git_files()} - {"ingest", "reconcile", "tests", "pyproject.toml"})
    top.append("mutation_plugin.py")
    section = (
        "\n[tool.mutmut]\n"
        'source_paths = ["ingest", "reconcile"]\n'
        f"only_mutate = [{json.dumps(m.path)}]\n"
        f"also_copy = {json.dumps(top)}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:xdist", "-p", "no:cacheprovider", "-p", "mutation_plugin"]\n'
        "timeout_multiplier = 5.0\n"
        "timeout_constant = 30.0\n"  # fixtures (Dovecot, SMTP) are not in mutmut's own estimate
        # log lines are words for the operator, not rules
        "do_not_mutate_patterns = ['log\\.(debug|info|warning|error|exception)\\(']\n"
    )
    pyproject = tree / "pyproject.toml"
    pyproject.write_text((REPO / "pyproject.toml").read_text(encoding="utf-8") + section, encoding="utf-8")
    return tree


def name_globs(m: Module) -> list[str]:
    """mutmut's names for the mutants of ``m.functions`` (a method: ``*name``)."""
    dotted = m.path.removesuffix(".py").replace("/", ".")
    return [
        f"{dotted}.{f}__mutmut_*" if f.startswith("*") else f"{dotted}.x_{f}__mutmut_*" for f in m.functions
    ]


def verdicts(tree: Path, m: Module) -> dict[str, str]:
    """mutant name -> status, as `mutmut results --all` prints them."""
    out = subprocess.run(
        [str(Path(sys.executable).with_name("mutmut")), "results", "--all", "true"],
        cwd=tree,
        capture_output=True,
        text=True,
    ).stdout
    prefix = m.path.removesuffix(".py").replace("/", ".") + "."
    globs = name_globs(m)
    found = {}
    for line in out.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if name.startswith(prefix) and (not globs or any(fnmatch.fnmatchcase(name, g) for g in globs)):
            found[name] = status
    return found


def equivalents() -> dict[str, str]:
    listed = {}
    if EQUIVALENT.is_file():
        for line in EQUIVALENT.read_text(encoding="utf-8").splitlines():
            name, _, reason = line.partition("#")
            if name.strip():
                listed[name.strip()] = reason.strip()
    return listed


def run_module(m: Module, force: bool) -> dict | None:
    tree = prepare(m)
    stamp = tree / "score.json"
    fp = fingerprint(m)
    if stamp.is_file() and not force:
        old = json.loads(stamp.read_text())
        if old.get("fingerprint") == fp:
            old["cached"] = True
            return old
    env = {**os.environ, "PYTHONPATH": str(tree / "mutants"), "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    mutmut = str(Path(sys.executable).with_name("mutmut"))
    log = tree / "mutmut-run.log"
    jobs = ["--max-children", os.environ.get("MUTANT_JOBS", "1")]
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.run(
            [mutmut, "run", *jobs, *name_globs(m)], cwd=tree, env=env, stdout=out, stderr=out
        )
        # mutmut keeps a verdict until the function changes; new tests may kill a survivor
        found = verdicts(tree, m)
        again = sorted(n for n, v in found.items() if v != KILLED and v != "no tests")
        if proc.returncode == 0 and again and not name_globs(m):
            proc = subprocess.run([mutmut, "run", *jobs, *again], cwd=tree, env=env, stdout=out, stderr=out)
    took = time.monotonic() - started
    found = verdicts(tree, m)
    if proc.returncode != 0 or not found:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:])
        print(
            f"{m.name}: mutmut failed (exit {proc.returncode}); {tree}/mutmut-run.log\n{tail}",
            file=sys.stderr,
        )
        return None
    result = {"module": m.path, "fingerprint": fp, "seconds": round(took), "verdicts": found}
    stamp.write_text(json.dumps(result, indent=1, sort_keys=True), encoding="utf-8")
    return result


def score(result: dict, listed: dict[str, str]) -> tuple[int, int, int, int, list[str]]:
    """(mutants, killed, equivalent, not reached, survivors) for one module's verdicts."""
    v: dict[str, str] = result["verdicts"]
    equivalent = [n for n in v if n in listed and v[n] != KILLED]
    survivors = sorted(n for n, s in v.items() if s not in (KILLED, "no tests") and n not in listed)
    untested = [n for n, s in v.items() if s == "no tests" and n not in listed]
    killed = sum(1 for s in v.values() if s == KILLED)
    return len(v), killed, len(equivalent), len(untested), survivors + sorted(untested)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("only", nargs="*", help="module names (see --list)")
    ap.add_argument("--force", action="store_true", help="run even if nothing changed since the last run")
    ap.add_argument("--list", action="store_true", help="print the modules and their test selections")
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="without the tests/test_rules_*.py files (the score before they were written)",
    )
    args = ap.parse_args()
    chosen = [m for m in MODULES if not args.only or m.name in args.only]
    if args.baseline:
        chosen = [
            dataclasses.replace(
                m, name=m.name + ".baseline", tests=tuple(t for t in m.tests if "test_rules_" not in t)
            )
            for m in chosen
        ]
    if args.list or not chosen:
        for m in MODULES:
            print(f"{m.name:12} {m.path:28} {' '.join(m.tests)}")
        return 0 if chosen else 2
    listed = equivalents()
    known: set[str] = set()
    failed = False
    total_survivors = 0
    print(f"{'module':12} {'mutants':>7} {'killed':>6} {'equiv':>5} {'surv':>4} {'score':>6} {'time':>6}")
    for m in chosen:
        result = run_module(m, args.force)
        if result is None:
            failed = True
            continue
        known |= set(result["verdicts"])
        n, killed, equiv, untested, survivors = score(result, listed)
        pct = 100.0 * (killed + equiv) / n if n else 100.0
        took = "cached" if result.get("cached") else f"{result['seconds']}s"
        print(f"{m.name:12} {n:7} {killed:6} {equiv:5} {len(survivors):4} {pct:5.1f}% {took:>6}", flush=True)
        for s in survivors:
            status = result["verdicts"][s]
            print(f"    {status:9} {s}   (.venv/bin/mutmut show {s}, in {WORK.name}/{m.name})")
        total_survivors += len(survivors)
    prefixes = tuple(m.path.removesuffix(".py").replace("/", ".") + "." for m in chosen)
    stale = [n for n in listed if n.startswith(prefixes) and n not in known and not failed]
    for n in stale:
        print(f"stale entry in {EQUIVALENT.relative_to(REPO)}: {n} (no such mutant now)")
    if failed:
        return 2
    return 1 if total_survivors or stale else 0


if __name__ == "__main__":
    sys.exit(main())
