"""The ground every app stands on: the error shape, settings helpers, logging, the client-IP
rule, middleware, DBOS start-up and the registries through which the apps contribute their
workflows, readiness checks and doctor checks. It imports no app (docs/architecture.md)."""
