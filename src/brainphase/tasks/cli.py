"""Entry of ``brainphase tasks`` for the dispatcher :mod:`brainphase.cli`.

A module of its own because the dispatcher would take :func:`brainphase.tasks.run_tasks`
(the library function, named by the shared interface) for the command's ``run_tasks`` hook.
"""

from brainphase.tasks.runner import add_arguments, main

__all__ = ["add_arguments", "main"]
