"""A guest's card payment is a DirectPayment idToken on 2.1: the session's own tag, accepted
for that guest's session only."""

from __future__ import annotations

from station_gateway import domain


def test_a_guest_is_started_as_a_direct_payment_and_an_account_as_central() -> None:
    assert domain.start_id_token("PP1", direct_payment=True) == {
        "id_token": "PP1",
        "type": "DirectPayment",
    }
    assert domain.start_id_token("PP1", direct_payment=False) == {
        "id_token": "PP1",
        "type": "Central",
    }


def test_a_direct_payment_token_stands_for_its_guests_session_only() -> None:
    direct = {"id_token": "PP1", "type": "DirectPayment"}
    assert domain.id_token_accepted(direct, "PP1", guest=True)
    assert not domain.id_token_accepted(direct, "PP2", guest=True)  # another session's tag
    assert not domain.id_token_accepted(direct, "PP1", guest=False)  # an account's session
    assert not domain.id_token_accepted(direct, None, guest=True)
    # other tokens keep the link by remoteStartId / idTag as before
    assert domain.id_token_accepted({"id_token": "x", "type": "Central"}, "PP1", guest=False)
    assert domain.id_token_accepted(None, "PP1", guest=True)
