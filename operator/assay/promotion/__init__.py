"""Route changes: the pure promotion state machine (`machine`) and the one route writer (`writer`).

Every request to change a route (a passed qualification, a canary step, `assay.dev/promote`,
`assay.dev/rollback`, a drift alert, an edited spec.gateway, a deleted policy) becomes a typed intent in the
policy's status (`PendingAction`); one serialized writer per gateway location carries the intents out.
"""
