"""How every command line of the package and the recipe ends.

Exit codes (``train.py``, ``python -m speaker_metric_learning.scoring``,
``.export``, ``.sincnet``, ``recipes/synthetic_corpus.py``,
``recipes/voxceleb_prepare.py``):

* 0: done;
* 1 (:data:`EXIT_ERROR`): the input or the environment is wrong (a missing
  file, an invalid option value, unreadable audio, ...): one line on
  stderr, ``error: <what is wrong and what to do>``, no traceback;
* 2 (:data:`EXIT_USAGE`): the command line itself is malformed (argparse's
  usage message);
* 130 (:data:`EXIT_INTERRUPTED`): interrupted with Ctrl-C (``train.py``
  says how to resume).

Authors
 * speaker_metric_learning developers
"""

import contextlib
import sys

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def error_line(error):
    """The one-line message for an error that stops a command.

    An error raised in a DataLoader worker process reaches the main
    process with the worker's traceback in its message; only the original
    message is kept.

    Arguments
    ---------
    error : Exception
        The error.

    Returns
    -------
    str
        ``error: <message>``.

    Example
    -------
    >>> error_line(ValueError("bad"))
    'error: bad'
    >>> error_line(ValueError(
    ...     "Caught ValueError in DataLoader worker process 0.\\n"
    ...     "Original Traceback (most recent call last):\\n"
    ...     '  File "x.py", line 1, in f\\n'
    ...     "ValueError: file a.wav is bad\\n"))
    'error: file a.wav is bad'
    """
    message = str(error)
    if "\nOriginal Traceback" in message:
        last = message.strip().splitlines()[-1]
        message = last.split(": ", 1)[-1]
    return f"error: {message}"


@contextlib.contextmanager
def exit_on(*errors, interrupted=None):
    """Turns ``errors`` raised in the block into :data:`EXIT_ERROR` with
    their :func:`error_line` on stderr; with ``interrupted`` (a message),
    Ctrl-C into :data:`EXIT_INTERRUPTED` with that message.

    Arguments
    ---------
    *errors : type
        Exception classes that mean a wrong input, not a bug (a bug keeps
        its traceback).
    interrupted : str, optional
        Printed on Ctrl-C; None lets ``KeyboardInterrupt`` through.

    Example
    -------
    >>> import contextlib, io
    >>> with contextlib.redirect_stderr(io.StringIO()) as stderr:
    ...     try:
    ...         with exit_on(ValueError):
    ...             raise ValueError("no such speaker")
    ...     except SystemExit as stop:
    ...         print(stop.code, stderr.getvalue().strip())
    1 error: no such speaker
    """
    try:
        yield
    except KeyboardInterrupt:
        if interrupted is None:
            raise
        print(interrupted, file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except errors as error:
        print(error_line(error), file=sys.stderr)
        raise SystemExit(EXIT_ERROR) from None
