"""Where the money goes: spend per route, feature and tenant read from the gateway's own metrics through
Prometheus, a month-end forecast, and the Pareto ranking `assay top` prints (docs/spend.md).

- `prometheus`: the instant-query client and its typed errors (unreachable, bad PromQL, no series);
- `sources`: the PromQL per gateway kind (LiteLLM, Envoy AI Gateway, a user's PromQL), pure;
- `reading`: spend and requests per group over a window, and per day this month, through a source;
- `forecast`: month-end spend with an interval, and the money a qualified candidate would save, pure;
- `pareto`: routes ranked by spend with the 80% cut and what their RoutePolicies say, pure;
- `command`: `assay top`.
"""
