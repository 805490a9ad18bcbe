"""The remote CLI: ``mapreduce submit|status|result|cancel|jobs`` against a running master, on :mod:`actors.api`.

The master's URL comes from ``--url``, else ``MR_URL``, else ``http://127.0.0.1:8080``; the public API's token from
``--token``, else ``MR_API_TOKEN`` (never printed). These are the client's side, not an actor's settings, so they
are read here and nowhere in :mod:`actors.core.config`.
"""

from .commands import add_commands, run

__all__ = ["add_commands", "run"]
