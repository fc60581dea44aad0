"""The in-memory store fold of a rebuild: what it hands over to be written, batch by batch."""

from __future__ import annotations

import uuid

from plugpay_events.session_code import generate_signing_key
from session_harness import make_settings
from session_stories import Story
from session_svc.handlers import StoreFold, timer_rules


def test_a_fold_keeps_the_first_of_equal_meter_samples_and_rewrites_what_changed_again() -> None:
    settings = make_settings("postgresql+asyncpg://x/y", "t.", generate_signing_key())
    fold = StoreFold(timer_rules(settings))
    story = Story()
    issued, scanned = story.issued(), story.scanned()
    first, again = story.meter(60, 1000), story.meter(60, 2000)
    ids = [uuid.uuid4() for _ in range(4)]
    sid = str(story.session_id)
    fold.apply(ids[0], sid, issued)
    fold.apply(ids[0], sid, issued)  # the same event again: skipped
    fold.apply(ids[1], sid, first)
    taken = fold.take()
    assert taken.event_ids == ids[:2]
    assert [s.version for s in taken.sessions] == [1] and not taken.rewritten
    assert [r.energy_register_wh for _, r in taken.meter] == [first.samples[-1].energy_wh]
    assert [k for k, _, _ in taken.timers] == ["code_expiry"]
    fold.apply(ids[2], sid, again)
    fold.apply(ids[3], sid, scanned)
    taken = fold.take()
    assert taken.event_ids == ids[2:]
    assert taken.meter == [] and taken.rewritten == {story.session_id}
    assert taken.timers == [] and taken.scan_claims == [(story.session_id, story.user_id)]
    assert taken.touched == {story.session_id}
