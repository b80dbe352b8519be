"""The evaluator: the program a QualificationRun's Job runs (`python -m assay.evaluator`), and the
in-process API tests and the demo use.

    result = await evaluate_shard(spec, shard=0, shards=1, sink=FileSink(dir, 0), api_key=None,
                                  judge_api_key=None)

The operator reads the evidence back with `read_evidence_configmaps` and consumes only the
`longest_complete_prefix` of the pre-registered order.
"""

from assay.evaluator.errors import ConfigError, EvaluatorError, TransientError
from assay.evaluator.kube import ConfigMapSink, read_evidence_configmaps
from assay.evaluator.shard import ShardResult, evaluate_shard
from assay.evaluator.sinks import EvidenceSink, FileSink, longest_complete_prefix, read_evidence_dir

__all__ = [
    "ConfigError",
    "ConfigMapSink",
    "EvaluatorError",
    "EvidenceSink",
    "FileSink",
    "ShardResult",
    "TransientError",
    "evaluate_shard",
    "longest_complete_prefix",
    "read_evidence_configmaps",
    "read_evidence_dir",
]
