"""Real servers for tests, the demo and benchmarks, in place of mocks.

- `assay.testing.simulator`: an OpenAI-compatible server of simulated models with known quality, latency,
  error and 429 rates, and a simulated pairwise judge (`SimulatorServer`, `BackgroundSimulator`).
- `assay.testing.litellm`: writes a LiteLLM proxy config pointing at the simulator and runs the pinned
  LiteLLM proxy installed by `hack/litellm.sh` as a subprocess (`LiteLLMProxy`).
- `assay.testing.controlplane`: etcd, kube-apiserver and kube-controller-manager on loopback.

Nothing is imported here, so `python -m assay.testing.<module>` runs its module only once.
"""
