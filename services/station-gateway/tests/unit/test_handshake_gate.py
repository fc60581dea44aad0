"""The handshake gate's turns: stations turned away in a storm are each given their own time
to come back, at the pace the gate lets stations in."""

from __future__ import annotations

from station_gateway.ocpp_endpoint import Admission, HandshakeGate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_turns_follow_the_pace_stations_get_in_and_are_never_sooner_than_the_minimum() -> None:
    clock = Clock()
    gate = HandshakeGate(limit=4, retry_after_s=10, clock=clock)
    gate.mean_hold_s = 2.0  # 4 places, 2 s each: two stations a second
    assert [gate.enter() for _ in range(5)] == [True, True, True, True, False]
    turns = [gate.retry_after() for _ in range(6)]
    assert turns == [10, 11, 11, 12, 12, 13]
    # Later refusals queue behind the turns already given, counted from their own moment.
    clock.now += 2.0
    assert gate.retry_after() == 11
    # Once the queue of turns has passed, the minimum applies again.
    clock.now += 60.0
    assert gate.retry_after() == 10


def test_the_pace_is_learned_from_stations_that_got_in_and_turns_are_capped() -> None:
    clock = Clock()
    gate = HandshakeGate(limit=1, retry_after_s=10, max_retry_after_s=30, clock=clock)
    assert gate.enter()
    admission = Admission(gate)
    clock.now += 5.0
    admission.release(got_in=True)
    admission.release(got_in=True)  # given back once
    assert gate.in_flight == 0
    learned = gate.mean_hold_s
    assert 1.0 < learned < 5.0  # moved towards the 5 s it took
    assert gate.enter()
    failed = Admission(gate)
    clock.now += 50.0
    failed.release()  # a refused password or a failure says nothing about getting in
    assert (gate.mean_hold_s, gate.in_flight) == (learned, 0)
    assert gate.enter()
    gate.mean_hold_s = 20.0
    assert [gate.retry_after() for _ in range(50)] == [10] + [30] * 49
    # Turns handed out at the cap do not pile up: once the cap and one turn have passed, the
    # queue is empty again (it would still be 49 turns long if every refusal had taken one).
    clock.now += 50.0
    assert gate.retry_after() == 10
