"""Target for integration.refs.pytest_logcapture: a real pytest session whose
test logs records whose argument is one of the test's own dicts, and stays
inside the test while memtap walks the heap.

Run as `python3 -m pytest ... pytest_logcapture_target.py` with the
environment's MEMTAP_CTL_FD (read: "go", then "stop") and MEMTAP_OUT_FD
(written: "SITE TAG LINE" twice, "captured N N" and "dict-args N N" for
the LogCaptureHandlers on the root logger, then "ready"). pytest captures
fd 0-2, so the test speaks through those two inherited pipes instead.

Two sites of COUNT dicts each, all logged at WARNING:
  inline    `log.warning("req %s", {"i": i})` in a loop, as an application
            does. Each Logger.warning call builds a new, empty dict for
            `**kwargs` at `self._log(WARNING, msg, args, **kwargs)`
            (logging/__init__.py) and frees it to the interpreter's dict free
            list when _log returns; the next iteration's {"i": i} takes that
            very object from it, so nearly every dict of this line lives in a
            block that malloc gave to logging's line.
            tracemalloc (3.8+) charges a reused object to the line that
            reused it (_PyTraceMalloc_NewReference): this line, all COUNT.
  prebuilt  the dicts built in one list first (no dict freed between them:
            at most the free list's 80 come from it), then logged.

logging.LogRecord.__init__ keeps a lone mapping argument itself as
record.args, so every dict of both sites is held by one LogRecord
(LogRecord.__dict__['args']), and every LogRecord by pytest's
LogCaptureHandler.records lists: the call phase's caplog and report handlers
(_pytest/logging.py, LoggingPlugin._runtest_for, pytest 7.2), both on the root
logger's handlers while the test runs.
"""
import logging
import os
import select

COUNT = 2000
log = logging.getLogger("memtap.logcapture")


def _site_line(tag):
    for n, line in enumerate(open(__file__), 1):
        if line.rstrip().endswith("# SITE " + tag):
            return n
    raise SystemExit("no site " + tag)


def _say(fd, text):
    os.write(fd, (text + "\n").encode())


def _read_word(fd):
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            raise SystemExit("control pipe closed")
        data += chunk
    return data.decode().strip()


def test_logs_and_waits():
    ctl = int(os.environ["MEMTAP_CTL_FD"])
    out = int(os.environ["MEMTAP_OUT_FD"])
    for tag in ("inline", "prebuilt"):
        _say(out, "SITE %s %d" % (tag, _site_line(tag)))
    assert _read_word(ctl) == "go"  # memtap attaches meanwhile
    for i in range(COUNT):
        log.warning("req %s", {"i": i})  # SITE inline
    batch = [{"j": j} for j in range(COUNT)]  # SITE prebuilt
    for args in batch:
        log.warning("batch %s", args)
    del batch, args
    handlers = [h for h in logging.getLogger().handlers if type(h).__name__ == "LogCaptureHandler"]
    _say(out, "captured " + " ".join(str(len(h.records)) for h in handlers))
    _say(out, "dict-args " + " ".join(str(sum(type(r.args) is dict for r in h.records)) for h in handlers))
    del handlers
    _say(out, "ready")
    # Wait for "stop" still inside the test, so the handlers keep every
    # record; wake every 10 ms and allocate, so that a walk gets a thread
    # holding the GIL (a thread blocked in select holds no GIL).
    while True:
        readable, _, _ = select.select([ctl], [], [], 0.01)
        if readable:
            assert _read_word(ctl) == "stop"
            break
        [0] * 10
