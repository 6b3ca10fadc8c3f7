"""The fault report: one per test run, written by the tests that measure each fault.

`start_run` (called once per pytest session by conftest) resets `test-artifacts/fault-report.json`
with the run's id, commit, machine and date; each fault test then `record`s its row. The README's
fault table is generated from a report committed as `docs/fault-report.json`
(`python -m tests.fault_report docs/fault-report.json` prints it), and
tests/test_fault_report.py checks that the README still matches that committed report.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "test-artifacts" / "fault-report.json"

# Row order and wording of the README table; every key is written by exactly one test.
ROWS: dict[str, str] = {
    "sigkill_sender_worker": "SIGKILL the sender worker 3 times at random moments, restart it each time",
    "two_workers_one_killed": "two sender workers, one SIGKILLed: its partitions move to the other",
    "sigkill_fanout_while_loading": "SIGKILL the fan-out worker while it loads a 30,000-row file",
    "kafka_broker_restarted": "Kafka broker stopped for 5 s and restarted",
    "kafka_down_at_start": "Kafka broker down while a campaign and a one-shot mail are started",
    "postgres_restarted": "Postgres stopped (fast shutdown) and restarted",
    "poison_records": "poison records on every partition of both topics",
    "cancel_mid_way": "cancel mid-way",
}

# The user-fault table: each mistake or attack a user can make, what they see and how soon.
USER_ROWS: dict[str, str] = {
    "hostile_template": "templates with a 250-million-step loop, `'a' * 10**8`, `center(10**8)`, 20,000 `{% if email|title %}` to `/api/send-message`",
    "hostile_template_neighbour": "… meanwhile, another user's 1-recipient mail",
    "html_element_flood": "six `/api/send-message` at once from 3 accounts, each 330,000 HTML elements (`<a>` ×"
                          " 330,000, bare or in a Jinja string)",
    "always_failing_template": "a template that fails for every recipient (`{{ email|truncate(1) }}`,"
                               " `{% if email < 5 %}`, …) to `/api/send-message`",
    "part_over_limit": "`/api/send-message` with a 1.2 MB body, its text part over the workers' 1,000,000"
                       " characters (it was accepted, then every recipient failed)",
    "slow_template_for_one_contact": "a template of allowed filters too slow for one contact's 9,600-character field",
    "huge_body_unauthenticated": "a 400 MB body to `/v1/auth/login` (no account needed)",
    "deep_json": "JSON nested 500 and 100,000 deep, on four JSON routes",
    "big_contact_file": "a 2.3 MB, 60,002-row contact file completed (and `/api/health` meanwhile)",
    "big_files_reread": "five 2.9 MB contact files read, four of them corrected (PATCH) back to back"
                        " meanwhile; a campaign on a sixth file started behind them",
    "big_files_neighbour": "… meanwhile, another user's 1-recipient campaign",
    "big_campaign_neighbour": "a 6,000-recipient campaign sending (30 ms per message); meanwhile, another user's"
                              " 1-recipient campaign",
    "many_campaigns_neighbour": "ten 6,000-recipient campaigns of one user started at once (30 ms per message);"
                                " meanwhile, another user's 1-recipient campaign",
    "slow_small_contact_files": "four 256 KB contact files crafted to be slow to read (a quote opened and left"
                                " open on each of 52,000 lines) completed at once",
    "slow_small_contact_files_neighbour": "… meanwhile, another user's `/api/health` and small contact file",
    "file_gone_before_start": "the contact file expired before Start",
    "file_gone_after_start": "the contact file expired between Start and the fan-out",
    "file_replaced_before_start": "the inspected contact file replaced in the bucket (upload form reused) before Start",
    "file_replaced_after_start": "the contact file replaced between Start and the fan-out",
    "no_starttls": "`/api/send-message` to a server without STARTTLS (plaintext not allowed)",
    "plaintext_relay": "… the same with `SENDPY_SMTP_ALLOW_PLAINTEXT=true`",
    "non_ascii_address": "`Мария@пример.рф` through Mailpit (SMTPUTF8, no PIPELINING), one-shot",
    "slow_smtp_server": "an SMTP server answering MAIL, RCPT and DATA in 4 s each (timeout 5 s, batch budget 4 s)",
    "slow_smtp_neighbour": "… meanwhile, another user's 1-recipient campaign on the same partition",
    "silent_smtp_servers": "three SMTP servers of one user that accept the connection and never greet"
                           " (batch budget 40 s: 20 s to connect and log in), a 300-recipient campaign each",
    "silent_smtp_neighbour": "… meanwhile, another user's 1-recipient campaign on the same partition",
    "waiting_behind_own_mail": "ten one-shots to a server that never greets, then one more through a good server"
                               " (the good one waited ~3 min with no reason)",
    "dead_lettered_work": "work whose handling fails three times (dead-lettered)",
    "lost_command": "a start command lost after it was taken (campaign queued / loading)",
    "guessers_share_owner_address": "guessers behind the owner's own NAT address and from many addresses",
    "stranger_guesses_password": "a stranger's wrong passwords for someone's address",
    "password_change_guessing": "guessing the password through `POST /v1/auth/password` with an API key",
    "ssrf_ipv6": "SMTP host `::7f00:1` (IPv4-compatible IPv6 of 127.0.0.1)",
}


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return 0.0


def start_run() -> dict[str, Any]:
    run = {
        "id": uuid.uuid4().hex[:12],
        "commit": _git("rev-parse", "--short=12", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {_memory_gib()} GiB, {_cpu_model()}",
        "python": sys.version.split()[0],
        "seed": int(os.environ.get("SENDPY_TEST_SEED") or uuid.uuid4().int % 1_000_000),
    }
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps({"run": run, "faults": {}}, indent=2, sort_keys=True))
    return run


def load(path: Path = REPORT) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(path.read_text())
    return report


def record(name: str, **numbers: Any) -> None:
    """Add this run's row for `name` (one of ROWS)."""
    assert name in ROWS, name
    report = load()
    report["faults"][name] = numbers
    REPORT.write_text(json.dumps(report, indent=2, sort_keys=True))


def record_user(name: str, shows: str, seconds: float, lost: int = 0) -> None:
    """Add this run's row for the user fault `name` (one of USER_ROWS): what the user sees."""
    assert name in USER_ROWS, name
    report = load()
    report.setdefault("user_faults", {})[name] = {"shows": shows, "seconds": round(seconds, 3), "lost": lost}
    REPORT.write_text(json.dumps(report, indent=2, sort_keys=True))


def user_markdown(report: dict[str, Any]) -> str:
    """The README's user-fault table for `report`."""
    run = report["run"]
    lines = [
        f"Run `{run['id']}` of commit `{run['commit']}` on {run['date']}, {run['machine']}:",
        "",
        "| user fault | what the user sees | seconds until it shows | lost |",
        "|---|---|---|---|",
    ]
    for key, title in USER_ROWS.items():
        row = report.get("user_faults", {}).get(key)
        if row is None:
            lines.append(f"| {title} | not measured in this run | | |")
            continue
        shows = row["shows"].replace("|", "\\|")
        lines.append(f"| {title} | {shows} | {row['seconds']:.3f} | {row['lost']} |")
    return "\n".join(lines) + "\n"


def markdown(report: dict[str, Any]) -> str:
    """The README's fault table for `report`."""
    run = report["run"]
    lines = [
        f"Run `{run['id']}` of commit `{run['commit']}` on {run['date']}, {run['machine']}:",
        "",
        "| fault | recipients | lost | duplicates | at risk (were `sending` at a kill) |",
        "|---|---|---|---|---|",
    ]
    for key, title in ROWS.items():
        row = report["faults"].get(key)
        if row is None:
            lines.append(f"| {title} | not measured in this run | | | |")
            continue
        at_risk = row.get("at_risk")
        lines.append(f"| {title} | {row['recipients']:,} | {row['lost']} | {row['duplicates']} |"
                     f" {'' if at_risk is None else at_risk} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # python -m tests.fault_report [report.json] [--user]
    arguments = [a for a in sys.argv[1:] if a != "--user"]
    chosen = load(Path(arguments[0]) if arguments else REPORT)
    print((user_markdown if "--user" in sys.argv else markdown)(chosen), end="")
