"""auth-svc's use cases. Each takes a session of the caller's unit of work and never commits.

Use cases whose refusal must still persist something (a failed login is counted, a reused
refresh token revokes its family) return the Refusal instead of raising it, so the endpoint
raises it only after the unit of work has committed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from plugpay_events.contracts.identity import (
    ConnectorSpec,
    EmailVerificationRequested,
    GroupInvitationRequested,
    OrganisationCreated,
    PasswordChanged,
    PasswordResetRequested,
    StationCredentialSet,
    StationRegistered,
    UserRegistered,
    UserVerified,
)
from plugpay_events.envelope import Event
from plugpay_events.outbox import Outbox
from plugpay_events.sealed import seal
from plugpay_events.session_code import (
    TYPED_CODE_LENGTH,
    looks_like_session_code,
    normalise_typed_code,
)
from plugpay_events.types import utc_now
from plugpay_platform.errors import Refusal
from plugpay_platform.outgoing import envelopes
from plugpay_platform.security import Principal
from plugpay_platform.throttle import ThrottleRule, ThrottleState, record_failure, retry_after_s
from sqlalchemy.ext.asyncio import AsyncSession

from auth_svc import domain
from auth_svc.credentials import (
    PasswordHashing,
    SigningKey,
    new_secret,
    new_signing_key,
    secret_digest,
    sign_token,
)
from auth_svc.domain import Account, RefreshToken, RevokeFamily, Rotate
from auth_svc.repository import AuthRepository, Organisation, Station
from auth_svc.settings import Settings
from auth_svc.tables import outbox_tables

log = logging.getLogger(__name__)
PRODUCER = "auth-svc"
# How long past a key's retirement it stays published: its last tokens' lifetime + leeway.
JWKS_GRACE = timedelta(seconds=60)


@dataclass
class AuthContext:
    """What every use case needs besides the session: settings, hashing, outbox, clock."""

    settings: Settings
    hashing: PasswordHashing = field(default_factory=PasswordHashing)
    outbox: Outbox = field(default_factory=lambda: Outbox(outbox_tables))
    clock: Callable[[], datetime] = utc_now

    @property
    def login_rules(self) -> domain.LoginRules:
        s, default = self.settings, domain.LoginRules()
        return domain.LoginRules(
            account_at_address=replace(
                default.account_at_address,
                free_failures=s.login_free_failures_per_account_and_address,
            ),
            account=replace(default.account, free_failures=s.login_free_failures_per_account),
            address=replace(default.address, free_failures=s.login_free_failures_per_address),
        )

    @property
    def registration_rule(self) -> ThrottleRule:
        return replace(
            domain.REGISTRATION, free_failures=self.settings.registrations_free_per_address
        )

    def seal_code(self, code: str, event_type: str, user_id: uuid.UUID) -> str:
        """A mailed link's code, readable by notification-svc only (``plugpay_events.sealed``)."""
        return seal(self.settings.platform.link_key(), code, f"{event_type}:{user_id}")

    async def emit(self, session: AsyncSession, events: Sequence[Event]) -> None:
        await self.outbox.add(session, envelopes(events, producer=PRODUCER))


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int


# --- accounts ------------------------------------------------------------------------------


async def _count_mail_request(ctx: AuthContext, repo: AuthRepository, client: str) -> None:
    """Registrations and resends from one address, throttled (each one sends a mail)."""
    key, rule, now = f"reg-ip:{client}", ctx.registration_rule, ctx.clock()
    state = (await repo.lock_throttle_states([key]))[key]
    if (wait := retry_after_s(state, now)) is not None:
        raise _too_many("too_many_registrations", "too many registrations from here", wait)
    await repo.save_throttle_state(key, record_failure(state, rule, now))


async def _check_mail_requests(ctx: AuthContext, repo: AuthRepository, client: str) -> None:
    # Read without a lock first: a throttled client costs no password hashing.
    state = (await repo.throttle_states([f"reg-ip:{client}"])).get(f"reg-ip:{client}")
    if state and (wait := retry_after_s(state, ctx.clock())) is not None:
        raise _too_many("too_many_registrations", "too many registrations from here", wait)


async def _check_password_policy(password: str, email: str) -> None:
    # zxcvbn's strength estimate is CPU-bound: off the event loop.
    await asyncio.to_thread(
        domain.check_password_policy, password, personal=(email, email.split("@")[0])
    )


async def register_driver(
    ctx: AuthContext, session: AsyncSession, email: str, password: str, client: str
) -> None:
    """A new unverified driver and a single-use verification link for notification-svc to mail
    (``EmailVerificationRequested``, in this unit of work's outbox).

    An email that already has an account gets the same answer (no enumeration).
    """
    repo = AuthRepository(session)
    await _check_mail_requests(ctx, repo, client)
    email = domain.normalise_email(email)
    await _check_password_policy(password, email)
    password_hash = await ctx.hashing.hash(password)
    await _count_mail_request(ctx, repo, client)
    now = ctx.clock()
    user_id = uuid.uuid4()
    created = await repo.add_user(
        user_id=user_id,
        email=email,
        password_hash=password_hash,
        roles=("driver",),
        organisation_id=None,
        verified_at=None,
    )
    if not created:
        return
    event = await _request_verification(ctx, repo, user_id, email, now)
    await ctx.emit(
        session,
        [
            UserRegistered(user_id=user_id, roles=("driver",), registered_at=now, email=email),
            event,
        ],
    )


async def _request_verification(
    ctx: AuthContext, repo: AuthRepository, user_id: uuid.UUID, email: str, now: datetime
) -> EmailVerificationRequested:
    token, digest = new_secret()
    expires_at = now + timedelta(seconds=ctx.settings.email_verification_ttl_s)
    await repo.add_verification(digest, user_id, expires_at)
    # notification-svc mails {base}/app/#/verify/<code>: in the fragment, browsers never send
    # it, so no access log or Referer can hold it; the driver app's page posts it.
    return EmailVerificationRequested(
        user_id=user_id,
        expires_at=expires_at,
        email=email,
        sealed_code=ctx.seal_code(token, EmailVerificationRequested.type, user_id),
    )


async def resend_verification(
    ctx: AuthContext, session: AsyncSession, email: str, client: str
) -> None:
    """A new link for an unverified account; silently nothing otherwise (no enumeration)."""
    repo = AuthRepository(session)
    await _check_mail_requests(ctx, repo, client)
    await _count_mail_request(ctx, repo, client)
    stored = await repo.user_by_email(domain.email_key(email))
    if stored is None or stored.account.email_verified:
        return
    event = await _request_verification(
        ctx, repo, stored.account.user_id, stored.account.email, ctx.clock()
    )
    await ctx.emit(session, [event])


async def verify_email(ctx: AuthContext, session: AsyncSession, token: str) -> uuid.UUID:
    """Consume a verification token; the user becomes verified (UserVerified)."""
    repo = AuthRepository(session)
    now = ctx.clock()
    digest = secret_digest(token)
    user_id = await repo.use_verification(digest, now)
    if user_id is None:
        state = await repo.verification_state(digest, now)
        raise _link_refused(state, "verification", "verification")
    if await repo.mark_verified(user_id, now):
        await ctx.emit(session, [UserVerified(user_id=user_id, verified_at=now)])
    return user_id


# --- password reset ---------------------------------------------------------------------


async def request_password_reset(
    ctx: AuthContext, session: AsyncSession, email: str, client: str
) -> None:
    """A single-use reset link for notification-svc to mail, if the account exists; the
    caller answers the same either way. Throttled per client address and per e-mail address."""
    repo = AuthRepository(session)
    email = domain.email_key(email)
    now = ctx.clock()
    rules = {
        f"reset-ip:{client}": domain.PASSWORD_RESET_PER_ADDRESS,
        f"reset-email:{email}": domain.PASSWORD_RESET_PER_EMAIL,
    }
    states = await repo.lock_throttle_states(list(rules))
    waits = [w for k in rules if (w := retry_after_s(states[k], now)) is not None]
    if waits:
        raise _too_many("too_many_reset_requests", "too many password reset requests", max(waits))
    for key, rule in rules.items():
        await repo.save_throttle_state(key, record_failure(states[key], rule, now))
    stored = await repo.user_by_email(email)
    if stored is None:
        return
    user_id = stored.account.user_id
    token, digest = new_secret()
    expires_at = now + timedelta(seconds=ctx.settings.password_reset_ttl_s)
    await repo.add_password_reset(digest, user_id, expires_at)
    sealed = ctx.seal_code(token, PasswordResetRequested.type, user_id)
    await ctx.emit(
        session,
        [
            PasswordResetRequested(
                user_id=user_id,
                email=stored.account.email,
                sealed_code=sealed,
                expires_at=expires_at,
            )
        ],
    )


async def reset_password(
    ctx: AuthContext, session: AsyncSession, token: str, new_password: str
) -> uuid.UUID:
    """Set a new password with a reset code: the code (and the user's other open codes) are
    used up, every refresh-token family is revoked, and ``PasswordChanged`` mails the owner."""
    repo = AuthRepository(session)
    now = ctx.clock()
    digest = secret_digest(token)
    state = await repo.password_reset_state(digest, now)
    if state != "valid":
        raise _reset_refused(state)
    owner = await repo.password_reset_owner(digest)
    stored = await repo.user_by_id(owner, for_update=True) if owner else None
    if stored is None:
        raise _reset_refused("unknown")
    user_id, email = stored.account.user_id, stored.account.email
    # Checked before the code is used up: a weak password lets the owner try again.
    await _check_password_policy(new_password, email)
    if await repo.use_password_reset(digest, now) is None:
        raise _reset_refused(await repo.password_reset_state(digest, now))
    await repo.set_password_hash(user_id, await ctx.hashing.hash(new_password))
    await repo.revoke_all_refresh_tokens(user_id, now)
    # Whoever could read the mailbox could have verified it too: the address is proven.
    if await repo.mark_verified(user_id, now):
        await ctx.emit(session, [UserVerified(user_id=user_id, verified_at=now)])
    await ctx.emit(session, [PasswordChanged(user_id=user_id, email=email, changed_at=now)])
    return user_id


def _reset_refused(state: str) -> Refusal:
    return _link_refused(state, "reset", "password reset")


def _link_refused(state: str, reason: str, link: str) -> Refusal:
    """Why a mailed link's code is refused: ``state`` is ``used``, ``expired`` or anything else
    for unknown; ``reason`` prefixes the machine-readable reason, ``link`` names the link."""
    if state == "used":
        return Refusal(f"{reason}_used", f"this {link} link was used already", status_code=400)
    if state == "expired":
        return Refusal(f"{reason}_expired", f"this {link} link has expired", status_code=400)
    return Refusal(f"{reason}_invalid", f"this {link} link is unknown", status_code=400)


async def create_staff_account(
    ctx: AuthContext,
    session: AsyncSession,
    *,
    email: str,
    password: str,
    role: domain.Role,
    organisation_id: uuid.UUID | None,
    enforce_policy: bool = True,
) -> uuid.UUID:
    """An account an admin creates (operator, analyst, admin; or a pre-verified driver)."""
    email = domain.normalise_email(email)
    domain.check_staff_account(role, organisation_id)
    if enforce_policy:
        await _check_password_policy(password, email)
    repo = AuthRepository(session)
    if organisation_id is not None and await repo.organisation(organisation_id) is None:
        raise Refusal("organisation_unknown", "no such organisation", status_code=404)
    now = ctx.clock()
    user_id = uuid.uuid4()
    created = await repo.add_user(
        user_id=user_id,
        email=email,
        password_hash=await ctx.hashing.hash(password),
        roles=(role,),
        organisation_id=organisation_id,
        verified_at=now,  # an admin vouches for the address
    )
    if not created:
        raise Refusal("email_taken", "an account with this email exists", status_code=409)
    await ctx.emit(
        session,
        [
            UserRegistered(
                user_id=user_id,
                roles=(role,),
                organisation_id=organisation_id,
                registered_at=now,
                email=email,
            ),
            UserVerified(user_id=user_id, verified_at=now),
        ],
    )
    return user_id


async def me(session: AsyncSession, principal: Principal) -> Account:
    stored = await AuthRepository(session).user_by_id(principal.user_id)
    if stored is None:
        raise Refusal("not_found", "this account no longer exists", status_code=404)
    return stored.account


# --- login and tokens ------------------------------------------------------------------------


def _throttle_keys(email: str, client: str) -> tuple[str, str, str]:
    """The (account, address), account and address keys of one login attempt."""
    return f"acct-ip:{email}|{client}", f"acct:{email}", f"ip:{client}"


def _login_throttles(
    keys: tuple[str, str, str], states: dict[str, ThrottleState]
) -> domain.LoginThrottles:
    blank = ThrottleState()
    return domain.LoginThrottles(*(states.get(k, blank) for k in keys))


def _too_many(reason: str, what: str, wait: int) -> Refusal:
    return Refusal(
        reason,
        f"{what}; try again in {wait} s",
        status_code=429,
        headers={"Retry-After": str(wait)},
    )


def _invalid_credentials() -> Refusal:
    # One answer for unknown email and wrong password: nothing to enumerate accounts with.
    return Refusal("invalid_credentials", "the email or the password is wrong", status_code=401)


async def login(
    ctx: AuthContext, session: AsyncSession, username: str, password: str, client: str
) -> IssuedTokens | Refusal:
    """The OAuth2 password grant with throttling; unknown email and wrong password look alike."""
    email = domain.email_key(username)
    repo = AuthRepository(session)
    now = ctx.clock()
    keys = _throttle_keys(email, client)
    rules = ctx.login_rules
    throttles = _login_throttles(keys, await repo.throttle_states(list(keys)))
    if (wait := domain.login_wait(throttles, rules, now)) is not None:
        return _too_many("too_many_attempts", "too many failed logins", wait)
    stored = await repo.user_by_email(email)
    ok = await ctx.hashing.verify(stored.password_hash if stored else None, password)
    if not ok or stored is None:
        locked = _login_throttles(keys, await repo.lock_throttle_states(list(keys)))
        for key, state, rule in zip(
            keys,
            (locked.account_at_address, locked.account, locked.address),
            (rules.account_at_address, rules.account, rules.address),
            strict=True,
        ):
            await repo.save_throttle_state(key, record_failure(state, rule, now))
        return _invalid_credentials()
    # The owner got in: forget failures against the account (not the address's: an attacker
    # with one valid account must not reset the counter of the address they stuff from).
    await repo.clear_throttle([k for k in keys if not k.startswith("ip:")])
    if ctx.hashing.needs_rehash(stored.password_hash):
        await repo.set_password_hash(stored.account.user_id, await ctx.hashing.hash(password))
    return await _issue(ctx, repo, stored.account, family_id=uuid.uuid4(), now=now)


async def _issue(
    ctx: AuthContext,
    repo: AuthRepository,
    account: Account,
    *,
    family_id: uuid.UUID,
    now: datetime,
) -> IssuedTokens:
    key = await repo.active_signing_key()
    if key is None:
        key = await rotate_signing_key(ctx, repo.session)
    claims = domain.access_claims(
        account,
        issuer=ctx.settings.platform.jwt_issuer,
        audience=ctx.settings.platform.jwt_audience,
        now=now,
        ttl_s=ctx.settings.access_token_ttl_s,
    )
    refresh, digest = new_secret()
    await repo.add_refresh_token(
        RefreshToken(
            token_hash=digest.hex(),
            family_id=family_id,
            user_id=account.user_id,
            issued_at=now,
            expires_at=now + timedelta(seconds=ctx.settings.refresh_token_ttl_s),
        )
    )
    return IssuedTokens(sign_token(claims, key), refresh, ctx.settings.access_token_ttl_s)


async def issue_guest_token(
    ctx: AuthContext, session: AsyncSession, code: str, client: str
) -> tuple[str, int]:
    """A guest's access token for one session code (EU ad hoc charging: paying without an
    account); counted per client address. The code is checked by session-svc at the scan:
    the token only says which code its holder may use."""
    content = code.strip()
    if not (
        looks_like_session_code(content) or len(normalise_typed_code(content)) == TYPED_CODE_LENGTH
    ):
        raise Refusal("code_malformed", "this is not a Plugpay code", status_code=400)
    repo, now = AuthRepository(session), ctx.clock()
    key = f"guest-ip:{client}"
    rule = replace(domain.GUEST_TOKENS, free_failures=ctx.settings.guest_tokens_free_per_address)
    state = (await repo.lock_throttle_states([key]))[key]
    if (wait := retry_after_s(state, now)) is not None:
        raise _too_many("too_many_guests", "too many guest checkouts from here", wait)
    await repo.save_throttle_state(key, record_failure(state, rule, now))
    signing_key = await repo.active_signing_key()
    if signing_key is None:
        signing_key = await rotate_signing_key(ctx, session)
    ttl = ctx.settings.guest_token_ttl_s
    claims = domain.guest_claims(
        content,
        issuer=ctx.settings.platform.jwt_issuer,
        audience=ctx.settings.platform.jwt_audience,
        now=now,
        ttl_s=ttl,
    )
    return sign_token(claims, signing_key), ttl


async def refresh(
    ctx: AuthContext, session: AsyncSession, refresh_token: str
) -> IssuedTokens | Refusal:
    """Rotate a refresh token; a reused one revokes its whole family."""
    repo = AuthRepository(session)
    now = ctx.clock()
    stored = await repo.refresh_token_for_update(secret_digest(refresh_token).hex())
    decision = domain.decide_refresh(stored, now)
    if isinstance(decision, RevokeFamily):
        await repo.revoke_family(decision.family_id, now)
        log.warning("refresh token reused: family %s revoked", decision.family_id)
        return Refusal(
            "refresh_token_reused",
            "this refresh token was already used; all sessions of this login are ended",
            status_code=401,
        )
    if not isinstance(decision, Rotate):
        return Refusal(decision.reason, "the refresh token is not valid", status_code=401)
    await repo.mark_refresh_used(decision.used.token_hash, now)
    user = await repo.user_by_id(decision.used.user_id)
    if user is None:
        return Refusal("refresh_token_invalid", "the refresh token is not valid", status_code=401)
    return await _issue(ctx, repo, user.account, family_id=decision.used.family_id, now=now)


async def logout(ctx: AuthContext, session: AsyncSession, refresh_token: str) -> None:
    """End the login the refresh token belongs to (its whole family); unknown ones are ignored."""
    repo = AuthRepository(session)
    stored = await repo.refresh_token_for_update(secret_digest(refresh_token).hex())
    if stored is not None:
        await repo.revoke_family(stored.family_id, ctx.clock())


# --- signing keys ------------------------------------------------------------------------------


async def ensure_signing_key(ctx: AuthContext, session: AsyncSession) -> SigningKey:
    repo = AuthRepository(session)
    await repo.lock_signing_keys()
    return await repo.active_signing_key() or await rotate_signing_key(ctx, session)


async def rotate_signing_key(ctx: AuthContext, session: AsyncSession) -> SigningKey:
    """Start signing with a new key; the old one stays published until its tokens expire."""
    repo = AuthRepository(session)
    await repo.lock_signing_keys()
    now = ctx.clock()
    await repo.retire_signing_keys(now)
    key = new_signing_key(now)
    await repo.add_signing_key(key)
    log.info("new signing key %s", key.kid)
    return key


async def jwks(ctx: AuthContext, session: AsyncSession) -> dict[str, Any]:
    """The public keys verifiers trust: the current one and those retired recently enough."""
    ttl = timedelta(seconds=ctx.settings.access_token_ttl_s)
    keys = await AuthRepository(session).published_signing_keys(ctx.clock() - ttl - JWKS_GRACE)
    return {"keys": [k.public_jwk for k in keys]}


# --- organisations and groups ----------------------------------------------------------------


async def create_organisation(ctx: AuthContext, session: AsyncSession, name: str) -> Organisation:
    repo = AuthRepository(session)
    now = ctx.clock()
    org_id = uuid.uuid4()
    if not await repo.add_organisation(org_id, name, now):
        raise Refusal("organisation_exists", "an organisation has this name", status_code=409)
    await ctx.emit(
        session, [OrganisationCreated(organisation_id=org_id, name=name, created_at=now)]
    )
    return Organisation(org_id, name, now)


async def list_organisations(session: AsyncSession) -> list[Organisation]:
    return await AuthRepository(session).organisations()


def organisation_in_scope(principal: Principal, organisation_id: uuid.UUID | None) -> uuid.UUID:
    """The organisation a staff member acts for: operators their own, admins the one named."""
    if principal.has("admin"):
        if organisation_id is None:
            raise Refusal("organisation_required", "name the organisation", status_code=422)
        return organisation_id
    if principal.organisation_id is None:
        raise Refusal("forbidden", "you belong to no organisation", status_code=403)
    if organisation_id is not None and organisation_id != principal.organisation_id:
        # Not 403: do not confirm that another organisation's things exist.
        raise Refusal("not_found", "no such organisation", status_code=404)
    return principal.organisation_id


async def get_organisation(
    session: AsyncSession, principal: Principal, organisation_id: uuid.UUID
) -> Organisation:
    organisation_in_scope(principal, organisation_id)
    org = await AuthRepository(session).organisation(organisation_id)
    if org is None:
        raise Refusal("not_found", "no such organisation", status_code=404)
    return org


async def create_group(
    session: AsyncSession, principal: Principal, name: str, organisation_id: uuid.UUID | None
) -> None:
    org = organisation_in_scope(principal, organisation_id)
    repo = AuthRepository(session)
    if await repo.organisation(org) is None:
        raise Refusal("not_found", "no such organisation", status_code=404)
    if not await repo.add_group(name, org):
        # Names are one namespace (tokens carry bare names); the refusal is the same whoever
        # holds the name, so it tells nobody which organisation has which groups.
        raise Refusal(
            "group_name_unavailable",
            "this group name cannot be used; choose another one",
            status_code=409,
        )


async def _own_group(repo: AuthRepository, principal: Principal, name: str) -> uuid.UUID:
    """The group's organisation, when the caller may manage the group (404 otherwise)."""
    owner = await repo.group_organisation(name)
    if owner is None or not (principal.has("admin") or owner == principal.organisation_id):
        raise Refusal("not_found", "no such group", status_code=404)
    return owner


async def add_group_member(
    ctx: AuthContext, session: AsyncSession, principal: Principal, group: str, email: str
) -> bool | None:
    """Enrol an account of the group's organisation (True), or invite a driver (False: the
    invitation is mailed by notification-svc from ``GroupInvitationRequested``).

    Anything else (an unknown address, another organisation's staff, an admin) changes nothing
    and returns None; the endpoint answers a driver and these alike, so it tells an operator
    nothing about accounts outside their organisation, and nobody's token changes without
    their consent.
    """
    repo = AuthRepository(session)
    owner = await _own_group(repo, principal, group)
    user = await repo.user_by_email(domain.normalise_email(email))
    if user is None:
        return None
    account = user.account
    if account.organisation_id == owner:
        await repo.add_member(group, account.user_id)
        return True
    if account.roles != ("driver",) or group in account.groups:
        return None
    token, digest = new_secret()
    expires_at = ctx.clock() + timedelta(seconds=ctx.settings.group_invitation_ttl_s)
    await repo.add_invitation(digest, group, account.user_id, expires_at)
    # Mailed as {base}/app/#/invitations/<code>: in the fragment, like verification links.
    sealed = ctx.seal_code(token, GroupInvitationRequested.type, account.user_id)
    await ctx.emit(
        session,
        [
            GroupInvitationRequested(
                user_id=account.user_id,
                email=account.email,
                group=group,
                sealed_code=sealed,
                expires_at=expires_at,
            )
        ],
    )
    return False


async def accept_group_invitation(
    ctx: AuthContext, session: AsyncSession, principal: Principal, token: str
) -> str:
    """The invited driver, logged in, joins the group; the group's name."""
    repo = AuthRepository(session)
    group = await repo.use_invitation(secret_digest(token), principal.user_id, ctx.clock())
    if group is None:
        raise Refusal(
            "invitation_invalid",
            "this invitation is unknown, used, expired or for another account",
            status_code=404,
        )
    await repo.add_member(group, principal.user_id)
    return group


async def remove_group_member(
    session: AsyncSession, principal: Principal, group: str, email: str
) -> None:
    repo = AuthRepository(session)
    await _own_group(repo, principal, group)
    user = await repo.user_by_email(domain.normalise_email(email))
    if user is not None:
        await repo.remove_member(group, user.account.user_id)


async def list_groups(
    session: AsyncSession, principal: Principal, organisation_id: uuid.UUID | None
) -> list[tuple[str, list[str]]]:
    org = organisation_in_scope(principal, organisation_id)
    return await AuthRepository(session).groups_of_organisation(org)


# --- stations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewStation:
    """A station as its operator describes it when registering it."""

    station_id: str
    name: str
    connectors: Sequence[ConnectorSpec]
    latitude: float | None = None
    longitude: float | None = None
    address: str | None = None


async def register_station(
    ctx: AuthContext,
    session: AsyncSession,
    principal: Principal,
    new: NewStation,
    organisation_id: uuid.UUID | None,
) -> Station:
    org = organisation_in_scope(principal, organisation_id)
    repo = AuthRepository(session)
    if await repo.organisation(org) is None:
        raise Refusal("not_found", "no such organisation", status_code=404)
    ids = [c.connector_id for c in new.connectors]
    if len(set(ids)) != len(ids):
        raise Refusal("duplicate_connector", "connector ids must be unique", status_code=422)
    now = ctx.clock()
    station = Station(
        id=new.station_id,
        organisation_id=org,
        name=new.name,
        connectors=[c.model_dump(mode="json") for c in new.connectors],
        latitude=new.latitude,
        longitude=new.longitude,
        address=new.address,
        registered_at=now,
    )
    if not await repo.add_station(station):
        # Ids are one namespace (a charger dials in with its id alone), so a taken id is
        # refused, the same way whoever holds it: nothing says whether or where it exists.
        raise Refusal(
            "station_id_unavailable",
            "this station id cannot be registered; choose another one",
            status_code=409,
        )
    await ctx.emit(
        session,
        [
            StationRegistered(
                station_id=new.station_id,
                organisation_id=org,
                name=new.name,
                connectors=tuple(new.connectors),
                latitude=new.latitude,
                longitude=new.longitude,
                address=new.address,
                registered_at=now,
            )
        ],
    )
    return station


async def station_in_scope(session: AsyncSession, principal: Principal, station_id: str) -> Station:
    station = await AuthRepository(session).station(station_id)
    if station is None or not (
        principal.has("admin") or station.organisation_id == principal.organisation_id
    ):
        raise Refusal("not_found", "no such station", status_code=404)
    return station


async def list_stations(session: AsyncSession, principal: Principal) -> list[Station]:
    if principal.has("admin"):
        return await AuthRepository(session).stations(None)
    if principal.organisation_id is None:
        return []
    return await AuthRepository(session).stations(principal.organisation_id)


async def set_station_credential(
    ctx: AuthContext,
    session: AsyncSession,
    principal: Principal,
    station_id: str,
    password: str,
    security_profile: int,
) -> None:
    """Store only the argon2id hash; the gateway learns it from StationCredentialSet."""
    await station_in_scope(session, principal, station_id)
    domain.check_station_password(password)
    if security_profile not in (1, 2):
        raise Refusal(
            "invalid_security_profile", "OCPP profiles 1 and 2 use passwords", status_code=422
        )
    password_hash = await ctx.hashing.hash(password)
    now = ctx.clock()
    await AuthRepository(session).set_station_credential(
        station_id, password_hash, security_profile, now
    )
    await ctx.emit(
        session,
        [
            StationCredentialSet(
                station_id=station_id,
                password_hash=password_hash,
                security_profile=security_profile,
                set_at=now,
            )
        ],
    )
