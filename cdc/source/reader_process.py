"""The binlog reader in a second process: reading and decoding on one core, the pipeline on another.

CPython runs one thread at a time, and on a WordPress binlog the reader thread (packets, framing,
decoding: cdc/source/binlog.py) takes more than half of the connector's CPU; the event loop
(assembler, events, encoding, Kafka) the rest. Reading in a child process lets both run at once.

The child runs the very same :class:`~cdc.source.binlog.BinlogSource` (its thread, its checks, its
errors, mapped the same way) and sends what it hands over through a pipe, several chunks per
message while it is ahead. What crosses the pipe is pickled with reducers of their own for the
items that make up nearly all of it, so that loading a rows event costs the parent about what
building its objects costs (a ``RowsBatch`` travels as its rows' images and the fields its changes
share, not as a RowChange per row):

* the parent's :class:`ProcessSource` has the interface of ``BinlogSource`` (``start``, ``stop``,
  ``next_items``, ``backlog``), and a thread that receives, loads and queues chunks in a
  :class:`~cdc.source.handoff.Handoff` like the reader thread does in-process;
* a failure of the reader is a ``SourceFailed`` item like in-process, its exception rebuilt in the
  parent with its class, message and attributes; a child that ends without one (killed, out of
  memory) is a retriable :class:`~cdc.errors.SourceError` naming its exit code;
* the child dies with the parent (``PR_SET_PDEATHSIG`` on Linux, and a check of its parent), so a
  ``kill -9`` of the connector leaves no reader holding the replication connection;
* a statement-logged write the child counts is counted in the parent's metrics.

The child is a fresh interpreter (``fork`` from a process with an event loop and threads is not
safe, and would double the resident memory the two processes report), started with
``subprocess`` rather than multiprocessing's ``spawn``, which would start a third process (its
resource tracker) and import the parent's main module again. It reads its arguments pickled from
stdin and sets up logging as the parent did, secrets masked alike.
"""

from __future__ import annotations

import copyreg
import io
import logging
import operator
import os
import pickle
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from cdc import logs, metrics
from cdc.errors import SourceError
from cdc.model import Commit, Idle, RowsBatch, SettingsWritten, TxnRef
from cdc.position import Position
from cdc.source import fastpath, handoff, library
from cdc.source.binlog import ROW_OBJECT_BYTES, BinlogSource, RawRows, SourceFailed
from cdc.wordpress import WpTable

log = logging.getLogger(__name__)

MESSAGE_ITEMS = 5_000
"""A message collects the chunks the reader has ready, up to about this many items ..."""
MESSAGE_ROW_BYTES = 16 << 10
"""... or this many bytes of undecoded row images. The connector decodes a whole message before its
queue's bound applies: 16 KiB of 20-byte term rows are ~800 rows, ~0.5 MB decoded, what one chunk
of the in-process reader holds at most (its 512 KiB count rows decoded)."""
CHILD_CHUNK_BYTES = 16 << 10
"""The child's chunks are cut at this many binlog bytes: there rows are not decoded, so they weigh
their bytes only (see MESSAGE_ROW_BYTES)."""


class RowsNotDecoded(SourceError):
    """The connector could not decode a rows event the reader process sent undecoded (bytes that do
    not parse as the layout its table map gave). In-process the library would then decode it, or
    raise what is wrong with it; so the session restarts with the rows decoded in the reader
    process (:attr:`ProcessSource.decode_in_child`), where the same happens."""


class StatementWrites:
    """Table kinds of writes the child saw logged as statements, for the parent's metrics."""

    __slots__ = ("kinds",)

    def __init__(self, kinds: list[Any]) -> None:
        self.kinds = kinds

    def __reduce__(self) -> tuple[Any, ...]:
        return (StatementWrites, (self.kinds,))


# ----------------------------------------------------------------------------- pickling


def _reduce_batch(batch: RowsBatch) -> tuple[Any, ...]:
    changes = batch.changes
    if changes:
        first = changes[0]
        table, op, ts = first.table, first.op, first.ts
        if all(c.table is table and c.op == op and c.ts == ts and c.position is batch.position
               and c.txn is batch.txn for c in changes):
            if op == "update":
                images: list[Any] = []
                for c in changes:
                    images.append(c.before)
                    images.append(c.after)
            elif op == "insert":
                images = [c.after for c in changes]
            else:
                images = [c.before for c in changes]
            # Rebuilt by the function that built it in the reader (its arguments, in its order).
            return (fastpath.rows_batch, (table, op, images, batch.position, batch.txn, ts, batch.received))
    # Not the shape one rows event gives: field by field (correct, slower).
    return (RowsBatch, (batch.changes, batch.position, batch.txn, batch.received))


def _fields(cls: type, *names: str) -> Callable[[Any], tuple[Any, ...]]:
    """A reducer sending ``cls``'s fields in order, rebuilt in the parent by a function that sets
    the slots directly (fastpath.maker: a frozen dataclass's ``__init__`` costs twice as much)."""
    # maker refuses (TypeError, at import) a class whose fields are not ``names``: a field added
    # and not sent would otherwise come back as its default, silently.
    make = fastpath.maker(cls, names)
    if make is not cls:  # a generated function: pickled by reference, so it needs a name here
        name = f"_make_{cls.__name__}"
        make.__module__, make.__qualname__, make.__name__ = __name__, name, name
        globals()[name] = make
    get = operator.attrgetter(*names)

    def reduce(obj: Any) -> tuple[Any, ...]:
        return (make, get(obj))
    return reduce


def _rebuild_error(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    """An exception with its class, args and attributes, without calling its ``__init__`` (whose
    signature may not take ``args`` back: keyword-only fields, a required ``check``)."""
    exc = cls.__new__(cls, *args)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class RemoteTraceback(Exception):
    """The traceback of a reader failure in the child, as text: set as the rebuilt exception's
    ``__cause__``, so a bug's log record shows where in the reader it happened, as in-process."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _reduce_failed(failed: SourceFailed) -> tuple[Any, ...]:
    exc = failed.error
    where = "".join(traceback.format_exception(exc)) if exc.__traceback__ is not None else ""
    try:
        back = pickle.loads(pickle.dumps(exc))  # its own way (a UnicodeError's fields are not in vars)
        if type(back) is type(exc) and back.args == exc.args and vars(back) == vars(exc):
            return (_failed_as_is, (exc, where))
    except Exception:  # noqa: BLE001 - an __init__ that does not take its args back: rebuilt below
        pass
    try:
        sent = (type(exc), exc.args, dict(vars(exc)), where)
        pickle.loads(pickle.dumps(sent))  # its class importable, its attributes able to travel and come back
    except Exception:  # noqa: BLE001 - anything else travels as its text, retriable
        sent = (SourceError, (f"the binlog reader failed: {exc!r}",), {}, where)
    return (_failed, sent)


def _failed_as_is(exc: BaseException, where: str = "") -> SourceFailed:
    if where:
        exc.__cause__ = RemoteTraceback(f"in the binlog reader process:\n{where}")
    return SourceFailed(exc)  # type: ignore[arg-type]


def _failed(cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any], where: str = "") -> SourceFailed:
    return _failed_as_is(_rebuild_error(cls, args, state), where)


_DISPATCH = dict(copyreg.dispatch_table)
_DISPATCH.update({
    RowsBatch: _reduce_batch,
    Position: _fields(Position, "file", "pos"),
    TxnRef: _fields(TxnRef, "start", "gtid", "prev_gtid"),
    Commit: _fields(Commit, "end", "gtid", "ts", "rotate"),
    Idle: _fields(Idle, "position", "gtid", "at"),
    SettingsWritten: _fields(SettingsWritten, "blogs", "users"),
    WpTable: _fields(WpTable, "blog_id", "kind"),
    RawRows: _fields(RawRows, "table", "op", "signature", "images", "position", "txn", "ts", "received", "size"),
    SourceFailed: _reduce_failed,
})


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` (a message of the reader process) with this module's reducers."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH
    pickler.dump(obj)
    return buf.getvalue()


def loads(data: bytes) -> Any:
    return pickle.loads(data)


# ----------------------------------------------------------------------------- the parent


_CHILD_CODE = ("import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
               "signal.signal(signal.SIGTERM, signal.SIG_IGN); "
               "from cdc.source.reader_process import main; main()")


class ProcessSource(handoff.HandedOff):
    """A :class:`BinlogSource` that reads in a child process: same arguments, same interface."""

    decode_in_child = False
    """Set for the rest of the process once a rows event sent undecoded did not decode here: the
    readers started after that decode rows themselves, falling back to the library like in-process."""

    def __init__(self, *args: Any, max_queue_bytes: int = 4 << 20, **kwargs: Any) -> None:
        # Half the room on each side of the pipe: what waits between the reader and the pipeline
        # stays what it was with the reader in-process.
        kwargs["max_queue_bytes"] = max(1, max_queue_bytes // 2)
        kwargs.setdefault("chunk_bytes", CHILD_CHUNK_BYTES)
        library.install()  # its version check raises here, as BinlogSource's does (the child patches its own)
        self._args = args
        self._kwargs = kwargs
        self.handoff = handoff.Handoff(max(1, max_queue_bytes // 2))
        self.queue = self.handoff.queue
        self._stop = threading.Event()
        self._proc: Any = None
        self._conn: Connection | None = None
        self._thread = threading.Thread(target=self._receive, name="binlog-receiver", daemon=True)

    def start(self) -> None:
        receiving, sending = os.pipe()
        # The child imports the package this module was imported from: an installed one is on its
        # path already (site-packages is not put before the standard library); a checkout the
        # connector was started from (``python -m cdc`` in it) is added.
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        if root not in {os.path.abspath(p) for p in sys.path if p}:  # a checkout run from its directory
            env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
        try:
            self._proc = subprocess.Popen(
                # -P: not the working directory first on the path (a ``cdc`` there would be imported
                # in place of ours). The signals a terminal, ``timeout`` or a service manager send
                # to the whole group are ignored before anything else: the connector stops the
                # child (SIGKILL) after its own clean stop, not the other way round.
                [sys.executable, "-P", "-c", _CHILD_CODE, str(sending)],
                stdin=subprocess.PIPE, pass_fds=(sending,), env=env)
        finally:
            os.close(sending)
        self._conn = Connection(receiving, writable=False)
        assert self._proc.stdin is not None
        with self._proc.stdin as setup:  # what the child needs, pickled: it reads it before anything else
            setup.write(pickle.dumps((os.getpid(), self._args, self._kwargs, logs.state(),
                                      not ProcessSource.decode_in_child)))
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()  # it ignores SIGTERM (see start); it has nothing to save, the kernel closes its socket
            proc.wait(timeout)
        if self._thread.is_alive():  # the child gone, the pipe ends: the receiving thread returns
            self._thread.join(timeout)
        if self._conn is not None:
            self._conn.close()

    def _receive(self) -> None:
        conn = self._conn
        assert conn is not None
        stopped = self._stop.is_set
        try:
            while not stopped():
                try:
                    data = conn.recv_bytes()
                except (EOFError, OSError):
                    if not stopped():
                        try:
                            code: int | None = self._proc.wait(5.0)
                        except subprocess.TimeoutExpired:
                            code = None
                        self.handoff.put([SourceFailed(SourceError(
                            f"the binlog reader process ended ({_exit_text(code)}) without saying why "
                            "(its log lines above may); reconnecting from the checkpoint"))], 1, stopped)
                    return
                items = loads(data)
                if items and type(items[0]) is StatementWrites:
                    for kind in items.pop(0).kinds:
                        metrics.statement_write(kind)
                items, rows = decode_rows(items)
                failed = bool(items) and type(items[-1]) is SourceFailed
                if failed and type(items[-1].error) is RowsNotDecoded:
                    ProcessSource.decode_in_child = True
                self.handoff.put(items, len(data) + rows * ROW_OBJECT_BYTES, stopped)
                if failed:
                    return
        except Exception as exc:  # noqa: BLE001 - a message that does not load: say so, retriable
            if not stopped():
                self.handoff.put([SourceFailed(SourceError(
                    f"reading from the binlog reader process failed: {exc!r}"))], 1, stopped)


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running after its pipe closed"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}" + (": out of memory?" if -code == signal.SIGKILL else "")
    return f"exit code {code}"


def decode_rows(items: list[Any]) -> tuple[list[Any], int]:
    """``items`` with each :class:`RawRows` decoded into its RowsBatch, and how many rows they hold.

    The child framed the event and checked its layout and full row images; if the bytes still do
    not parse (in-process, the library would then decode the event, or say what is wrong), the
    items stop there with a failure naming the event: nothing after it is handed over."""
    out: list[Any] = []
    rows = 0
    decoders: dict[int, Any] = {}
    for item in items:
        if type(item) is RawRows:
            sig = item.signature
            dec = decoders.get(id(sig))
            if dec is None:
                dec = decoders[id(sig)] = fastpath.by_signature(sig)
            images = fastpath.decode(dec, item.images, 0, len(item.images), item.op)
            if images is None:
                out.append(SourceFailed(RowsNotDecoded(
                    f"the rows event of {item.table} ending at {item.position} did not decode in the connector "
                    "although the reader process took its layout; reconnecting from the checkpoint with the "
                    "rows decoded in the reader process, where the library decodes such an event (or says "
                    "what is wrong with it) as in-process. Please report this")))
                return out, rows
            item = fastpath.rows_batch(item.table, item.op, images, item.position, item.txn, item.ts, item.received)
            rows += len(item.changes)
        elif type(item) is RowsBatch:
            rows += len(item.changes)
        out.append(item)
    return out, rows


# ----------------------------------------------------------------------------- the child


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this process when its parent dies; elsewhere the pipe's end does it.

    Linux ties the request to the parent's thread that started this process: ProcessSource.start
    runs in the event loop's thread, which lasts as long as the connector."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def main() -> None:
    """The reader process: ``python -c "...main()" FD``, its setup pickled on stdin, its output
    written to the pipe FD (see ProcessSource.start). SIGINT and SIGTERM are ignored already, by
    the command line's code before any import."""
    conn = Connection(int(sys.argv[1]), readable=False)
    parent, args, kwargs, log_state, defer = pickle.load(sys.stdin.buffer)
    _die_with_parent(parent)
    logs.restore(log_state)
    try:
        _child(conn, args, kwargs, defer)
    finally:
        conn.close()


def _row_bytes(chunk: list[Any]) -> int:
    return sum([len(item.images) for item in chunk if type(item) is RawRows])


def _child(conn: Connection, args: tuple[Any, ...], kwargs: dict[str, Any], defer: bool = True) -> None:
    counted: list[Any] = []
    try:
        source = BinlogSource(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - e.g. the library's version check: the parent raises it
        conn.send_bytes(dumps([SourceFailed(exc)]))
        return
    source.count_statement = counted.append
    source.defer_rows = defer
    source.start()
    get = source.queue.get
    get_nowait = source.queue.get_nowait
    try:
        while True:
            items: list[Any] = list(get())
            size = _row_bytes(items)
            failed = type(items[-1]) is SourceFailed
            # What else is ready goes in the same message, within its bounds.
            while not failed and len(items) < MESSAGE_ITEMS and size < MESSAGE_ROW_BYTES:
                try:
                    more = get_nowait()
                except Exception:  # noqa: BLE001 - queue.Empty
                    break
                items.extend(more)
                size += _row_bytes(more)
                failed = type(items[-1]) is SourceFailed
            if counted:
                n = len(counted)
                items.insert(0, StatementWrites(counted[:n]))
                del counted[:n]  # one operation: what the reader thread appends meanwhile stays
            data = dumps(items)
            conn.send_bytes(data)
            if failed:
                break
    except (BrokenPipeError, EOFError, OSError):
        pass  # the parent is gone or stopped us
    finally:
        source.stop(1.0)
