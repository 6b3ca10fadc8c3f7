"""One campaign message, per message, in isolation: rendering it, and handing it to an SMTP server.

    .venv/bin/python benchmarks/render.py [--messages 20000] [--rounds 3] [--against HEAD]

The message is the sending benchmark's (sending.py: ≈ 2 KB of HTML with two merge fields, the
unsubscribe link and the Message-ID tag, text and HTML parts), rendered as the sender workers
render it (CompiledCampaign.render with an Unsubscriber). Two figures:

- render: wall-clock µs per message (best of five passes over the recipients), with the parts
  that can be timed apart in any version: the templates (render_parts), the Message-ID and the
  unsubscribe link; "rest" is the encoding and assembly;
- smtp: the sender's CPU µs per message (user and system, from os.times) to send already
  rendered messages over 10 pipelined connections (messenger.SmtpConnection on uvloop, as the
  workers run; two sends at a time on each where the code pipelines across transactions, as the
  scheduler runs it) to Postfix's smtp-sink in its own process; msgs/s beside it.

`--against REV` measures the code of `shared/` at that git revision too (exported with
`git archive` to a temporary directory; the working tree is not touched), interleaved with the
working tree's round by round in fresh processes, so both see the same machine. Medians are
printed with the 1-minute load before each round. Needs `smtp-sink` (Debian's postfix) for the
smtp figure; without it only rendering is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import revisions  # the script's own directory is on the path
import sysinfo

ROOT = Path(__file__).resolve().parent.parent
# ≈ 2 KB of HTML with two merge fields, as benchmarks/sending.py sends (the unsubscribe link is added).
BODY = ("<p>Dear {{ name }},</p><p>" + "Here is this month's news from our shop, with offers and events. " * 28
        + "</p><p>Sent to {{ email }}.</p>")
SUBJECT = "News for {{ name }}"
CONNECTIONS = 10


def child(root: Path, messages: int, port: int | None) -> dict[str, float]:
    """Runs in its own process with `root`'s shared/ first on the path."""
    sys.path[:0] = [str(root), str(ROOT)]
    import uuid

    from shared.mail.compose import CampaignContent, CompiledCampaign
    from shared.unsubscribe import Unsubscriber

    campaign_id = uuid.UUID("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
    content = CampaignContent(str(campaign_id), "bench@example.com", "", SUBJECT, BODY)
    unsubscriber = Unsubscriber(b"k" * 32, "https://sendpy.example.org", campaign_id, 42)
    compiled = CompiledCampaign(content, unsubscriber=unsubscriber)
    recipients = [(n, f"person{n}@example.com", {"name": f"Person {n}"}) for n in range(1, 2001)]

    def per_message(call: object) -> float:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            for position, email, fields in recipients:
                call(position, email, fields)  # type: ignore[operator]
            best = min(best, time.perf_counter() - started)
        return best / len(recipients) * 1e6

    result = {
        "render_us": per_message(compiled.render),
        "templates_us": per_message(lambda p, e, f: compiled.render_parts(compiled.merge_fields(p, e, f))),
        "message_id_us": per_message(lambda p, e, f: compiled.message_id(p, e)),
        "link_us": per_message(lambda p, e, f: unsubscriber.url(p, e)),
        "bytes": float(len(compiled.render(*recipients[0]))),
    }
    result["rest_us"] = result["render_us"] - result["templates_us"] - result["message_id_us"]
    if port is not None:
        rendered = [compiled.render(*recipient) for recipient in recipients]
        result.update(_smtp(port, rendered, messages))
    return result


def _smtp(port: int, rendered: list[bytes], messages: int) -> dict[str, float]:
    import asyncio

    import uvloop

    from shared.mail import pipelining
    from shared.mail.messenger import ConnectPolicy, ReplyKind, SmtpAccount, SmtpConnection

    async def run() -> dict[str, float]:
        account = SmtpAccount("127.0.0.1", port, "none", "", "")
        policy = ConnectPolicy(allow_private=True, allow_plaintext=True, timeout=30.0)
        connections = [SmtpConnection(account, policy) for _ in range(CONNECTIONS)]
        await asyncio.gather(*(conn.open() for conn in connections))
        assert all(conn.pipelined for conn in connections), "smtp-sink offers PIPELINING"

        async def lane(conn: SmtpConnection, first: int, count: int) -> None:
            for n in range(first, first + count):
                reply = await conn.send("bench@example.com", f"person{n}@example.com", rendered[n % len(rendered)],
                                        deadline=time.monotonic() + 10)
                assert reply.kind is ReplyKind.SENT, reply

        # Where a connection can take a second send while the first is out (its commands then go
        # out with the first's body), the scheduler runs two lanes per connection: so does this.
        depth = 2 if getattr(pipelining, "CROSS_TRANSACTION", False) else 1
        lanes = [conn for conn in connections for _ in range(depth)]
        await asyncio.gather(*(lane(conn, 0, 200) for conn in lanes))  # warm up
        each = messages // len(lanes)
        before, started = os.times(), time.perf_counter()
        await asyncio.gather(*(lane(conn, i * each, each) for i, conn in enumerate(lanes)))
        after, wall = os.times(), time.perf_counter() - started
        await asyncio.gather(*(conn.quit() for conn in connections))
        sent = each * len(lanes)
        return {"smtp_user_us": (after.user - before.user) / sent * 1e6,
                "smtp_system_us": (after.system - before.system) / sent * 1e6,
                "smtp_cpu_us": (after.user + after.system - before.user - before.system) / sent * 1e6,
                "smtp_msgs_per_s": sent / wall}

    return uvloop.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000, help="messages per SMTP measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", help="a git revision whose shared/ is measured too")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.messages, args.port)))
        return

    sys.path.insert(0, str(ROOT))
    sys.path.insert(1, str(ROOT / "benchmarks"))
    import sending  # the same message as the throughput benchmark's, or these figures say nothing about it

    from sendpy.devstack.ports import free_port, wait_for_port

    assert sending.BODY == BODY, "benchmarks/sending.py sends another message now: copy its BODY here"

    trees = {"working tree": ROOT}
    scratch = Path(tempfile.mkdtemp(prefix="sendpy-render-bench-"))
    sink: subprocess.Popen[bytes] | None = None
    try:
        if args.against:
            trees[args.against] = scratch / "baseline"
            trees[args.against].mkdir()
            revisions.export_shared(args.against, trees[args.against])
        port: int | None = None
        if shutil.which("smtp-sink"):
            port = free_port()
            sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-m", "500", f"127.0.0.1:{port}", "1024"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_port(port, 10)
        else:
            print("smtp-sink not found (apt-get install postfix): rendering only", file=sys.stderr)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
        for round_ in range(1, args.rounds + 1):
            for name, root in trees.items():
                load = sysinfo.loadavg()
                argv = [sys.executable, __file__, "--child", str(root), "--messages", str(args.messages)]
                out = subprocess.run([*argv, *(["--port", str(port)] if port else [])], check=True,
                                     capture_output=True, text=True).stdout
                measured = json.loads(out) | {"load": load}
                results[name].append(measured)
                print(f"round {round_} {name}: " + ", ".join(f"{k} {v:,.1f}" for k, v in measured.items()))
        print()
        keys = list(next(iter(results.values()))[0])
        print("median".ljust(20) + "".join(name[:24].rjust(26) for name in trees))
        for key in keys:
            print(key.ljust(20) + "".join(f"{statistics.median(r[key] for r in results[name]):26,.1f}"
                                          for name in trees))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
