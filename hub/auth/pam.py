"""System accounts through PAM: people log in with their Unix username and password.

The pair for the local spawner's system-users mode (`spawners.local`): the
hub's name for a person is their Unix account's name, and their server runs
as that account. So the name PAM checks is the hub's name (typed, normalised
to lower case, then `username_map`), and only an account that exists under
exactly that name, with a uid of at least `min_uid`, can log in. A Unix
account whose name has capital letters cannot: the hub's names are lower
case, and on this machine `Ann` and `ann` would be two accounts (rename it,
`usermod -l ann Ann`); the log says so when someone tries.

PAM runs in a worker thread (`asyncio.to_thread`), at most
`concurrent_checks` at a time, since a failed check sleeps PAM's fail delay
(seconds). A wrong password and an unknown (or refused) account get the same
answer, and take about the same time: PAM's password check costs a hash only
for accounts that exist, so an unknown one is made to wait as long as a
recent check of an existing account took (see `CheckCost`). `check_account`
runs PAM's account step too (expired accounts, expired passwords);
`open_sessions` opens a PAM session before each server start.

Who may log in: any system account (uid >= `min_uid`) when no allow list is
set; otherwise `allowed_users`, `allowed_groups` (Unix groups, the primary
group included) and `admin_users`. `admin_groups` decides who is an admin at
each login. With `manage_groups`, the hub's groups follow the Unix ones.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import ctypes.util
import grp
import logging
import os
import pwd
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from traitlets import Bool, Integer, List, TraitError, Unicode, validate

from hub.auth.base import Authenticator, Identity, LoginOutcome, Refused
from hub.errors import BadRequest, ConfigError
from hub.log import bounded

if TYPE_CHECKING:
    from tornado.web import RequestHandler

log = logging.getLogger("hub.auth.pam")

PAM_DIR = Path("/etc/pam.d")
PAM_CONF = Path("/etc/pam.conf")
# a name no account can have (':' separates passwd fields): the name PAM checks for a
# name that may not log in, so such a login costs what an unknown account does
NO_ACCOUNT = "atrium:no-account"

EXPIRED = "This account has expired or may not log in now. Ask an administrator."
MUST_CHANGE = (
    "The password of this account has expired. Change it on the machine (passwd) and log in again."
)

# PAM return codes (security/_pam_types.h)
PAM_SUCCESS = 0
PAM_NEW_AUTHTOK_REQD = 12
PAM_ACCT_EXPIRED = 13


class Check(Enum):
    OK = "ok"
    WRONG = "wrong"  # unknown account, wrong password, or anything PAM refused
    EXPIRED = "expired"  # right password, the account step said no
    MUST_CHANGE = "must-change"  # right password, which has expired and must be changed


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    groups: tuple[str, ...]  # Unix group names, the primary group first


def find_account(name: str) -> Account | None:
    """The Unix account `name` and its groups (None if there is none). Blocking (NSS)."""
    try:
        entry = pwd.getpwnam(name)
    except (KeyError, ValueError):  # ValueError: a NUL in the name
        return None
    names: list[str] = []
    for gid in [entry.pw_gid, *os.getgrouplist(entry.pw_name, entry.pw_gid)]:
        try:
            group = grp.getgrgid(gid).gr_name
        except KeyError:
            continue
        if group not in names:
            names.append(group)
    return Account(name=name, uid=entry.pw_uid, groups=tuple(names))


def pam_check(
    name: str, password: str, service: str, encoding: str, check_account: bool, rhost: str
) -> tuple[Check, int]:
    """Ask PAM about `name` and `password`: the outcome and PAM's return code. Blocking.

    pam_start, pam_authenticate, then (if `check_account`) pam_acct_mgmt, and
    pam_setcred to reinitialize credentials (Kerberos), whose failure does not matter.
    """
    import pamela

    try:
        conv = pamela.new_simple_password_conv((password,), encoding)
        handle = pamela.pam_start(service, name, conv_func=conv, encoding=encoding)
    except (pamela.PAMError, UnicodeError, ValueError) as e:
        return Check.WRONG, int(getattr(e, "errno", None) or -1)
    code = PAM_SUCCESS
    try:
        if rhost:
            # for PAM's modules and logs (pam_access, pam_faillock)
            with contextlib.suppress(pamela.PAMError, UnicodeError):
                handle.set_item(pamela.PAM_RHOST, rhost, encoding)
        code = int(pamela.PAM_AUTHENTICATE(handle, 0))
        if code != PAM_SUCCESS:
            return Check.WRONG, code
        if check_account:
            code = int(pamela.PAM_ACCT_MGMT(handle, 0))
            if code == PAM_NEW_AUTHTOK_REQD:
                return Check.MUST_CHANGE, code
            if code != PAM_SUCCESS:
                return Check.EXPIRED, code
        pamela.PAM_SETCRED(handle, pamela.PAM_REINITIALIZE_CRED)
        return Check.OK, code
    finally:
        # `conv` (the callback PAM calls for the password) is alive until here
        pamela.PAM_END(handle, code)


class CheckCost:
    """How long PAM takes to check a password for an account that exists.

    PAM (pam_unix) hashes the password only when the account exists, so an unknown
    account would answer faster than a wrong password by the cost of that hash (tens of
    milliseconds with yescrypt). The failure for an unknown account is padded to a time
    drawn from the last checks of existing accounts that had no fail delay (successes,
    and failures quicker than any fail delay), so it follows their spread and the
    machine's load; until there is one, to the time the C library takes for two hashes
    of its default method, which is what pam_unix does for a wrong password.
    """

    def __init__(self, keep: int = 31, no_delay_below: float = 0.5) -> None:
        self._seen: deque[float] = deque(maxlen=keep)
        self._calibrated: float | None = None
        # PAM's fail delays are seconds (pam_faildelay, pam_unix's own 2 s, varied by
        # up to 50%): a check quicker than this had none
        self.no_delay_below = no_delay_below
        self._lock = threading.Lock()

    def record(self, seconds: float, failed: bool) -> None:
        if seconds >= self.no_delay_below and failed:
            return
        with self._lock:
            self._seen.append(min(seconds, self.no_delay_below))

    def padding(self) -> float:
        """Seconds an unknown account's check should take."""
        with self._lock:
            if self._seen:
                return secrets.choice(self._seen)
        if self._calibrated is None:
            self._calibrated = min(_hash_seconds() * 2, self.no_delay_below)
        return self._calibrated


def _hash_seconds() -> float:
    """Seconds one password hash of libcrypt's default method takes; 0 without libcrypt."""
    path = ctypes.util.find_library("crypt")
    if path is None:
        return 0.0
    try:
        lib = ctypes.CDLL(path)
        gensalt = lib.crypt_gensalt_rn
        crypt = lib.crypt_rn
    except (OSError, AttributeError):
        return 0.0
    gensalt.restype = ctypes.c_char_p
    gensalt.argtypes = [
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
    ]
    crypt.restype = ctypes.c_char_p
    crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    setting_buf = ctypes.create_string_buffer(256)
    setting = gensalt(None, 0, None, 0, setting_buf, 256)
    if not setting:
        return 0.0
    took = []
    for _ in range(3):
        work = ctypes.create_string_buffer(32768)  # sizeof(struct crypt_data)
        start = time.monotonic()
        crypt(secrets.token_hex(8).encode(), setting, work, len(work))
        took.append(time.monotonic() - start)
    return statistics.median(took)


class PAMAuthenticator(Authenticator):
    """The machine's Unix accounts, checked with PAM."""

    default_id: ClassVar[str] = "pam"

    service = Unicode(
        "login",
        help="The PAM service to check passwords with: a file in /etc/pam.d. 'login' is "
        "the console login's stack (with its fail delay); a service of your own, e.g. "
        "/etc/pam.d/atrium containing '@include common-auth' and '@include "
        "common-account', keeps the hub's logins apart in PAM's configuration.",
    ).tag(config=True)
    encoding = Unicode(
        "utf-8",
        help="The encoding usernames and passwords are given to PAM in (the machine's "
        "locale for passwords that are not ASCII).",
    ).tag(config=True)
    check_account = Bool(
        True,
        help="Also run PAM's account step after the password: accounts that have expired "
        "(chage -E) or that PAM's account modules refuse cannot log in, and an expired "
        "password must be changed first.",
    ).tag(config=True)
    open_sessions = Bool(
        False,
        help="Open a PAM session for the user before each server start (pam_open_session: "
        "pam_systemd, pam_mkhomedir, pam_limits...). Needs a hub running as root.",
    ).tag(config=True)
    admin_groups = List(
        Unicode(),
        help="Unix groups whose members (the primary group included) are admins. When "
        "set, admin status follows these groups at each login: others are made non-admins "
        "unless named in admin_users.",
    ).tag(config=True)
    allowed_groups = List(
        Unicode(),
        help="Unix groups whose members (the primary group included) may log in, besides "
        "allowed_users and admin_users. With neither set (and allow_all off), every "
        "account with a uid of at least min_uid may log in.",
    ).tag(config=True)
    min_uid = Integer(
        1000,
        help="The lowest uid that may log in, so that system accounts (root, daemons) "
        "never do; as LocalProcessSpawner.min_uid for servers. A lower account's login "
        "fails like a wrong password.",
    ).tag(config=True)
    concurrent_checks = Integer(
        8,
        help="PAM checks run at once (each in a worker thread; a failed one sleeps PAM's "
        "fail delay). Further logins wait their turn.",
    ).tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cost = CheckCost()
        self._slots: asyncio.Semaphore | None = None

    def default_display_name(self) -> str:
        return "System account"

    # --- settings ----------------------------------------------------------------------

    @validate("encoding")
    def _known_encoding(self, proposal: Any) -> str:
        value = str(proposal["value"])
        try:
            codecs.lookup(value)
        except LookupError:
            raise TraitError(f"encoding: {value!r} is not an encoding Python knows") from None
        return value

    @validate("service")
    def _service_name(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if not value or "/" in value or value.startswith(".") or "\0" in value:
            raise TraitError(f"service must be the name of a file in /etc/pam.d, not {value!r}")
        return value

    @validate("min_uid")
    def _never_root(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"min_uid must be at least 1 (root never logs in), not {value}")
        return value

    @validate("concurrent_checks")
    def _positive(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"concurrent_checks must be at least 1, not {value}")
        return value

    @validate("admin_groups", "allowed_groups")
    def _group_names(self, proposal: Any) -> list[str]:
        values = [str(v) for v in proposal["value"]]
        for value in values:
            if not value or ":" in value or "\n" in value or "\0" in value:
                raise TraitError(f"{proposal['trait'].name}: {value!r} is not a Unix group name")
        return values

    def check_settings(self, hub_ip: str) -> None:
        cls = type(self).__name__
        if PAM_DIR.is_dir() and not (PAM_DIR / self.service).is_file():
            raise ConfigError(
                f"c.{cls}.service: there is no PAM service {self.service!r} "
                f"({PAM_DIR / self.service} does not exist); PAM would use 'other', which "
                "usually refuses everyone. Use 'login' or create the file."
            )
        if not PAM_DIR.is_dir() and not PAM_CONF.is_file():
            raise ConfigError(
                f"{cls}: PAM has no configuration on this machine ({PAM_DIR} and {PAM_CONF} "
                "are missing); install PAM or choose another authenticator"
            )
        for setting in ("admin_groups", "allowed_groups"):
            for group in getattr(self, setting):
                try:
                    grp.getgrnam(group)
                except KeyError:
                    raise ConfigError(
                        f"c.{cls}.{setting}: there is no Unix group named {group!r} on this "
                        "machine (getent group lists them)"
                    ) from None
        try:
            import pamela  # noqa: F401
        except (ImportError, OSError, AttributeError) as e:  # no libpam: no pam_* symbols
            raise ConfigError(f"{cls} needs PAM's library (libpam) and pamela: {e}") from None
        if os.geteuid() != 0:
            log.warning(
                "The hub is not running as root: PAM (pam_unix) can usually check only the "
                "password of the hub's own account, so other system accounts cannot log in"
            )

    # --- the login ---------------------------------------------------------------------

    def _hub_name(self, raw: str) -> str | None:
        try:
            return self.normalize_username(raw)
        except BadRequest:
            return None

    def _check(self, name: str | None, typed: str, password: str, rhost: str) -> Check | Account:
        """In a worker thread: the account if PAM accepts it, else why not."""
        found = find_account(name) if name else None
        account = found if found is not None and found.uid >= self.min_uid else None
        if found is not None and account is None:
            log.info("PAM login for %s refused: uid %d < min_uid", name, found.uid)
        if found is None and name and typed != name and find_account(typed) is not None:
            log.warning(
                "A login as %r failed: its Unix account has capital letters (or another "
                "name than the hub's %r), and hub names are lower case; rename the account "
                "(usermod -l) for it to log in",
                bounded(typed, 40),
                name,
            )
        # an unknown name goes to PAM as it is (its modules log it, pam_faillock counts
        # it); a system account's password is never tried
        asked = account.name if account is not None else (name if found is None else None)
        start = time.monotonic()
        outcome, code = pam_check(
            asked or NO_ACCOUNT,
            password,
            self.service,
            self.encoding,
            self.check_account,
            rhost,
        )
        took = time.monotonic() - start
        if account is None:
            # no hash was made: wait what one takes, so this cannot be told from a wrong
            # password by its timing
            time.sleep(max(0.0, self.cost.padding() - took))
            return Check.WRONG
        self.cost.record(took, failed=outcome is Check.WRONG)
        if outcome is not Check.OK:
            level = logging.DEBUG if outcome is Check.WRONG else logging.INFO
            log.log(
                level, "PAM (%s) refused %s: %s (code %d)", self.service, name, outcome.value, code
            )
            return outcome
        return account

    async def authenticate(self, handler: RequestHandler, form: Mapping[str, str]) -> LoginOutcome:
        typed = form.get("username", "")
        password = form.get("password", "")
        if not typed or not password or "\0" in password:
            # pam_unix with nullok lets an account without a password in with an empty one
            return None
        name = self._hub_name(typed)
        rhost = handler.request.remote_ip or ""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrent_checks)
        async with self._slots:
            result = await asyncio.to_thread(self._check, name, typed, password, rhost)
        if result is Check.EXPIRED:
            return Refused(EXPIRED)
        if result is Check.MUST_CHANGE:
            return Refused(MUST_CHANGE)
        if not isinstance(result, Account):
            return None
        return self.identity(result)

    def identity(self, account: Account) -> Identity:
        groups = set(account.groups)
        admin = bool(groups & set(self.admin_groups)) if self.admin_groups else None
        return Identity(
            name=account.name,
            admin=admin,
            groups=account.groups,
            # the Unix group names as they are (the hub keeps only names it can hold), for
            # allowed_groups and pre_spawn_hook
            auth_state={"unix_groups": list(account.groups), "uid": account.uid},
        )

    def allowed_by_identity(self, identity: Identity) -> bool:
        state = identity.auth_state or {}
        groups = set(state.get("unix_groups") or identity.groups or ())
        if groups & set(self.allowed_groups):
            return True
        # no allow list: every account PAM accepts (uid >= min_uid) is in
        return not (self.allowed_users or self.allowed_groups)

    # --- servers -----------------------------------------------------------------------

    async def pre_spawn_start(
        self, name: str, auth_state: dict[str, Any] | None, spawner: Any
    ) -> None:
        if self.open_sessions:
            await self._open_session(name)
        await super().pre_spawn_start(name, auth_state, spawner)

    async def _open_session(self, name: str) -> None:
        """pam_open_session in a short-lived child process: session modules act on the
        calling process (pam_loginuid sets its audit login uid, pam_keyinit replaces its
        keyring), which must not be the hub."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-c",
            _OPEN_SESSION,
            name,
            self.service,
            self.encoding,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, err = await proc.communicate()
        if proc.returncode:
            # the server can run without it; PAM's modules said why in the system log
            log.warning(
                "Could not open a PAM session for %s: %s",
                name,
                bounded(err.decode(errors="replace").strip(), 200),
            )


_OPEN_SESSION = """\
import sys
import pamela
try:
    pamela.open_session(sys.argv[1], service=sys.argv[2], encoding=sys.argv[3])
except pamela.PAMError as e:
    sys.exit(str(e))
"""
