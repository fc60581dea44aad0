"""The expected authorisation policy, as data: for every endpoint of every service, which roles
may use it on the target the matrix picks (see test_authz_matrix.TARGETS: mostly *organisation
B's* data, so "op_a" is the other organisation's operator there).

Roles: anon, driver (another driver than the data's owner), unverified (a driver whose e-mail
is not verified), guest (no account: a token from POST /auth/guest bound to another code than
the target's), op_a / op_b (operators of organisation A / B), analyst, admin.
``PUBLIC`` endpoints take no user token (their own checks: station Basic auth, signatures).
A new endpoint fails the matrix until it is added here.
"""

from __future__ import annotations

ROLES = ("anon", "driver", "unverified", "guest", "op_a", "op_b", "analyst", "admin")
ALL = frozenset(ROLES)
AUTHED = ALL - {"anon"}
DRIVERS = frozenset({"driver", "unverified", "admin"})
VERIFIED_DRIVERS = DRIVERS - {"unverified"}  # saving a card, topping up (card testing)
# paying at one charger: a guest scans (only the code its token names) and saves one card
PAYERS = DRIVERS | {"guest"}
OPERATORS = frozenset({"op_a", "op_b", "admin"})
PUBLIC = "public"
STATION_AUTH = "station"  # station Basic auth only: every user token is refused

POLICY: dict[tuple[str, str], frozenset[str] | str] = {
    # auth-svc
    ("POST", "/auth/register"): PUBLIC,
    ("POST", "/auth/verify"): PUBLIC,
    ("POST", "/auth/verify/resend"): PUBLIC,
    ("POST", "/auth/password/reset/request"): PUBLIC,
    ("POST", "/auth/password/reset"): PUBLIC,
    ("POST", "/auth/token"): PUBLIC,
    ("POST", "/auth/guest"): PUBLIC,  # throttled per address; the token is bound to one code
    ("POST", "/auth/refresh"): PUBLIC,
    ("POST", "/auth/logout"): PUBLIC,
    ("GET", "/auth/.well-known/jwks.json"): PUBLIC,
    ("POST", "/auth/admin/signing-keys/rotate"): frozenset({"admin"}),
    ("GET", "/auth/me"): AUTHED,
    ("POST", "/auth/users"): frozenset({"admin"}),
    ("GET", "/auth/organisations"): frozenset({"admin"}),
    ("POST", "/auth/organisations"): frozenset({"admin"}),
    ("GET", "/auth/organisations/{organisation_id}"): frozenset({"op_b", "admin"}),  # org B
    ("POST", "/auth/groups"): OPERATORS,
    ("GET", "/auth/groups"): OPERATORS,
    ("POST", "/auth/groups/{group}/members"): frozenset({"op_b", "admin"}),  # org B's group
    ("DELETE", "/auth/groups/{group}/members/{email}"): frozenset({"op_b", "admin"}),
    # the invited account itself (the token decides; any other gets invitation_invalid)
    ("POST", "/auth/invitations/accept"): AUTHED,
    ("GET", "/auth/stations"): OPERATORS,
    ("POST", "/auth/stations"): OPERATORS,
    ("GET", "/auth/stations/{station_id}"): frozenset({"op_b", "admin"}),  # org B's station
    ("PUT", "/auth/stations/{station_id}/credentials"): frozenset({"op_b", "admin"}),
    # station-gateway
    ("GET", "/stations/{station_id}/display"): STATION_AUTH,
    ("GET", "/stations/{station_id}/display/static/display.js"): STATION_AUTH,
    ("GET", "/stations/{station_id}/display/state"): STATION_AUTH,
    ("GET", "/stations/{station_id}/display/events"): STATION_AUTH,
    ("POST", "/stations/{station_id}/display/sessions"): STATION_AUTH,
    ("POST", "/stations/{station_id}/display/sessions/{session_id}/cancel"): STATION_AUTH,
    ("GET", "/stations/{station_id}/sessions/{session_id}/qr.svg"): STATION_AUTH,
    ("GET", "/stations/{station_id}/sessions/{session_id}/qr.png"): STATION_AUTH,
    # OCPP 2.1 C25 landing: the station's TOTP in the path is the check, not a user token
    ("GET", "/stations/{station_id}/evses/{evse_id}/pay/{code}"): PUBLIC,
    ("GET", "/stations"): OPERATORS,
    ("GET", "/stations/{station_id}/status"): frozenset({"op_b", "admin"}),
    ("POST", "/stations/{station_id}/commands"): frozenset({"op_b", "admin"}),
    ("GET", "/stations/{station_id}/commands/{command_id}"): frozenset({"op_b", "admin"}),
    # org B's station; the target session is at another station: 404 for everyone
    ("GET", "/stations/{station_id}/sessions/{session_id}/meter"): frozenset({"op_b", "admin"}),
    # session-svc (target session: driver 1's, at an org A station)
    ("POST", "/sessions/scan"): PAYERS,
    ("POST", "/sessions/codes/lookup"): PAYERS,
    ("POST", "/sessions/codes/release"): PAYERS,
    ("GET", "/sessions"): AUTHED,  # each sees their own (drivers) / their organisation's
    ("GET", "/sessions/{session_id}"): frozenset({"op_a", "admin", "analyst"}),
    ("POST", "/sessions/{session_id}/stop"): frozenset({"op_a", "admin"}),  # station operator
    ("GET", "/sessions/{session_id}/events"): frozenset({"op_a", "admin", "analyst"}),
    ("GET", "/sessions/{session_id}/timeline"): frozenset({"op_a", "admin", "analyst"}),
    # pricing-svc (target tariff DEMO-AC and station: organisation A's / B's)
    ("GET", "/pricing/tariffs"): OPERATORS,
    ("POST", "/pricing/tariffs"): OPERATORS,
    ("PUT", "/pricing/tariffs/{key}"): frozenset({"op_a", "admin"}),  # DEMO-AC is org A's
    ("GET", "/pricing/tariffs/{key}"): frozenset({"op_a", "admin"}),
    ("GET", "/pricing/tariffs/{key}/versions"): frozenset({"op_a", "admin"}),
    ("GET", "/pricing/tariffs/{key}/versions/{version}"): frozenset({"op_a", "admin"}),
    ("GET", "/pricing/stations/public"): PUBLIC,
    ("GET", "/pricing/stations"): OPERATORS,
    ("GET", "/pricing/stations/{station_id}"): frozenset({"op_b", "admin"}),
    ("PUT", "/pricing/stations/{station_id}"): frozenset({"op_b", "admin"}),
    ("GET", "/pricing/stations/{station_id}/quote"): PUBLIC,
    # notification-svc (the caller's own preferences and delivery log)
    ("GET", "/notifications/preferences"): DRIVERS,
    ("PUT", "/notifications/preferences"): DRIVERS,
    ("GET", "/notifications/mails"): DRIVERS,
    # billing-svc (target payment method and receipt: driver 1's)
    ("GET", "/billing/account"): DRIVERS,
    ("GET", "/billing/ledger"): DRIVERS,
    ("POST", "/billing/topups"): VERIFIED_DRIVERS,
    ("GET", "/billing/payment-methods"): DRIVERS,
    ("POST", "/billing/payment-methods"): VERIFIED_DRIVERS | {"guest"},
    ("DELETE", "/billing/payment-methods/{method_id}"): frozenset({"admin"}),
    ("PUT", "/billing/payment-methods/{method_id}/default"): frozenset({"admin"}),
    ("PUT", "/billing/auto-topup"): DRIVERS,
    ("PUT", "/billing/funding-preference"): DRIVERS,
    ("GET", "/billing/receipts/{session_id}"): frozenset({"op_a", "admin"}),
    # mailing an invoice to a typed address: its payer only (driver 1 here), 404 for all others
    ("POST", "/billing/receipts/{session_id}/mail"): frozenset(),
    ("GET", "/billing/operator/revenue"): frozenset({"op_a", "op_b", "admin", "analyst"}),
    ("POST", "/billing/operator/refunds"): OPERATORS,
    ("GET", "/billing/operator/refunds"): OPERATORS,  # a session's refunds (its station's org)
    ("GET", "/billing/operator/legal-profile"): OPERATORS,  # their own organisation's
    ("PUT", "/billing/operator/legal-profile"): OPERATORS,
    # the target is an unknown refund: 404 for everyone (owner and station operator only)
    ("GET", "/billing/credit-notes/{refund_id}"): frozenset({"op_a", "admin"}),
    # Sessions held for review: each operator sees their organisation's (an empty list for
    # another's); a decision on organisation B's session is refused to op_a as not found.
    ("GET", "/billing/operator/reviews"): frozenset({"op_a", "op_b", "admin", "analyst"}),
    ("POST", "/billing/operator/reviews/{session_id}"): OPERATORS,
    ("POST", "/billing/webhooks/processor"): PUBLIC,
    # a guest's own checkout (its card hold, placed before the scan); a driver's is not this way
    ("POST", "/billing/checkout"): frozenset({"guest"}),
    ("POST", "/billing/checkout/confirm"): frozenset({"guest"}),
    ("DELETE", "/billing/checkout"): frozenset({"guest"}),
    # the simulated processor's 3-D Secure page (simulated only): the unguessable challenge id
    # in the path is the capability, as in the bank's own page's address
    ("GET", "/billing/processor/3ds/{challenge_id}"): PUBLIC,
    ("POST", "/billing/processor/3ds/{challenge_id}/{outcome}"): PUBLIC,
    # how a page takes a card (which processor; Stripe's publishable key), and the simulated
    # processor's card form (simulated only; a typed card in, a token out, as Stripe Elements)
    ("GET", "/billing/processor"): PUBLIC,
    ("POST", "/billing/processor/cards"): PUBLIC,
}
