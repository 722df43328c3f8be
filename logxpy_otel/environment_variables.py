"""The environment variables logxpy-otel reads (zero-code set-up).

Registered in the ``opentelemetry_environment_variables`` entry-point group, so
``opentelemetry-instrument --help`` lists each as a flag (``--exporter_logxpy_file``...).
Precedence everywhere: an explicit argument, then the variable, then the default.
A bad value is reported as a warning naming the variable, and the default is used.
"""

OTEL_EXPORTER_LOGXPY_FILE = "OTEL_EXPORTER_LOGXPY_FILE"
"""Path of the log file. Default: ``logxpy-otel.jsonl`` in the working directory."""

OTEL_EXPORTER_LOGXPY_QUEUE_POLICY = "OTEL_EXPORTER_LOGXPY_QUEUE_POLICY"
"""What a full queue does: ``block`` (default), ``drop_oldest``, ``drop_newest``, ``warn``."""

OTEL_EXPORTER_LOGXPY_MAX_QUEUE_SIZE = "OTEL_EXPORTER_LOGXPY_MAX_QUEUE_SIZE"
"""Most records queued or being written. Default: 10000."""

OTEL_EXPORTER_LOGXPY_BATCH_SIZE = "OTEL_EXPORTER_LOGXPY_BATCH_SIZE"
"""Records per write. Default: 4096."""

OTEL_EXPORTER_LOGXPY_FLUSH_INTERVAL = "OTEL_EXPORTER_LOGXPY_FLUSH_INTERVAL"
"""Longest wait before a partial batch is written, in milliseconds. Default: 200."""

OTEL_EXPORTER_LOGXPY_MODE = "OTEL_EXPORTER_LOGXPY_MODE"
"""``tree`` (default: traces framed as logxpy actions) or ``flat``."""

OTEL_EXPORTER_LOGXPY_FILE_PERMISSIONS = "OTEL_EXPORTER_LOGXPY_FILE_PERMISSIONS"
"""Mode of a new log file, in octal (``600``, ``0640``, ``0o640``). Default: 600."""

OTEL_EXPORTER_LOGXPY_MAX_RESTARTS = "OTEL_EXPORTER_LOGXPY_MAX_RESTARTS"
"""Writer-thread crashes survived before writing synchronously. Default: 10."""

OTEL_EXPORTER_LOGXPY_SHUTDOWN_TIMEOUT = "OTEL_EXPORTER_LOGXPY_SHUTDOWN_TIMEOUT"
"""Bound on the flush at shutdown and exit, in milliseconds. Default: 5000."""

OTEL_EXPORTER_LOGXPY_TRACE_IDLE_TIMEOUT = "OTEL_EXPORTER_LOGXPY_TRACE_IDLE_TIMEOUT"
"""A trace with no record for this long (milliseconds) gets its end line. Default: 5000."""

OTEL_EXPORTER_LOGXPY_MAX_OPEN_TRACES = "OTEL_EXPORTER_LOGXPY_MAX_OPEN_TRACES"
"""Most traces open at once. Default: 1000."""

OTEL_EXPORTER_LOGXPY_MAX_BYTES = "OTEL_EXPORTER_LOGXPY_MAX_BYTES"
"""Rotate the file once it holds this many bytes (at the next batch boundary). Default: off."""

OTEL_EXPORTER_LOGXPY_ROTATE_WHEN = "OTEL_EXPORTER_LOGXPY_ROTATE_WHEN"
"""Rotate by time: ``hourly``, ``daily`` (UTC boundaries) or an interval (``3600``, ``15m``). Default: off."""

OTEL_EXPORTER_LOGXPY_BACKUP_COUNT = "OTEL_EXPORTER_LOGXPY_BACKUP_COUNT"
"""Rotated files kept; older ones are deleted. Default: keep all."""

OTEL_EXPORTER_LOGXPY_COMPRESS = "OTEL_EXPORTER_LOGXPY_COMPRESS"
"""``gzip`` compresses rotated files in the background; ``none`` (default) does not."""

OTEL_EXPORTER_LOGXPY_FSYNC = "OTEL_EXPORTER_LOGXPY_FSYNC"
"""``never`` (default), ``batch`` (fsync after every write), or milliseconds between fsyncs."""

OTEL_EXPORTER_LOGXPY_NOFOLLOW = "OTEL_EXPORTER_LOGXPY_NOFOLLOW"
"""``true`` refuses to open the log file through a symlink (``O_NOFOLLOW``). Default: false."""

OTEL_EXPORTER_LOGXPY_RETRY_TIMEOUT = "OTEL_EXPORTER_LOGXPY_RETRY_TIMEOUT"
"""How long (ms) a failed write is retried before its batch is dropped as ``io_error``. Default: 5000."""

OTEL_EXPORTER_LOGXPY_SPANS = "OTEL_EXPORTER_LOGXPY_SPANS"
"""``true``: with ``OTEL_LOGS_EXPORTER=logxpy`` under ``opentelemetry-instrument``, also write
spans into the log file as nested actions (``LogxpySpanProcessor``). Default: false."""

LOGXPY_SYNC = "LOGXPY_SYNC"
"""``1`` writes in the caller's thread, as logxpy's own switch does (not an OTel flag)."""
