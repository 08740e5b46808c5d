"""What the status lines and messages say, in context."""

from __future__ import annotations

import pytest

from dit_demo.app.context import STARTING, refused_status, stopped_status
from dit_demo.lab.specs.grammar import parse_steps
from dit_demo.runtime.checkpoints import reason


def test_a_stop_keeps_its_own_line_when_the_event_then_ends_as_failed():
    stopped = stopped_status("Sampling all lanes in lock-step... round 78/400, 3.1s elapsed")
    assert stopped.startswith("Stopped at round 78 of 400")
    assert refused_status(stopped, "grid.png") == stopped  # Gradio ends a cancelled event as failed


def test_the_failure_a_stop_causes_says_where_it_stopped_whatever_line_landed_last():
    running = "Sampling all lanes in lock-step... round 5/1000, 0.4s elapsed"
    # a progress line that landed after the Stop's own line: the failure, the event's last message, mends it
    assert refused_status(running, "grid.png", stopping=True).startswith("Stopped at round 5 of 1000")
    stopped = stopped_status(running)  # the Stop's line landed last: it stays, and so does a second Stop's
    assert refused_status(stopped, None, stopping=True) == stopped == stopped_status(stopped)
    assert "refused" in refused_status(running, None, stopping=False)  # no Stop: a refusal is said


def test_a_refusal_mentions_earlier_results_only_when_there_are_some():
    assert "from the run before it" in refused_status("4 cells ... lock-step batched", "grid.png")
    first = refused_status("", None)
    assert "refused" in first and "run before" not in first
    assert "run before" not in refused_status("", [])


def test_stop_while_idle_changes_nothing():
    done = "1 image(s), 25 NFE each, 0.20s in all on cpu"
    assert stopped_status(done) == done
    assert stopped_status("") == "Nothing is running."


def test_a_step_count_out_of_range_is_named_once():
    with pytest.raises(ValueError) as refused:
        parse_steps("0,10", 1000)
    assert str(refused.value).startswith("Step count '0' is out of range; this model takes 1 to 1000 steps.")
    with pytest.raises(ValueError, match=r"Step count '0' in '0-10 \(\+5\)' is out of range"):
        parse_steps("0-10 (+5)", 1000)


def test_a_long_library_message_is_cut_at_a_sentence():
    long = "First sentence here. " + "Second one goes on and on " * 20 + "and ends."
    assert reason(OSError(long)) == "OSError: First sentence here."
    words = reason(OSError("word " * 100))
    assert words.endswith("word...") and len(words) <= 210


def test_stop_before_the_first_round_says_so():
    for before in (STARTING, "Sampling... ", "Sampling all lanes in lock-step... "):
        assert stopped_status(before) == "Stopped before the first round. Nothing was saved."
