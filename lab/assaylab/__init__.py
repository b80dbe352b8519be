"""Real servers for tests, the demo and benchmarks, in place of mocks.

- `assaylab.simulator`: an OpenAI-compatible server of simulated models with known quality, latency,
  error and 429 rates, and a simulated pairwise judge (`SimulatorServer`, `BackgroundSimulator`).
- `assaylab.litellm`: writes a LiteLLM proxy config pointing at the simulator and runs the pinned
  LiteLLM proxy installed by `hack/litellm.sh` as a subprocess (`LiteLLMProxy`).
- `assaylab.controlplane`: etcd, kube-apiserver and kube-controller-manager on loopback.

Nothing is imported here, so `python -m assaylab.<module>` runs its module only once.
"""
