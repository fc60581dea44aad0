"""Session service: the charging-session aggregate, scan API, session store."""
