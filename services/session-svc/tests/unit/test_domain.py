"""The charging-session aggregate: transitions, commands, and properties over random logs."""

from __future__ import annotations

import uuid
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from plugpay_events.contracts.sessions import SessionCodeScanned
from plugpay_events.envelope import Event
from plugpay_events.session_code import SessionCodeClaims
from session_stories import Story
from session_svc import domain
from session_svc.domain import (
    HOLD_RELEASABLE,
    MAIN_LINE,
    TERMINAL,
    ChargingSession,
    Rejected,
    SessionStatus,
    fold,
)

S = SessionStatus


def folded(events: list[Event]) -> ChargingSession:
    return fold(events[0].session_id, [(uuid.uuid4(), e) for e in events])  # type: ignore[attr-defined]


def test_happy_path_ends_billed_with_the_receipt() -> None:
    story = Story()
    state = folded([e for e in story.billed_path() if e.type != "MeterValuesReported"])
    assert state.status is S.BILLED
    assert state.receipt_id is not None and state.charged == state.cost
    assert state.outcome == "completed"
    assert state.ignored == ()


def test_stopped_by_driver_and_at_limit_are_outcomes() -> None:
    story = Story()
    events = [e for e in story.billed_path(stop_by_driver=True) if e.type != "MeterValuesReported"]
    assert folded(events).outcome == "stopped_by_driver"
    limit = Story()
    limit.issued(), limit.scanned(), limit.priced(), limit.authorised(), limit.started_charging()
    limit.completed(reason="limit_reached")
    assert folded(limit.events).outcome == "stopped_at_limit"


def test_a_start_proven_after_the_backstop_gave_up_is_charged_in_either_order() -> None:
    """A broker outage delays the station's ChargingStarted past session-svc's start backstop:
    the station's word wins, whichever of the abandon, billing's hold release and the start
    reaches the store first, and the session goes on to be billed."""
    story = Story()
    story.issued(), story.scanned(), story.priced(), story.authorised()
    before = list(story.events)
    abandoned, released = story.abandoned(), story.hold_released()
    started = story.started_charging()
    ending = [story.completed(), story.cost_calculated(), story.billed()]
    orders = [
        [abandoned, released, started],
        [abandoned, started, released],
        [started, abandoned, released],
    ]
    finals = []
    for order in orders:
        state = folded([*before, *order])
        assert state.status is S.CHARGING and state.started_at == started.started_at
        assert state.abandoned_reason is None and state.hold_released == released.released
        state = folded([*before, *order, *ending])
        assert state.status is S.BILLED and state.outcome == "completed"
        finals.append(state.model_dump(exclude={"applied", "ignored", "version"}))
    assert finals[0] == finals[1] == finals[2]
    # station-gateway's own abandons (a station that refused, a superseded code) are final.
    refused = Story()
    refused.issued(), refused.scanned(), refused.priced(), refused.authorised()
    refused.abandoned(reason="station_rejected"), refused.started_charging()
    assert folded(refused.events).status is S.ABANDONED


def test_unhappy_endings() -> None:
    assert folded(Story().denied_path()).denial_reason == "insufficient_funds"
    assert folded(Story().expired_path()).status is S.EXPIRED
    abandoned = folded(Story().abandoned_path())
    assert abandoned.status is S.ABANDONED and abandoned.hold_released_at is not None
    failing = Story()
    failing.issued(), failing.scanned(), failing.priced(), failing.authorised()
    failing.started_charging(), failing.failed()
    assert folded(failing.events).status is S.FAILED


def test_illegal_transition_is_skipped_with_a_reason() -> None:
    story = Story()
    story.issued()
    story.billed_path  # noqa: B018 - only building events below
    state = folded([story.events[0], story.priced()])
    assert state.status is S.CODE_ISSUED
    assert state.ignored == ("SessionPriced cannot follow code_issued",)
    assert domain.transition_problem(state, story.scanned()) is None


def test_the_same_event_twice_is_applied_once() -> None:
    story = Story()
    issued, scanned = story.issued(), story.scanned()
    ids = [uuid.uuid4(), uuid.uuid4()]
    once = fold(story.session_id, zip(ids, [issued, scanned], strict=True))
    twice = fold(story.session_id, [(ids[0], issued), (ids[1], scanned), (ids[1], scanned)])
    assert once == twice and once.version == 2


def test_a_timer_firing_twice_changes_nothing() -> None:
    story = Story()
    story.issued()
    first = folded([*story.events, story.expired()])
    again = domain.apply(first, story.expired(), uuid.uuid4())
    assert again.status is S.EXPIRED and again.version == first.version and again.ignored == ()


def test_scan_command() -> None:
    story = Story()
    state = folded([story.issued()])
    now = story.at(30)
    kwargs = {"user_id": story.user_id, "organisation_id": None, "user_groups": ["b", "a"]}
    event = domain.scan(state, code_kind="typed", now=now, **kwargs)  # type: ignore[arg-type]
    assert not isinstance(event, Rejected)
    assert (event.station_id, event.session_started_at, event.user_id) == (
        story.station_id,
        story.started,
        story.user_id,
    )
    assert event.user_groups == ("a", "b") and event.code_kind == "typed"
    late = domain.scan(state, code_kind="qr", now=story.at(400), **kwargs)  # type: ignore[arg-type]
    assert late == Rejected("code_expired", late.message)  # type: ignore[union-attr]
    wrong = domain.scan(
        state,
        code_kind="qr",
        now=now,
        presented=("ST-2", 1, story.token_id),
        **kwargs,  # type: ignore[arg-type]
    )
    assert isinstance(wrong, Rejected) and wrong.reason == "code_invalid"
    used = domain.scan(folded([*story.events, story.scanned()]), code_kind="qr", now=now, **kwargs)  # type: ignore[arg-type]
    assert isinstance(used, Rejected) and used.reason == "code_used"
    unknown = domain.scan(
        ChargingSession(session_id=uuid.uuid4()), code_kind="qr", now=now, **kwargs
    )  # type: ignore[arg-type]
    assert isinstance(unknown, Rejected) and unknown.reason == "code_invalid"


def test_stop_command() -> None:
    story = Story()
    story.issued(), story.scanned(), story.priced(), story.authorised(), story.started_charging()
    charging = folded(story.events)
    events = domain.request_stop(
        charging, requested_by="driver", user_id=story.user_id, now=story.at(99)
    )
    assert isinstance(events, list) and events[0].requested_by == "driver"
    stopping = domain.apply(charging, events[0])
    assert stopping.status is S.STOPPING
    assert (
        domain.request_stop(stopping, requested_by="driver", user_id=None, now=story.at(99)) == []
    )
    refused = domain.request_stop(
        folded(story.events[:1]), requested_by="driver", user_id=None, now=story.at(1)
    )
    assert isinstance(refused, Rejected) and refused.reason == "not_charging"


def test_timers_commands() -> None:
    story = Story()
    issued = folded([story.issued()])
    due = story.at(300)
    assert domain.expire_code(issued, now=story.at(299), due=due) == []
    assert domain.expire_code(issued, now=due, due=due)[0].type == "SessionCodeExpired"
    story.scanned(), story.priced(), story.authorised(deadline_s=120)
    authorised = folded(story.events)
    deadline = domain.start_deadline(authorised, None)
    assert deadline == story.at(132)
    assert domain.start_deadline(authorised, timedelta(seconds=5)) == story.at(17)
    # A backstop after the gateway's deadline (station-gateway decides a start first).
    backstop = timedelta(seconds=120)
    assert domain.start_deadline(authorised, timedelta(seconds=5), backstop) == story.at(137)
    assert domain.abandon(authorised, now=story.at(131), deadline=story.at(132)) == []
    assert (
        domain.abandon(authorised, now=story.at(132), deadline=story.at(132))[0].reason
        == "start_timeout"
    )


# --- properties ----------------------------------------------------------------------------


def _all_kinds(story: Story) -> list[Event]:
    """One event of every kind, for the same session."""
    return [
        story.issued(),
        story.scanned(),
        story.priced(),
        story.denied(),
        story.authorised(),
        story.started_charging(),
        story.stop_requested(),
        story.completed(),
        story.cost_calculated(),
        story.billed(),
        story.expired(),
        story.abandoned(),
        story.failed(),
        story.hold_released(),
    ]


STORY = Story()
KINDS = _all_kinds(STORY)
IDS = [uuid.uuid4() for _ in KINDS]

# Random logs: any kinds in any order, with redeliveries (same id) and re-emissions (new id).
logs = st.lists(
    st.tuples(st.integers(0, len(KINDS) - 1), st.booleans()), min_size=0, max_size=30
).map(lambda picks: [(IDS[i] if same else uuid.uuid4(), KINDS[i]) for i, same in picks])
# Logs that follow the main line, so most transitions are legal.
happy = [KINDS[i] for i in (0, 1, 2, 4, 5, 6, 7, 8, 9)]


def rank(status: SessionStatus | None) -> int:
    return MAIN_LINE.index(status) if status in MAIN_LINE else -1


def assert_possible(state: ChargingSession) -> None:
    """What no sequence of events may ever produce."""
    s = state.status
    if s is None:
        assert state.version == 0
        return
    assert state.station_id and state.session_started_at
    if s in (S.CODE_ISSUED, S.EXPIRED):
        assert state.code is not None  # only a scan may come before its Issued
    if s not in (S.CODE_ISSUED, S.EXPIRED):
        assert state.user_id is not None and state.scanned_at is not None
    if s in (S.AUTHORISED, S.CHARGING, S.COMPLETED, S.COST_CALCULATED, S.BILLED, S.ABANDONED):
        assert state.tariff is not None and state.authorized_at is not None
    if s in (S.CHARGING, S.COMPLETED, S.COST_CALCULATED, S.BILLED):
        assert state.started_at is not None
    if s in (S.COMPLETED, S.COST_CALCULATED, S.BILLED):
        assert state.ended_at is not None and state.energy_wh is not None
    if s in (S.COST_CALCULATED, S.BILLED):
        assert state.cost is not None
    if s is S.BILLED:
        assert state.receipt_id is not None
    if s is S.DENIED:
        assert state.denial_reason is not None and state.started_at is None
    if s is S.EXPIRED:
        assert state.scanned_at is None and state.expired_at is not None
    if s is S.ABANDONED:
        assert state.started_at is None and state.abandoned_reason is not None
    if s is S.FAILED:
        assert state.failure_reason is not None
    if state.hold_released_at is not None:
        # or billing voided the hold on a backstop abandon the station's start then overruled
        assert s in HOLD_RELEASABLE or state.started_at is not None


@settings(max_examples=400, deadline=None)
@given(logs)
def test_random_logs_never_reach_an_impossible_state(log: list[tuple[uuid.UUID, Event]]) -> None:
    state = ChargingSession(session_id=STORY.session_id)
    for event_id, event in log:
        before = state
        state = domain.apply(state, event, event_id)
        assert_possible(state)
        if before.status in TERMINAL and not domain.overruled_abandon(before):
            assert state.status == before.status  # nothing leaves an ending
        if before.status is S.ABANDONED and state.status is not S.ABANDONED:
            assert event.type == "ChargingStarted" and state.status is S.CHARGING
        if before.status in MAIN_LINE and state.status in MAIN_LINE:
            assert rank(state.status) >= rank(before.status)  # never backwards
        assert state.version >= before.version


@settings(max_examples=300, deadline=None)
@given(logs, st.randoms(use_true_random=False))
def test_replay_is_deterministic_and_redelivery_is_harmless(
    log: list[tuple[uuid.UUID, Event]], rnd: object
) -> None:
    first = fold(STORY.session_id, log)
    assert fold(STORY.session_id, log) == first
    # Redelivering any events (same ids) right after their first delivery changes nothing.
    redelivered: list[tuple[uuid.UUID, Event]] = []
    for item in log:
        redelivered.append(item)
        if rnd.random() < 0.3:  # type: ignore[attr-defined]
            redelivered.append(item)
    assert fold(STORY.session_id, redelivered) == first
    # The state survives its own storage format.
    assert ChargingSession.model_validate(first.model_dump(mode="json")) == first


@settings(max_examples=200, deadline=None)
@given(st.integers(1, len(happy)), st.lists(st.integers(0, len(happy) - 1), max_size=10))
def test_a_prefix_of_the_main_line_with_repeats_lands_where_it_should(
    length: int, repeats: list[int]
) -> None:
    events = happy[:length]
    with_repeats = list(events)
    for r in repeats:
        if r < length:
            with_repeats.insert(with_repeats.index(events[r]) + 1, events[r])
    plain = fold(STORY.session_id, [(None, e) for e in events])  # type: ignore[misc]
    noisy = fold(STORY.session_id, [(uuid.uuid4(), e) for e in with_repeats])
    expected = MAIN_LINE[length - 1]  # the happy path takes one main-line step per event
    assert plain.status is expected and noisy.status is expected
    assert noisy.ignored == ()


def test_a_pending_scan_reads_as_scanned_until_the_store_has_it() -> None:
    story = Story()
    issued = folded([story.issued()])
    scanned = story.scanned()
    seen = domain.with_pending_scan(issued, scanned)
    assert seen.status is SessionStatus.SCANNED and seen.user_id == story.user_id
    assert (seen.station_id, seen.connector_id) == (story.station_id, story.connector_id)
    # Without the store's row (a rebuild running) the scan alone gives the same reading.
    alone = domain.with_pending_scan(None, scanned)
    assert alone.status is SessionStatus.SCANNED and alone.scanned_at == scanned.scanned_at
    assert alone.session_started_at == issued.session_started_at
    assert (alone.station_id, alone.connector_id) == (story.station_id, story.connector_id)
    # Once the store has moved on, it is the truth.
    priced = folded([*story.events[:2], story.priced()])
    assert domain.with_pending_scan(priced, scanned) is priced


# --- a scan before its code's Issued -------------------------------------------------------


def test_a_scan_before_its_issued_folds_into_one_scanned_session() -> None:
    story = Story()
    issued, scanned = story.issued(), story.scanned()
    early = fold(story.session_id, [(uuid.uuid4(), scanned)])
    assert early.status is S.SCANNED and early.code is None
    assert (early.station_id, early.connector_id) == (story.station_id, story.connector_id)
    late = domain.apply(early, issued, uuid.uuid4())
    assert late.status is S.SCANNED and late.ignored == ()
    assert (late.code, late.token_id) == (story.code, story.token_id)
    assert late.last_event_at == scanned.scanned_at  # not moved back to the issue time
    # The same story in log order lands in the same place.
    in_order = fold(story.session_id, [(uuid.uuid4(), issued), (uuid.uuid4(), scanned)])
    assert (in_order.status, in_order.code, in_order.user_id) == (
        S.SCANNED,
        late.code,
        late.user_id,
    )
    # A second Issued is a repeat either way, and a second scan is not a transition.
    assert domain.apply(late, issued, uuid.uuid4()).version == late.version
    assert domain.apply(late, story.scanned(), uuid.uuid4()).version == late.version


def test_a_code_proves_its_issue_for_a_scan() -> None:
    story = Story()
    state = domain.issued_from_code(
        SessionCodeClaims(
            session_id=story.session_id,
            station_id=story.station_id,
            connector_id=story.connector_id,
            session_started_at=story.started,
            expires_at=story.at(300),
            token_id=story.token_id,
        )
    )
    assert (state.status, state.code_expires_at) == (SessionStatus.CODE_ISSUED, story.at(300))

    def scan_after(seconds: float) -> SessionCodeScanned | Rejected:
        return domain.scan(
            state,
            user_id=story.user_id,
            organisation_id=None,
            user_groups=(),
            code_kind="qr",
            now=story.at(seconds),
            presented=(story.station_id, story.connector_id, story.token_id),
        )

    result = scan_after(1)
    assert not isinstance(result, domain.Rejected)
    assert (result.station_id, result.session_started_at) == (story.station_id, story.started)
    late = scan_after(400)
    assert isinstance(late, domain.Rejected) and late.reason == "code_expired"


def test_only_an_offline_after_the_code_was_made_counts() -> None:
    made = Story().started
    assert domain.online_for_code(True, None, session_started_at=made)
    # The store has not heard of the reconnection that came before the code.
    assert domain.online_for_code(False, made - timedelta(seconds=2), session_started_at=made)
    assert not domain.online_for_code(False, made, session_started_at=made)
    assert not domain.online_for_code(False, made + timedelta(seconds=1), session_started_at=made)
    assert not domain.online_for_code(False, None, session_started_at=made)
