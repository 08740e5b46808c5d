"""How the UI reports failures: a request's bad input as a readable message, a bug as a sentence
(with the traceback in the log), and the server keeps serving either way."""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

log = logging.getLogger(__name__)


def as_gr_error(exc: Exception) -> gr.Error:
    if isinstance(exc, (ValueError, FileNotFoundError)):
        # duration=None: the message stays until closed (a 10 s toast is gone before people read it)
        return gr.Error(str(exc), duration=None, print_exception=False)
    log.exception("request failed")
    return gr.Error(
        f"Something went wrong inside the app ({type(exc).__name__}); nothing was changed. "
        "Please report it with the inputs you used.",
        duration=None,
        print_exception=False,
    )


def user_errors(fn):
    """Turn exceptions from an event handler (plain or streaming) into ``gr.Error`` messages."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except gr.Error:
                raise
            except Exception as exc:
                raise as_gr_error(exc) from None

        return stream_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Exception as exc:
            raise as_gr_error(exc) from None

    return wrapper
