// Every refusal in plain language, with what to do next (docs/flow.md lists the reasons).
const R = {
  code_expired: ["This code has expired.", "Codes are valid for a few minutes. Choose “Pay with phone” on the charger again to get a new one."],
  code_used: ["This code was already used.", "Each code works once. Choose “Pay with phone” on the charger again for a new code."],
  code_invalid: ["We don't know this code.", "Check the six characters on the charger's screen and try again, or scan the QR code instead."],
  code_not_ready: ["The charger is still setting up this code.", "Wait a few seconds and press Start again."],
  code_malformed: ["That isn't a Plugpay code.", "Type the six characters shown under the QR code (letters and digits), or scan the QR code."],
  station_unknown: ["This charger isn't on Plugpay.", "Look for the Plugpay logo, or use another charger."],
  station_offline: ["The charger is offline right now.", "It can't start remotely. Try another charger, or ask the site for help."],
  connector_unavailable: ["This connector isn't available.", "It may be out of order or reserved. Try another connector or charger."],
  access_denied: ["This charger isn't open to you.", "It is reserved for some members or opening hours. Find a public charger nearby."],
  account_unverified: ["Please confirm your e-mail address first.", "Open the link we e-mailed you, then scan again."],
  insufficient_funds: ["Your balance is too low for this charger.", "Top up your wallet or add a card, then scan a new code."],
  payment_declined: ["Your card was declined.", "Use another card in Account → Payment methods, or top up your wallet."],
  too_many_declines: ["Too many declined payments.", "Wait an hour, then try again or use another card."],
  balance_limit_exceeded: ["That would take your wallet above its maximum.", "Top up a smaller amount."],
  no_payment_method: ["You have no way to pay yet.", "Add a card or top up your wallet in Account, then scan again."],
  station_rejected: ["The charger refused to start.", "Check that the cable is plugged in on both ends, then try again. You were not charged."],
  start_timeout: ["The charger didn't start in time.", "Check the cable and try again with a new code. You were not charged."],
  internal_error: ["Something went wrong on our side.", "You were not charged. Please try again in a moment."],
  too_many_requests: ["Too many attempts.", "Wait a minute, or scan the QR code instead of typing."],
  store_rebuilding: ["We're updating our systems.", "Try again in a few seconds."],
  not_charging: ["This session isn't charging.", "There is nothing to stop."],
  invalid_credentials: ["E-mail or password is wrong.", "Check them and try again."],
  too_many_attempts: ["Too many login attempts.", "Wait a few minutes before trying again."],
  email_taken: ["This e-mail address already has an account.", "Log in instead."],
  weak_password: ["This password is too weak.", "Use at least 12 characters that aren't easy to guess."],
  invalid_email: ["This e-mail address doesn't look right.", "Check it and try again."],
  invalid_amount: ["That amount isn't valid.", "Enter a positive amount."],
  payment_method_invalid: ["That card can't be used.", "Try another card."],
  not_found: ["Not found.", "It may have been removed, or it belongs to someone else."],
  forbidden: ["You don't have access to this.", "Log in with an account that does."],
  no_organisation: ["Your account belongs to no organisation.", "Ask your administrator to add you to one."],
  offline: ["You're offline.", "What you saw last is shown; try again when you have a connection."],
  abandoned: ["The session was cancelled.", "You were not charged. Try again with a new code."],
  expired: ["The code expired before it was used.", "Choose “Pay with phone” on the charger again."],
  failed: ["The session failed.", "Contact support if money was taken; otherwise try again."],
};

export function explain(reason, message) {
  const known = R[reason];
  if (known) return { title: known[0], next: known[1], reason };
  return { title: message || "Something went wrong.", next: "Please try again, or contact support.", reason };
}
