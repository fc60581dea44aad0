"""billing-svc's use cases, one module each: authorise, settle, top up, refund, payment
methods (``common`` holds what they share). Each takes the caller's unit of work and never
commits; the orchestrators that must call the processor own their short transactions."""
