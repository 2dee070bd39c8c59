"""Tables to and from TOPCAT, Aladin and DS9 through a SAMP hub, as astronomers' desktop tools
exchange them: the ``table.load.votable`` message, a VOTable's URL and a name. The client is
pyvo's (``pyvo.samp``, the successor of ``astropy.samp``, deprecated in astropy 8, which parses the
hub's XML-RPC safely).

SAMP connects programs on one machine (the hub's lock file is in the user's home, or where
``$SAMP_HUB`` says): the explorer's server is the program that connects, so this works when the
explorer runs on the astronomer's own machine, beside TOPCAT. Without a hub, :class:`NoHub` says
how to start one.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from astropy.table import Table

from pipeline.cache import cache_dir
from pipeline.errors import InputError, short_reason
from pipeline.tables import write_table

MTYPE = "table.load.votable"
CLIENT_NAME = "ALMA & ULISSE explorer"
RECEIVE_LIMIT_BYTES = 20 * 2**20  # a table sent to the explorer is refused above this
SENT_KEPT_S = 24 * 3600  # a table sent stays on disk this long: the receiver reads it when it likes
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")



class NoHub(InputError):
    """No SAMP hub answers on this machine."""


def connect(name: str = CLIENT_NAME, callable: bool = False):
    """A connected ``SAMPIntegratedClient`` (disconnect it when done), or :class:`NoHub`."""
    from pyvo.samp import SAMPClientError, SAMPHubError, SAMPIntegratedClient

    client = SAMPIntegratedClient(name=name, description="Vetted ALMA candidates and galaxy neighbours",
                                  callable=callable)
    try:
        client.connect()
    except (SAMPHubError, SAMPClientError, OSError) as exc:
        raise NoHub("No SAMP hub is running on this machine: start TOPCAT or Aladin (each starts one) or a hub "
                    f"(`samp_hub`, from astropy), then try again ({short_reason(exc)}).") from exc
    return client


def table_receivers() -> dict[str, str]:
    """{client id: name} of the programs on the hub that take tables (TOPCAT, Aladin, DS9, ...)."""
    client = connect()
    try:
        return {cid: client.get_metadata(cid).get("samp.name", cid)
                for cid in client.get_subscribed_clients(MTYPE)}
    finally:
        client.disconnect()


def send_table(table: Table, name: str, recipient: str | None = None) -> list[str]:
    """Send ``table`` (as a VOTable) to ``recipient`` (a client id) or to every program that takes
    tables; returns the names of those it went to. :class:`NoHub` without a hub; InputError when
    no program on the hub takes tables."""
    client = connect()
    try:
        receivers = {cid: client.get_metadata(cid).get("samp.name", cid)
                     for cid in client.get_subscribed_clients(MTYPE)}
        if recipient is not None:
            receivers = {cid: n for cid, n in receivers.items() if cid == recipient}
        if not receivers:
            raise InputError("No program on the SAMP hub takes tables: start TOPCAT or Aladin, then send again.")
        path = _sent_file(name)
        write_table(table, path)
        message = {"samp.mtype": MTYPE, "samp.params": {"url": path.as_uri(), "name": name}}
        for cid in receivers:
            client.notify(cid, message)
        return list(receivers.values())
    finally:
        client.disconnect()


class TableInbox:
    """Tables sent to the explorer from TOPCAT (Interop > Send Table to > ALMA & ULISSE explorer):
    while started, each is fetched (a local file or a local web address, at most
    ``RECEIVE_LIMIT_BYTES``), read as a VOTable and handed to ``on_table(path, name)`` (a file of
    its own in ``folder``); a table that cannot be fetched goes to ``on_error(message)``. Both are
    called on the SAMP client's thread."""

    def __init__(self, folder, on_table, on_error, name: str = CLIENT_NAME):
        self.folder, self.on_table, self.on_error, self.name = Path(folder), on_table, on_error, name
        self.client = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Register on the hub as a receiver of tables; :class:`NoHub` without one."""
        self.client = connect(self.name, callable=True)
        self.client.bind_receive_notification(MTYPE, self._notified)
        self.client.bind_receive_call(MTYPE, self._called)

    def stop(self) -> None:
        if self.client is not None and self.client.is_connected:
            self.client.disconnect()
        self.client = None

    @property
    def listening(self) -> bool:
        return self.client is not None and self.client.is_connected

    def _called(self, private_key, sender_id, msg_id, mtype, params, extra):
        ok = False
        try:
            ok = self._notified(private_key, sender_id, mtype, params, extra)
        finally:  # the sender waits for an answer, whatever happened here
            self.client.reply(msg_id, {"samp.status": "samp.ok" if ok else "samp.error", "samp.result": {},
                                       **({} if ok else {"samp.error": {"samp.errortxt": "the table could not be "
                                                                                         "read"}})})

    def _notified(self, private_key, sender_id, mtype, params, extra) -> bool:
        name = str(params.get("name") or "table from SAMP")
        try:
            with self._lock:
                path = fetch_table(str(params.get("url", "")), self.folder)
        except InputError as exc:
            self.on_error(f"{name} sent through SAMP could not be used: {exc}")
            return False
        self.on_table(path, name)
        return True


def fetch_table(url: str, folder) -> Path:
    """Copy the VOTable at ``url`` (``file://``, or ``http://`` on this machine, as TOPCAT serves
    them) into a new file in ``folder``, refusing more than ``RECEIVE_LIMIT_BYTES``; checked to be
    a readable VOTable."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        local = Path(urllib.request.url2pathname(parsed.path)).resolve()
        if not any(local.is_relative_to(root) for root in shared_folders()):
            raise InputError("only files in the temporary folder or the home folder are taken (where TOPCAT "
                             "writes the tables it sends)")
        opener = lambda: open(local, "rb")  # noqa: E731
    elif parsed.scheme in ("http", "https") and parsed.hostname in LOCAL_HOSTS:
        # no redirects: a local address must not lead the server elsewhere
        opener = lambda: urllib.request.build_opener(_NoRedirect).open(url, timeout=10)  # noqa: E731
    else:
        raise InputError(f"only tables on this machine are taken (a file, or a local web address), not {url[:80]!r}")
    try:
        with opener() as source:
            data = source.read(RECEIVE_LIMIT_BYTES + 1)
    except OSError as exc:  # its reason names a path on the server: not for the page
        raise InputError("it could not be read (it may have been removed: send it again)") from exc
    if len(data) > RECEIVE_LIMIT_BYTES:
        raise InputError(f"it is larger than {RECEIVE_LIMIT_BYTES // 2**20} MB: save it from TOPCAT and import "
                         "the file")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="samp-", suffix=".vot", dir=folder)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    try:
        Table.read(name, format="votable")
    except Exception as exc:  # the VOTable parser's own errors (they may quote the file): not for the page
        os.remove(name)
        raise InputError("it is not a VOTable") from exc
    return Path(name)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx answer is then an HTTPError: "could not be read"


def shared_folders() -> tuple[Path, ...]:
    """The folders a table sent as a file may lie in: where desktop tools write the tables they
    send (the temporary folder, the home folder)."""
    return Path(tempfile.gettempdir()).resolve(), Path.home().resolve()


def _sent_file(name: str) -> Path:
    """A new file for a table sent; tables sent more than ``SENT_KEPT_S`` ago are removed."""
    folder = cache_dir("samp")
    for old in folder.glob("*.vot"):
        if time.time() - old.stat().st_mtime > SENT_KEPT_S:
            old.unlink(missing_ok=True)
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[:60] or "table"
    fd, path = tempfile.mkstemp(prefix=f"{stem}-", suffix=".vot", dir=folder)
    os.close(fd)
    return Path(path)
