"""The gateway service: screens every request, answers refusals, routes the rest to a worker."""
