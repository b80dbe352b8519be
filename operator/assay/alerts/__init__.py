"""The Alertmanager webhook receiver: parse a v4 payload, match firing alerts to RoutePolicies by their
`spec.rollback.alertSelector`, act once per firing, over an authenticated aiohttp endpoint.

`payload` and `matching` are pure; `server` is the HTTP edge. The caller (the operator's runtime) supplies how to
list RoutePolicies and what to do with matches (roll back), so nothing here talks to Kubernetes.
"""

from assay.alerts.matching import Match, match
from assay.alerts.payload import Alert, Notification, PayloadError, parse
from assay.alerts.server import bound_port, make_app, serve

__all__ = [
    "Alert",
    "Match",
    "Notification",
    "PayloadError",
    "bound_port",
    "make_app",
    "match",
    "parse",
    "serve",
]
