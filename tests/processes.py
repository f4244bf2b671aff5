"""Helpers for tests that signal a child process."""

import signal


def default_sigint() -> None:
    """``preexec_fn`` that gives the child Python's own Ctrl-C handling.

    A job started in the background of a script (``pytest ... &``, ``nohup``) inherits SIGINT as
    *ignored*, and so do its children: a test that sends SIGINT to an ``mcrf`` child would then
    wait for a run that never stops.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
