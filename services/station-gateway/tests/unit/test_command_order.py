"""A station's pending commands: what a driver waits for goes before what only informs."""

from __future__ import annotations

from station_gateway.domain import urgent_first


def test_urgent_commands_go_first_each_group_in_order() -> None:
    kinds = ["show_cost", "clear_display", "start", "show_denied", "stop", "ocpp_call"]
    order = [kinds[i] for i in urgent_first(kinds)]
    assert order == ["start", "stop", "ocpp_call", "show_cost", "clear_display", "show_denied"]


def test_nothing_is_lost_or_repeated() -> None:
    kinds = ["show_cost", "start", "show_cost", "start"]
    assert sorted(urgent_first(kinds)) == [0, 1, 2, 3]
    assert urgent_first([]) == []
