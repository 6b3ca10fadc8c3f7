"""When two spellings of an address reach the same mailbox: the suppression list's one rule.

`suppression_key(address)` is a comparable string for the mailbox an address reaches; the list
stores it (`suppressed.address`, and `soft_bounces.address`) and every path compares by it.

Everywhere: case does not count (RFC 5321 leaves the local part's case to the server, and no
provider Sendpy users mail makes it count), and the domain is compared as IDNA (punycode), so
`Olga@Почта.рф` is `olga@xn--80a1acny.xn--p1ai`.

Only what a provider really delivers to one mailbox is unified; two spellings merged wrongly
would keep mail from a person who never asked to stop, so anything unsure is left apart:

- Gmail: `googlemail.com` is `gmail.com`; dots and a `+tag` in the local part do not count
  (`John.Doe+news@googlemail.com` is `johndoe@gmail.com`).
- Yandex: every Yandex mail domain is the same login — `yandex.ru`, `yandex.com`, `yandex.by`,
  `yandex.kz`, `yandex.ua`, `ya.ru`, `narod.ru` (the old Narod aliases) — a `+tag` does not count,
  and `.` and `-` in a login are the same (`ivan.petrov+shop@ya.ru` is `ivan-petrov@yandex.ru`).
- iCloud: `me.com` and `mac.com` are aliases of the `icloud.com` address of the same name (Apple
  gives every me.com and mac.com account its icloud.com name, and gives those names to nobody
  else); a `+tag` does not count; dots do.
- Outlook.com: `outlook.com`, `hotmail.com`, `live.com` and `msn.com` are *different* mailboxes
  (`anna@hotmail.com` is not `anna@outlook.com`); within each a `+tag` does not count; dots do.
- Mail.ru: `mail.ru`, `inbox.ru`, `list.ru`, `bk.ru` and `internet.ru` are *different* mailboxes,
  and nothing in a local part is ignored there.
- Elsewhere (company domains, every other provider) the local part is the receiving server's to
  interpret: `+` and `.` may be significant, so `anna.k+x@example.com` stays as it is.

Changing the rule changes stored keys: a migration re-keys what is stored (0025 did so when the
iCloud domains were unified), so an entry made before still matches after.
"""

from __future__ import annotations

from shared.addresses import check_address

_GMAIL = frozenset({"gmail.com", "googlemail.com"})
_YANDEX = frozenset({"yandex.ru", "yandex.com", "yandex.by", "yandex.kz", "yandex.ua", "ya.ru", "narod.ru"})
_ICLOUD = frozenset({"icloud.com", "me.com", "mac.com"})
_PLUS_TAGS = frozenset({"outlook.com", "hotmail.com", "live.com", "msn.com"})  # each domain its own mailboxes
_RULED = _GMAIL | _YANDEX | _ICLOUD | _PLUS_TAGS


def suppression_key(email: str) -> str:
    """The mailbox an address reaches, as a comparable string (the rule is the module's docstring)."""
    checked = check_address(email).normalized or email.strip()
    local, _, domain = checked.lower().rpartition("@")
    if domain in _GMAIL:
        return f"{local.split('+', 1)[0].replace('.', '')}@gmail.com"
    if domain in _YANDEX:
        return f"{local.split('+', 1)[0].replace('.', '-')}@yandex.ru"
    if domain in _ICLOUD:
        return f"{local.split('+', 1)[0]}@icloud.com"
    if domain in _PLUS_TAGS:
        return f"{local.split('+', 1)[0]}@{domain}"
    return f"{local}@{domain}"


def fast_key(normalized: str) -> str:
    """`suppression_key` for an address already normalised by check_address (recipients, uploads):
    skips the second validation, which is most of the cost on a million-row file."""
    local, _, domain = normalized.lower().rpartition("@")
    if domain in _RULED:
        return suppression_key(normalized)
    return f"{local}@{domain}"


def tag_keys(address: str) -> set[str]:
    """The keys a message's tag (shared/unsubscribe.py) may have been made with for `address`: the
    rule's, and for me.com and mac.com the one before they were icloud.com — a message sent then
    may bounce, and be recognised as ours, after."""
    keys = {fast_key(address), suppression_key(address)}
    local, _, domain = (check_address(address).normalized or address.strip()).lower().rpartition("@")
    if domain == "me.com":
        keys.add(f"{local.split('+', 1)[0]}@me.com")
    elif domain == "mac.com":
        keys.add(f"{local}@mac.com")
    return keys
