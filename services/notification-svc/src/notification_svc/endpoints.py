"""notification-svc's HTTP API: a driver's mail preferences and their delivery log."""

from __future__ import annotations

from fastapi import APIRouter
from plugpay_events import utc_now
from plugpay_platform.app import ServiceDatabase
from plugpay_platform.security import CurrentDriver

from notification_svc import service
from notification_svc.repository import NotificationRepository
from notification_svc.schemas import MailLogEntry, Preferences, PreferencesUpdate

router = APIRouter(prefix="/notifications", tags=["notifications"])


Db = ServiceDatabase


@router.get("/preferences", response_model=Preferences)
async def get_preferences(driver: CurrentDriver, db: Db) -> Preferences:
    async with db.read() as session:
        contact = await service.preferences(NotificationRepository(session), driver.user_id)
    return Preferences(receipts=contact.receipts, email=contact.email)


@router.put("/preferences", response_model=Preferences)
async def put_preferences(body: PreferencesUpdate, driver: CurrentDriver, db: Db) -> Preferences:
    """Switch receipt mails on or off."""
    async with db.write() as session:
        contact = await service.set_receipts(
            NotificationRepository(session), driver.user_id, body.receipts, utc_now()
        )
    return Preferences(receipts=contact.receipts, email=contact.email)


@router.get("/mails", response_model=list[MailLogEntry])
async def my_mails(driver: CurrentDriver, db: Db) -> list[MailLogEntry]:
    """The mails sent (or being sent) to this driver, newest first; no bodies."""
    async with db.read() as session:
        records = await service.delivery_log(NotificationRepository(session), driver.user_id)
    return [MailLogEntry.model_validate(r) for r in records]
