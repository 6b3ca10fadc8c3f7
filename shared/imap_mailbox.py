"""One logged-in IMAP session on INBOX, what the bounce reader and the IDLE watch do with it.

IMAPClient is synchronous: every method here runs in an IMAP thread (imap_accounts.in_imap_thread),
and each read is bounded in bytes and time by the connection's `Bounds` (imap_connection.py).
"""

from __future__ import annotations

import datetime as dt
import socket

import imapclient

from shared.imap_connection import MAX_READ_BYTES, Bounds

FETCH_BATCH = 50
# UIDs one search covers at first: a dense stretch answers about a batch's worth times four (a
# line of a few KB); an empty one doubles the next window, up to MAX_WINDOW, whose answer —
# 11 bytes a UID at most — stays under imap_connection.MAX_LINE_BYTES even where it is all messages.
WINDOW = 4 * FETCH_BATCH
MAX_WINDOW = 65_536
MAX_SEARCHES = 32  # a call's searches; the caller saves the place reached and calls again

# What Mailbox.idle_read heard.
NEWS, QUIET, WOKE = "news", "quiet", "woke"


class Mailbox:
    """One logged-in IMAP session on INBOX (synchronous: use from a thread).

    Its calls share one deadline, set when it was opened; `allow(seconds)` sets the next one."""

    def __init__(self, client: imapclient.IMAPClient, bounds: Bounds) -> None:
        self.client = client
        self.bounds = bounds
        self.idling = False
        self.exists = 0  # messages in INBOX when it was selected

    @property
    def waited(self) -> float:
        """Seconds this session's answers took to begin, summed (imap_connection.Bounds)."""
        return self.bounds.waited

    def allow(self, seconds: float) -> None:
        """What follows (until the next allow) must end within `seconds`."""
        self.bounds.allow_seconds(seconds)

    def select_inbox(self, *, readonly: bool) -> tuple[int, int]:
        """(UIDVALIDITY, UIDNEXT) of INBOX."""
        info = self.client.select_folder("INBOX", readonly=readonly)
        self.exists = int(info.get(b"EXISTS") or 0)
        uidnext = info.get(b"UIDNEXT")
        if uidnext is None:  # rare: servers must send it, a few omit it
            found = self.client.search(["ALL"])
            uidnext = (max(found) + 1) if found else 1
        return int(info[b"UIDVALIDITY"]), int(uidnext)

    def uids_from(self, first_uid: int, below: int, limit: int = FETCH_BATCH) -> tuple[list[int], int]:
        """UIDs from first_uid up to (not including) `below` — UIDNEXT when INBOX was selected —,
        oldest first, at most `limit`; and the UID the next search starts from (past the last one
        returned, or past a stretch searched and found empty: UIDs only grow, so no message can
        appear there later).

        One search per window of UIDs, never "n:*": that answered with the whole backlog every
        batch (130,000 messages are a megabyte: "too large", and quadratic before that). A window
        found empty doubles (a mailbox whose middle was deleted is crossed in a few searches), one
        with messages is back to WINDOW; at most MAX_SEARCHES searches a call, so even a server
        claiming UIDNEXT 4,000,000,000 moves the place on, a bounded step at a time."""
        found: list[int] = []
        start, width = first_uid, WINDOW
        for _ in range(MAX_SEARCHES):
            if start >= below or len(found) >= limit:
                break
            end = min(start + width, below) - 1
            window = sorted(uid for uid in self.client.search(["UID", f"{start}:{end}"]) if start <= uid <= end)
            found += window
            width = WINDOW if window else min(width * 2, MAX_WINDOW)
            start = end + 1
        if len(found) > limit:
            found = found[:limit]
            start = found[-1] + 1
        return found, start

    def first_uid_since(self, day: dt.date) -> int | None:
        """The smallest UID of the messages that arrived on `day` or later; None when there are
        none (or none among the first few million).

        "SEARCH SINCE day" answered with every such UID at once: 95,000 of them are more than a
        megabyte, the look failed as "too large" and, its place never saved, every poll did the
        same. Here one window of message numbers at a time, from the oldest (message numbers
        follow UIDs, so the first window with a match holds the smallest), widening as in
        uids_from: every answer stays within MAX_WINDOW UIDs, and the searches are bounded."""
        start, width = 1, WINDOW
        for _ in range(2 * MAX_SEARCHES):  # 200 · (2⁹ − 1) + 55 · 65,536: about 3.7 million messages
            if start > self.exists:
                return None
            end = min(start + width - 1, self.exists)
            found = [int(uid) for uid in self.client.search([f"{start}:{end}", "SINCE", day])]
            if found:
                return min(found)
            start, width = end + 1, min(width * 2, MAX_WINDOW)
        return None

    def fetch(self, uids: list[int]) -> dict[int, bytes]:
        """The first MAX_READ_BYTES of each message, without setting \\Seen."""
        if not uids:
            return {}
        part = f"BODY.PEEK[]<0.{MAX_READ_BYTES}>"
        # The bodies asked for, with room for their FETCH lines, on top of an ordinary answer.
        self.bounds.allow_bytes(len(uids) * (MAX_READ_BYTES + 4096))
        try:
            answered = self.client.fetch(uids, [part])
        finally:
            self.bounds.allow_bytes(0)
        out = {}
        for uid, data in answered.items():
            raw = next((v for k, v in data.items() if k.startswith(b"BODY[")), b"")
            out[int(uid)] = bytes(raw or b"")
        return out

    def move(self, uids: list[int], folder: str) -> None:
        if not uids:
            return
        if not self.client.folder_exists(folder):
            self.client.create_folder(folder)
        if self.client.has_capability("MOVE"):
            self.client.move(uids, folder)
        else:  # copy, then flag; never EXPUNGE the user's mailbox
            self.client.copy(uids, folder)
            self.client.add_flags(uids, [imapclient.DELETED])

    def idle_supported(self) -> bool:
        return bool(self.client.has_capability("IDLE"))

    def idle_start(self) -> None:
        """Enter IDLE (RFC 2177) on the selected mailbox."""
        self.client.idle()
        self.idling = True

    def fileno(self) -> int:
        """The socket's descriptor, for the event loop to watch while idling (no thread waits)."""
        return int(self.client.socket().fileno())

    def idle_read(self) -> str:
        """What the server sent while idling, read without waiting (call when the socket is
        readable): NEWS (EXISTS or RECENT: mail arrived), QUIET (keep-alives, flag changes), or
        WOKE (readable, yet no whole response: IMAPClient swallows an EOF, so the caller ends IDLE
        to find out whether the connection is still there). BYE, NO or BAD raise ConnectionError."""
        responses = self.client.idle_check(timeout=0)
        for response in responses:
            if response and response[0] in (b"BYE", b"NO", b"BAD"):
                # Dovecot answers a mailbox rebuilt under it with "* NO Internal error" and then
                # goes deaf: the session's view is no longer to be trusted.
                said = b" ".join(part for part in response if isinstance(part, bytes)).decode(errors="replace")
                raise ConnectionAbortedError(f"the IMAP server interrupted IDLE: {said[:200]}")
        if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
            return NEWS
        return QUIET if responses else WOKE

    def keep_alive(self) -> None:
        """TCP keep-alives on a connection that may stay silent for long: a peer or NAT that
        vanished without a word shows as an error within minutes, not at the next re-issue."""
        sock = self.client.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (("TCP_KEEPIDLE", 240), ("TCP_KEEPINTVL", 30), ("TCP_KEEPCNT", 4)):
            if hasattr(socket, name):  # Linux and most others; the system's defaults elsewhere
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)

    def idle_stop(self) -> None:
        """Leave IDLE (what the server said meanwhile is dropped: callers look at the mailbox
        next). Raises on a dead connection."""
        self.idling = False
        self.client.idle_done()

    def abort(self) -> None:
        """Cut the connection from any thread, so a thread blocked reading it returns at once
        instead of after the socket's timeout."""
        try:
            self.client.socket().shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass

    def close(self) -> None:
        try:
            if self.idling:  # LOGOUT is not understood inside IDLE
                self.idle_stop()
            self.client.logout()
        except Exception:  # a logout on a broken connection has nothing to report; the socket goes
            try:
                self.client.shutdown()
            except Exception:  # noqa: S110
                pass
