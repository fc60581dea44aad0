"""The gateway's session life cycle is one state machine: every step either leads to a known
state or is refused with a reason, and nothing leaves a final state."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from station_gateway.domain import (
    FINAL,
    IN_PROGRESS,
    SessionState,
    SessionStep,
    StepRefused,
    next_state,
    step_refusal,
)

S = SessionState
STATES = [None, *SessionState]


def run(*steps: SessionStep) -> SessionState | StepRefused:
    state: SessionState | None = None
    for step in steps:
        result = next_state(state, step)
        if isinstance(result, StepRefused):
            return result
        state = result
    assert state is not None
    return state


def test_the_paid_path_from_code_to_completion() -> None:
    assert (
        run(
            SessionStep.ISSUE_CODE,
            SessionStep.AUTHORIZE,
            SessionStep.SEND_START,
            SessionStep.START_CHARGING,
            SessionStep.REQUEST_STOP,
            SessionStep.COMPLETE,
        )
        is S.COMPLETED
    )


def test_a_station_may_start_before_the_start_command_is_marked_sent() -> None:
    assert run(SessionStep.AUTHORIZE, SessionStep.START_CHARGING) is S.CHARGING


def test_a_replayed_authorisation_changes_nothing_once_started() -> None:
    assert next_state(S.AUTHORIZED, SessionStep.AUTHORIZE) is S.AUTHORIZED
    refused = next_state(S.CHARGING, SessionStep.AUTHORIZE)
    assert refused == StepRefused("wrong_state", "cannot authorize a session that is charging")


def test_a_completed_session_cannot_complete_again() -> None:
    refused = step_refusal(S.COMPLETED, SessionStep.COMPLETE)
    assert refused is not None and refused.reason == "session_completed"


def test_only_an_unscanned_code_expires_and_only_an_unstarted_session_is_abandoned() -> None:
    assert next_state(S.CODE_ISSUED, SessionStep.EXPIRE) is S.EXPIRED
    assert isinstance(next_state(S.AUTHORIZED, SessionStep.EXPIRE), StepRefused)
    assert next_state(S.STARTING, SessionStep.ABANDON) is S.ABANDONED
    assert next_state(S.CHARGING, SessionStep.ABANDON) == StepRefused(
        "wrong_state", "cannot abandon a session that is charging"
    )


def test_a_late_authorisation_of_an_expired_code_is_abandoned() -> None:
    # The hold billing placed for a code the gateway had already retired must be voided.
    assert run(SessionStep.ISSUE_CODE, SessionStep.EXPIRE, SessionStep.ABANDON) is S.ABANDONED
    assert isinstance(next_state(S.EXPIRED, SessionStep.SEND_START), StepRefused)


def test_stored_states_are_read_as_the_enum() -> None:
    assert next_state("charging", SessionStep.COMPLETE) is S.COMPLETED
    assert next_state("charging", SessionStep.REQUEST_STOP) is S.CHARGING
    refused = step_refusal(None, SessionStep.COMPLETE)
    assert refused is not None and refused.reason == "session_unknown"


@given(st.sampled_from(STATES), st.sampled_from(list(SessionStep)))
def test_every_step_leads_somewhere_known_or_is_refused_with_a_reason(
    state: SessionState | None, step: SessionStep
) -> None:
    result = next_state(state, step)
    if isinstance(result, StepRefused):
        assert result.reason and result.message
        assert step_refusal(state, step) == result
    else:
        assert result in SessionState
        assert step_refusal(state, step) is None


@given(st.sampled_from(sorted(FINAL)), st.sampled_from(list(SessionStep)))
def test_final_states_are_final(state: SessionState, step: SessionStep) -> None:
    result = next_state(state, step)
    assert result is state or isinstance(result, StepRefused)
    if isinstance(result, StepRefused):
        assert result.reason == f"session_{state}"


@given(st.lists(st.sampled_from(list(SessionStep)), max_size=12))
def test_a_stop_is_asked_only_of_a_session_in_progress(steps: list[SessionStep]) -> None:
    state: SessionState | None = None
    for step in steps:
        result = next_state(state, step)
        if step is SessionStep.REQUEST_STOP:
            assert isinstance(result, StepRefused) == (state not in IN_PROGRESS)
        if not isinstance(result, StepRefused):
            state = result
