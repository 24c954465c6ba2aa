#!/usr/bin/env bash
# The smoke grid through SLURM: a fresh smoke checkout, `snakemake --profile workflow/profiles/slurm reports/`
# against the single-node cluster of local_cluster.sh, then checks that
#   - every Snakemake job was one sbatch job that SLURM itself recorded as COMPLETED (jobcomp.log),
#   - reports/metrics.json exists,
#   - the artifacts equal a plain `dvc repro` of the same params: key files bit for bit, and with that
#     run's dvc.lock copied in, `dvc status` reports every output only as "not in cache".
#
#   workflow/slurm/run_smoke.sh [--work DIR] [--reference DIR]
#     --work DIR        where the checkouts go (default: a new temp dir)
#     --reference DIR   a finished `dvc repro` smoke checkout of the same code to compare with (default:
#                       `dvc repro` in a clone of the SLURM checkout, about as long as the SLURM run)
# Needs: root, slurm-wlm + munge, and snakemake, dvc, eraselab, snakemake-executor-plugin-slurm on PATH
# (e.g. PATH=/path/to/venv/bin:$PATH). Starts the cluster if it is not running and stops it again after.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK=""
REFERENCE=""

die() { echo "run_smoke: error: $*" >&2; exit 1; }
log() { echo "run_smoke: $*"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --work) WORK="${2:?--work needs a directory}"; shift 2 ;;
        --reference) REFERENCE="${2:?--reference needs a directory}"; shift 2 ;;
        *) die "unknown argument '$1' (valid: --work DIR, --reference DIR)" ;;
    esac
done

for tool in snakemake dvc eraselab git; do
    command -v "$tool" >/dev/null || die "'$tool' not on PATH; put the project's venv first on PATH"
done
PYTHON="$(dirname "$(command -v snakemake)")/python"
"$PYTHON" -c "import snakemake_executor_plugin_slurm" 2>/dev/null \
    || die "snakemake-executor-plugin-slurm is missing beside $(command -v snakemake): pip install -e '.[slurm]'"
if [[ -n "$REFERENCE" ]]; then
    [[ -f "$REFERENCE/dvc.lock" && -f "$REFERENCE/reports/metrics.json" ]] \
        || die "--reference $REFERENCE is not a finished dvc repro checkout (needs dvc.lock and reports/metrics.json)"
    REFERENCE="$(cd "$REFERENCE" && pwd)"
fi
WORK="${WORK:-$(mktemp -d /tmp/eraselab-slurm-smoke.XXXXXX)}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"

# A fresh git + DVC checkout with the smoke params, made exactly as the tests make theirs.
scratch_checkout() {
    [[ ! -e "$1" ]] || die "$1 exists already; pass an empty --work"
    "$PYTHON" - "$1" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, str(Path.cwd() / "tests"))
from conftest import scratch_repo
scratch_repo(Path(sys.argv[1]))
EOF
}

# --- the cluster -------------------------------------------------------------------------------
CLUSTER="$HERE/local_cluster.sh"
export ERASELAB_SLURM_DIR="${ERASELAB_SLURM_DIR:-/tmp/eraselab-slurm}"
export SLURM_CONF="$ERASELAB_SLURM_DIR/etc/slurm.conf"
STARTED_CLUSTER=0
if ! "$CLUSTER" status >/dev/null 2>&1; then
    "$CLUSTER" start
    STARTED_CLUSTER=1
fi
stop_cluster() { if [[ $STARTED_CLUSTER -eq 1 ]]; then "$CLUSTER" stop; fi; }
trap stop_cluster EXIT

# --- the SLURM run -----------------------------------------------------------------------------
REPO="$WORK/slurm"
(cd "$ROOT" && scratch_checkout "$REPO")
# Toy sizes: no GPU requests (replaces the profile's SD v1.4 set-resources; the rules' own apply).
TOY_OVERRIDES=(--set-resources base_model:gpu=0 generate:gpu=0 targets:gpu=0 search:gpu=0 erase:gpu=0 defended:gpu=0 attack:gpu=0)
# This cluster has no slurmdbd, so no sacct: job states come from squeue (MinJobAge keeps them an hour).
LOCAL_CLUSTER_SETTINGS=(--slurm-status-command squeue --slurm-no-account --slurm-keep-successful-logs
                        --slurm-init-seconds-before-status-checks 5)
log "snakemake --profile workflow/profiles/slurm reports/ in $REPO (log: $WORK/snakemake_slurm.log)"
start_s=$SECONDS
if ! (cd "$REPO" && snakemake --profile workflow/profiles/slurm reports/ "${TOY_OVERRIDES[@]}" \
        "${LOCAL_CLUSTER_SETTINGS[@]}") >"$WORK/snakemake_slurm.log" 2>&1; then
    tail -40 "$WORK/snakemake_slurm.log" >&2
    die "the SLURM run failed; log: $WORK/snakemake_slurm.log, job logs: $REPO/.snakemake/slurm_logs"
fi
slurm_wall_s=$((SECONDS - start_s))

# --- every job went through sbatch and SLURM completed it -----------------------------------------
# Snakemake's log says which sbatch job ran each Snakemake job; SLURM's own jobcomp.log says how it ended.
[[ -f "$REPO/reports/metrics.json" ]] || die "no reports/metrics.json in $REPO"
job_logs="$(find "$REPO/.snakemake/slurm_logs" -name '*.log' | wc -l)"
SUBMISSIONS="$("$PYTHON" - "$WORK/snakemake_slurm.log" "$ERASELAB_SLURM_DIR/log/jobcomp.log" <<'EOF'
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

log, jobcomp = (Path(p).read_text() for p in sys.argv[1:3])


def fail(message):
    sys.exit(f"run_smoke: error: {message} (see {sys.argv[1]})")


run_id = re.search(r"SLURM run ID: (\S+)", log) or fail("no 'SLURM run ID': did the slurm executor run?")
planned = re.search(r"^total\s+(\d+)$", log, flags=re.M) or fail("no job count ('total N')")
run_id, planned = run_id[1], int(planned[1])
if f"{planned} of {planned} steps (100%) done" not in log:
    fail(f"Snakemake did not finish all {planned} jobs")
if re.search(r"^localrule ", log, flags=re.M):
    fail("some jobs ran on the submit host (localrule), not through sbatch")
slurm_ids, rule_of = defaultdict(list), {}  # Snakemake job id -> its sbatch job ids (several if retried)
pattern = r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/"
for job, slurm_id, rule in re.findall(pattern, log):
    slurm_ids[job].append(slurm_id)
    rule_of[job] = rule
if len(slurm_ids) != planned:
    fail(f"only {len(slurm_ids)} of {planned} Snakemake jobs were submitted with sbatch")
state = dict(re.findall(rf"^JobId=(\d+) .*?Name={re.escape(run_id)} JobState=(\S+)", jobcomp, flags=re.M))
unfinished = {ids[-1]: state.get(ids[-1], "not in jobcomp.log") for ids in slurm_ids.values()
              if state.get(ids[-1]) != "COMPLETED"}
if unfinished:
    fail(f"SLURM did not record these jobs as COMPLETED: {unfinished}")
submitted = sum(len(ids) for ids in slurm_ids.values())
per_rule = Counter(rule_of.values())
print(f"SLURM run id:        {run_id}")
print(f"jobs planned:        {planned}, each one sbatch job that SLURM recorded as COMPLETED")
print(f"sbatch submissions:  {submitted} ({submitted - planned} resubmitted after a failure)")
print("jobs per rule:       " + ", ".join(f"{rule}={n}" for rule, n in per_rule.items()))
EOF
)" || die "the SLURM run's jobs do not all check out"

# --- the same artifacts as a plain dvc repro --------------------------------------------------------
ref_wall_s="reused"
if [[ -z "$REFERENCE" ]]; then
    REFERENCE="$WORK/reference"
    # A clone of the SLURM checkout's commit: the same code and params, even if the repo changed since.
    git clone -q "$REPO" "$REFERENCE"
    log "reference: dvc repro in $REFERENCE (log: $WORK/dvc_repro.log)"
    start_s=$SECONDS
    (cd "$REFERENCE" && dvc repro) >"$WORK/dvc_repro.log" 2>&1 || die "reference dvc repro failed; see $WORK/dvc_repro.log"
    ref_wall_s="$((SECONDS - start_s)) s"
fi
for path in models/base/unet/diffusion_pytorch_model.safetensors models/judge/judge.safetensors \
            metrics/base_model.json data/generated/base/images/00000.png reports/metrics.json; do
    cmp -s "$REPO/$path" "$REFERENCE/$path" || die "$path differs from the reference run's"
done
cp "$REFERENCE/dvc.lock" "$REPO/dvc.lock"
(cd "$REPO" && dvc status --json) | "$PYTHON" -c '
import json, sys
status = json.load(sys.stdin)
bad = {stage: changes for stage, changes in status.items()
       if any(not isinstance(c, dict) or set(c) != {"changed outs"} or set(c["changed outs"].values()) != {"not in cache"}
              for c in changes)}
if bad:
    sys.exit(f"run_smoke: error: dvc status against the reference dvc.lock (changed deps: not the same code): {bad}")
print(f"run_smoke: dvc status against the reference dvc.lock: {len(status)} stages, outputs only not in cache")
'

# --- summary ----------------------------------------------------------------------------------
echo
echo "== smoke grid under SLURM: passed =="
echo "checkout:            $REPO"
echo "$SUBMISSIONS"
echo "per-job SLURM logs:  $job_logs"
echo "SLURM run wall time: ${slurm_wall_s} s"
echo "reference dvc repro: $ref_wall_s; key files bit-identical, dvc status clean but for the cache"
