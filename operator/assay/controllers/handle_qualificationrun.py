"""QualificationRun reconciliation: references, the evaluation Job, evidence aggregation and the verdict.

Level-based: every call reads the run, its Job and its evidence ConfigMaps, recomputes the decision from the
longest complete prefix of the evidence (in the pre-registered order) and writes what changed. A restart of
the operator at any point therefore converges to the same verdict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pydantic
from kubernetes import client

from assay import kube, metrics
from assay.api import qualificationrun
from assay.controllers import Logger, conditions, events, manifests, references, run_evidence, status
from assay.evaluator import kube as evidence_store
from assay.qualification import cost, decision

KIND = "QualificationRun"
FINAL_PHASES = frozenset({"Passed", "Failed", "Inconclusive", "Error"})
VERDICT_PHASE = {"passed": "Passed", "failed": "Failed", "inconclusive": "Inconclusive"}
VERDICT_EVENT = {
    "passed": "QualificationPassed",
    "failed": "QualificationFailed",
    "inconclusive": "QualificationInconclusive",
}


def test_settings(spec: qualificationrun.QualificationRunSpec) -> decision.TestSettings:
    """The decision procedure's settings from a run's spec."""
    t = spec.test
    return decision.TestSettings(
        margin=t.margin,
        alpha=t.alpha,
        candidates=spec.candidates_in_pool,
        min_samples=t.min_samples,
        max_samples=t.max_samples,
        min_controls=t.min_controls,
        swap_consistency_min=t.swap_consistency_min,
        control_catch_min=t.control_catch_min,
        length_ratio_max=t.length_ratio_max,
        format_tolerance=t.format_tolerance,
        seed=t.seed,
    )


def _round(value: Any, digits: int = 4) -> Any:
    return round(value, digits) if isinstance(value, float) else value


def statistics_status(stats: Mapping[str, Any], money: Mapping[str, Any], *, threshold: float) -> dict[str, Any]:
    """The status.statistics block from the decision's stats and the measured cost/latency."""
    out = {
        "estimate": stats.get("estimate"),
        "lowerBound": stats.get("lower"),
        "upperBound": stats.get("upper"),
        "pValue": stats.get("p_value"),
        "threshold": threshold,
        "tieRate": stats.get("tie_rate"),
        "agreementRate": stats.get("agreement_rate"),
        "swapConsistency": stats.get("swap_consistency"),
        "controlCatchRate": stats.get("control_catch_rate"),
        "lengthRatio": stats.get("length_ratio"),
        "lengthControlledEstimate": stats.get("length_controlled_estimate"),
        "formatPassRate": {
            "baseline": stats.get("format_pass_rate_baseline"),
            "candidate": stats.get("format_pass_rate_candidate"),
        },
        "judgeCalls": {"made": stats.get("judge_calls_made", 0), "saved": stats.get("judge_calls_saved", 0)},
        "costPerRequest": dict(money["cost"]),
        "latencyMs": dict(money["latency_ms"]),
        "tokensPerRequest": dict(money["tokens"]),
    }
    return _clean(out)


def progress_status(
    *, evaluated: int, samples: int, controls: int, total: int | None, invalid_lines: int
) -> dict[str, Any]:
    """status.progress with every field the schema defaults (a field left out would be filled in by the API
    server and deleted again by the next write: a status write on every tick of an idle run)."""
    return {
        "evaluated": evaluated,
        "samples": samples,
        "controls": controls,
        "total": total or 0,
        "invalidLines": invalid_lines,
        "display": f"{evaluated}/{total}" if total else str(evaluated),
    }


def _clean(value: Any) -> Any:
    """Round floats and drop None (status fields are optional; None would delete them in a merge patch)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items() if v is not None}
    return _round(value, 6)


def _shard_problems(statuses: Mapping[int, Mapping[str, Any]]) -> tuple[list[int], int, str | None, str | None]:
    lines: list[int] = []
    count = 0
    error = reason = None
    for shard in sorted(statuses):
        st = statuses[shard]
        lines.extend(int(n) for n in st.get("invalid_lines") or [])
        count = max(count, int(st.get("invalid_count") or 0))
        # A transient error (a call that kept failing, a stop) is retried by the Job and the shard resumes;
        # only a permanent one (configuration the user must fix) ends the run here.
        if st.get("error") and st.get("error_permanent", True) and not error:
            error, reason = str(st["error"]), st.get("error_reason") or "EvaluatorError"
    return sorted(set(lines))[:100], count, error, reason


def _job_state(job: Any) -> str | None:
    """Complete, Failed, or None while running (from the Job's conditions)."""
    for condition in (job.status.conditions or []) if job and job.status else []:
        if condition.status == "True" and condition.type in ("Complete", "Failed"):
            return str(condition.type)
    return None


def _failed_job_reason(job: Any) -> str:
    for condition in job.status.conditions or []:
        if condition.type == "Failed" and condition.status == "True":
            return f"{condition.reason or 'JobFailed'}: {condition.message or ''}".strip(": ")
    return "JobFailed"


def _ensure_identity(meta: Mapping[str, Any], spec: qualificationrun.QualificationRunSpec) -> None:
    """Create the run's evaluator ServiceAccount, Role and RoleBinding if missing (never widened)."""
    core, rbac = kube.core(), kube.rbac()
    namespace = meta["namespace"]
    for obj in manifests.evaluator_identity(namespace=namespace, run_name=meta["name"], run_uid=meta["uid"], spec=spec):
        body: Any = obj  # a manifest as plain data; the client accepts dicts where it types models
        timeout = kube.REQUEST_TIMEOUT
        try:
            if obj["kind"] == "ServiceAccount":
                core.create_namespaced_service_account(namespace, body, _request_timeout=timeout)
            elif obj["kind"] == "Role":
                rbac.create_namespaced_role(namespace, body, _request_timeout=timeout)
            else:
                rbac.create_namespaced_role_binding(namespace, body, _request_timeout=timeout)
        except client.ApiException as exc:
            if exc.status != 409:
                raise


def _read_job(namespace: str, name: str) -> Any:
    try:
        return kube.batch().read_namespaced_job(name, namespace, _request_timeout=kube.REQUEST_TIMEOUT)
    except client.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _delete_job(namespace: str, name: str) -> None:
    try:
        kube.batch().delete_namespaced_job(
            name, namespace, propagation_policy="Background", _request_timeout=kube.REQUEST_TIMEOUT
        )
    except client.ApiException as exc:
        if exc.status != 404:
            raise


def _create_job(body: Mapping[str, Any], spec: qualificationrun.QualificationRunSpec, *, recreation: int = 0) -> str:
    """Create the run's evaluation Job (and the evaluator's identity) unless it exists; returns its name."""
    meta = body["metadata"]
    manifest = manifests.evaluation_job(
        run_name=meta["name"],
        run_uid=meta["uid"],
        namespace=meta["namespace"],
        spec=spec,
        wire_spec=body.get("spec") or {},
        recreation=recreation,
    )
    _ensure_identity(meta, spec)
    try:
        kube.batch().create_namespaced_job(
            meta["namespace"],
            manifest,  # type: ignore[arg-type]
            _request_timeout=kube.REQUEST_TIMEOUT,
        )
    except client.ApiException as exc:
        if exc.status != 409:
            raise
    return str(manifest["metadata"]["name"])


def _replace_lost_job(
    body: Mapping[str, Any], spec: qualificationrun.QualificationRunSpec, desired: dict[str, Any], *, lost: str
) -> None:
    """The run's Job is gone before the test decided (deleted by hand, or removed after it finished while the
    evidence was incomplete). Make the next one, which resumes from the evidence ConfigMaps without a gap or a
    duplicate; once MAX_JOB_RECREATIONS Jobs were lost, end the run in Error (JobLost) instead of looping."""
    namespace = body["metadata"]["namespace"]
    recreation = manifests.job_recreation(lost) + 1
    limit = manifests.MAX_JOB_RECREATIONS
    if recreation > limit:
        message = (
            f"Evaluation Job {lost} disappeared before the test decided, and {limit} replacements were lost too; "
            "the evidence so far stays in the run's ConfigMaps. Create a new run to evaluate again."
        )
        desired.update(phase="Error", reason="JobLost", message=message, completedAt=conditions.now())
        events.warning(body, "JobLost", message)
        metrics.QUALIFICATION_RUNS.labels(namespace=namespace, verdict="error", reason="JobLost").inc()
        return
    job_name = _create_job(body, spec, recreation=recreation)
    message = (
        f"Evaluation Job {lost} disappeared before the test decided; {job_name} resumes from the evidence "
        f"(replacement {recreation} of at most {limit})."
    )
    desired.update(reason="JobRecreated", message=message, jobName=job_name)
    events.warning(body, "JobRecreated", message)


# The evidence of each run still deciding, read incrementally (assay.controllers.run_evidence).
EVIDENCE = run_evidence.EvidenceCache()


def _read_evidence(
    meta: Mapping[str, Any], spec: qualificationrun.QualificationRunSpec, settings: decision.TestSettings
) -> tuple[run_evidence.RunEvidence, dict[int, dict[str, Any]]]:
    """The run's test state fed with every record of the complete prefix, reading only chunks not read before;
    and the shards' statuses."""
    core, namespace, name = kube.core(), meta["namespace"], meta["name"]
    listing = evidence_store.list_run_config_maps(core, namespace, name)
    by_name = {item.name: item for item in listing}
    run, unread = EVIDENCE.state(
        meta["uid"],
        settings=settings,
        shards=spec.execution.parallelism,
        source=name,
        listed={item.name: item.version for item in listing if item.kind == evidence_store.KIND_EVIDENCE},
    )
    chunks = []
    for chunk_name in unread:
        item = by_name[chunk_name]
        records = evidence_store.read_run_config_map(core, namespace, item)
        if records is not None:  # gone since the listing: the next tick sees that
            chunks.append(run_evidence.Chunk(item.name, item.version, item.shard, records))
    run.add(chunks)
    statuses = run.shard_statuses(
        [(i.name, i.version, i.shard) for i in listing if i.kind == evidence_store.KIND_SHARD_STATUS],
        read=lambda status_name: evidence_store.read_run_config_map(core, namespace, by_name[status_name]),
    )
    return run, statuses


# The phase each run was last seen in (from the watch), to notice a change: one short string per run.
_seen_phase: dict[str, str | None] = {}


def phase_change(event_type: str | None, body: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """The owning policy (namespace, name, uid) when this watch event shows the run in a new phase; None for
    the first sight of a run (a start lists every run; the policies' own resume handlers cover that), for an
    unchanged phase and for deletions."""
    meta = body.get("metadata") or {}
    uid = meta.get("uid")
    if not uid:
        return None
    if event_type == "DELETED":
        _seen_phase.pop(uid, None)
        EVIDENCE.forget(uid)
        return None
    phase = (body.get("status") or {}).get("phase")
    known = uid in _seen_phase
    previous = _seen_phase.get(uid)
    _seen_phase[uid] = phase
    if not known or previous == phase:
        return None
    owner = next(
        (ref for ref in meta.get("ownerReferences") or [] if ref.get("kind") == "RoutePolicy" and ref.get("uid")),
        None,
    )
    if owner is None:
        return None
    return str(meta.get("namespace")), str(owner["name"]), str(owner["uid"])


def reconcile(body: Mapping[str, Any], *, logger: Logger) -> None:
    """Bring one QualificationRun forward. Safe to call at any time; a decided run is left alone."""
    meta = body["metadata"]
    namespace, name, generation = meta["namespace"], meta["name"], meta.get("generation")
    current: dict[str, Any] = dict(body.get("status") or {})
    if current.get("phase") in FINAL_PHASES:
        EVIDENCE.forget(meta["uid"])
        if current.get("jobName") and current.get("phase") != "Error":
            _delete_job(namespace, current["jobName"])  # converge if the operator died between verdict and stop
        return
    desired = dict(current)
    desired["observedGeneration"] = generation

    def finish(ready: tuple[str, str, str]) -> None:
        was_ready = conditions.is_true(current.get("conditions"), "Ready")
        desired["conditions"] = conditions.set_condition(
            desired.get("conditions"),
            type="Ready",
            status=ready[0],
            reason=ready[1],
            message=ready[2],
            observed_generation=generation,
        )
        if status.write(
            KIND, namespace, name, current, desired, resource_version=body["metadata"].get("resourceVersion")
        ):
            logger.info("status: phase=%s reason=%s", desired.get("phase"), desired.get("reason"))
            if (ready[0] == conditions.TRUE) != was_ready and ready[0] != conditions.TRUE:
                events.warning(body, ready[1], ready[2])

    try:
        spec = qualificationrun.QualificationRunSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as exc:
        invalid = references.invalid_spec(exc)
        desired.update(phase="Error", reason=invalid.reason, message=invalid.message)
        finish((conditions.FALSE, invalid.reason, invalid.message))
        return

    problem = references.check(
        references.of_run(spec), keys_of=lambda kind, ref: kube.data_keys(kind, namespace, ref)
    ) or references.check_image(manifests.evaluator_image(spec), allowed=manifests.allowed_images())
    if problem:
        desired.update(phase=current.get("phase") or "Pending", reason=problem.reason, message=problem.message)
        finish((conditions.FALSE, problem.reason, problem.message))
        return

    job_name = current.get("jobName") or manifests.job_name(name)
    job = _read_job(namespace, job_name)
    if current.get("phase") != "Running":
        # Start the run, or adopt its Job: a status write that lost a race (409) right after the Job was created
        # is recomputed from a new read, which finds the Job and must still record the run as Running.
        if job is None:
            job_name = _create_job(body, spec)
            events.normal(
                body, "QualificationStarted", f"Job {job_name}: {spec.candidate.model} vs {spec.baseline.model}"
            )
        desired.update(
            phase="Running",
            reason="Evaluating",
            message=f"Evaluation Job {job_name} started.",
            jobName=job_name,
            startedAt=current.get("startedAt") or conditions.now(),
            specHash=manifests.spec_hash(body.get("spec") or {}),
        )

    settings = test_settings(spec)
    run, shard_statuses = _read_evidence(meta, spec, settings)
    qualification = run.qualification
    verdict = qualification.decision

    invalid_lines, invalid_count, shard_error, shard_error_reason = _shard_problems(shard_statuses)
    job_state = _job_state(job)
    all_done = run.complete(shard_statuses)
    if verdict is None and (job_state == "Complete" or all_done) and not shard_error:
        verdict = run.finish()  # the evidence ended before the test decided

    stats = verdict.stats if verdict is not None else qualification.stats()
    consumed = qualification.records
    total = sum(int(s.get("positions") or 0) for s in shard_statuses.values()) or None
    money = cost.per_request(
        run.consumed,
        baseline_model=spec.baseline.model,
        candidate_model=spec.candidate.model,
        prices=cost.price_table(spec.pricing),
    )
    desired["progress"] = progress_status(
        evaluated=consumed,
        samples=qualification.samples,
        controls=qualification.controls,
        total=total,
        invalid_lines=invalid_count or len(invalid_lines),
    )
    desired["statistics"] = statistics_status(stats, money, threshold=settings.null_mean)
    if invalid_lines:
        desired["invalidLines"] = invalid_lines
        shown = ", ".join(map(str, invalid_lines[:20]))
        outcome = "skipped" if spec.dataset.on_invalid_line == "Skip" else "fail the run (onInvalidLine: Fail)"
        desired["conditions"] = conditions.set_condition(
            desired.get("conditions"),
            type="DatasetValid",
            status=conditions.FALSE,
            reason="InvalidLines",
            message=f"{invalid_count or len(invalid_lines)} malformed dataset line(s) {outcome}: lines {shown}",
            observed_generation=generation,
        )

    if verdict is not None:
        phase = VERDICT_PHASE[verdict.verdict]
        desired.update(
            phase=phase,
            reason=verdict.reason,
            message=verdict.message,
            decidedAtSample=qualification.samples,
            completedAt=conditions.now(),
        )
        _delete_job(namespace, job_name)  # stop early: the test has decided
        (events.normal if phase == "Passed" else events.warning)(body, VERDICT_EVENT[verdict.verdict], verdict.message)
        metrics.QUALIFICATION_RUNS.labels(namespace=namespace, verdict=verdict.verdict, reason=verdict.reason).inc()
        metrics.SAMPLES.labels(namespace=namespace).inc(qualification.samples)
        metrics.JUDGE_CALLS.labels(namespace=namespace).inc(stats.get("judge_calls_made") or 0)
        metrics.JUDGE_CALLS_SAVED.labels(namespace=namespace).inc(stats.get("judge_calls_saved") or 0)
        for side in ("baseline", "candidate"):
            if money["cost"][side] is not None:
                metrics.COST_PER_REQUEST.labels(namespace=namespace, run=name, side=side).set(money["cost"][side])
    elif shard_error:
        desired.update(phase="Error", reason=shard_error_reason, message=shard_error, completedAt=conditions.now())
        events.warning(body, shard_error_reason or "EvaluatorError", shard_error)
        metrics.QUALIFICATION_RUNS.labels(namespace=namespace, verdict="error", reason=shard_error_reason).inc()
    elif job_state == "Failed":
        message = f"Evaluation Job {job_name} failed ({_failed_job_reason(job)}) before the test decided."
        desired.update(phase="Error", reason="JobFailed", message=message, completedAt=conditions.now())
        events.warning(body, "JobFailed", message)
        metrics.QUALIFICATION_RUNS.labels(namespace=namespace, verdict="error", reason="JobFailed").inc()
    elif job is None and current.get("phase") == "Running":
        _replace_lost_job(body, spec, desired, lost=job_name)
    elif desired.get("phase") == "Running":
        desired["reason"] = "Evaluating"
        desired["message"] = f"{qualification.samples} pairs evaluated; the test has not decided yet."
    finish((conditions.TRUE, references.RESOLVED.reason, references.RESOLVED.message))
