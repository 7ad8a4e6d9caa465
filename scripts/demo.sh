#!/usr/bin/env bash
# datakeep's main job end to end on the embedded default: keep a dataset, prove it
# unchanged, catch a corruption, find it again by tag and restore it byte for byte.
set -euo pipefail
work=$(mktemp -d "${TMPDIR:-/tmp}/datakeep-demo.XXXXXX")
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cd "$work"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; "$@"; }

python - <<'PY'
import os, random
rng = random.Random(7)
for d in range(5):
    os.makedirs(f"data/shard{d}", exist_ok=True)
    for f in range(200):
        with open(f"data/shard{d}/rec{f:03d}.bin", "wb") as out:
            out.write(rng.randbytes(4096))
with open("data/model.bin", "wb") as out:
    out.write(rng.randbytes(20 * 1024 * 1024))
os.symlink("model.bin", "data/latest")
print("made data/: 1,000 x 4 KiB records, a 20 MiB model and a symlink")
PY

step datakeep init .
step datakeep put data --tag stage=raw
tree=$(datakeep ls --kind tree | cut -d' ' -f1)
echo "(the tree digest names every byte, mode and path under data/)"

step datakeep put data --tag stage=raw
echo "(same digest again: nothing changed, nothing re-read thanks to the stat cache)"

echo "new record" > data/shard0/rec000.bin
step datakeep put data --tag stage=clean
step datakeep ls --tag stage=raw

step datakeep verify --all
step datakeep remote add backup "$work/backup"
step datakeep push backup
step datakeep get "$tree" restored --link hardlink
cmp restored/model.bin data/model.bin && echo "(restored/model.bin is byte-identical)"
cmp -s restored/shard0/rec000.bin data/shard0/rec000.bin \
  || echo "(restored/shard0/rec000.bin is the record as it was before the change)"

echo
echo "Now a blob rots on disk behind datakeep's back:"
blob=$(find .datakeep/objects -type f -size +1M | head -n 1)
chmod u+w "$blob"
printf 'bitrot' | dd of="$blob" bs=1 seek=1000 conv=notrunc status=none
set +e
step datakeep verify --all
echo "(exit code $?: verify names the damaged content)"
step datakeep cat "$(datakeep ls --kind blob | sort -k2 -n | tail -n 1 | cut -d' ' -f1)" >/dev/null
echo "(exit code $?: the damaged copy is never handed out; the bytes came from backup, verified, and it says so)"
step datakeep verify "$tree"
echo "(exit code $?: verifying the tree checks every file and names the damaged path)"
set -e
step datakeep repair
echo "(repair set the bad bytes aside under quarantine/ and fetched a good copy from backup)"
step datakeep verify --all
step datakeep fsck
step datakeep gc --dry-run --grace 0

echo
echo "Run records: a small data factory logs a master job, a worker's job and its records:"
python - <<'PY'
import asyncio
from datakeep.runs import AsyncRunStore, ExecutionJob, MasterJob, Project, Record

async def main() -> None:
    async with AsyncRunStore.open(".") as runs:
        await runs.save_project(Project("qa", "Question answering"))
        await runs.log_master_job_start(MasterJob("m-1", "qa", status="running"))
        await runs.log_execution_job_start(ExecutionJob("j-1", "m-1", status="running"))
        await asyncio.gather(*(
            runs.log_record(Record(f"r-{i}", "j-1", "m-1", "completed" if i % 5 else "failed"),
                            {"question": f"q{i}", "answer": i * 2})
            for i in range(1000)
        ))
        await runs.log_master_job_end("m-1", "completed_with_errors")

asyncio.run(main())
PY
step datakeep runs jobs
step datakeep runs records m-1 --status failed --limit 3
step datakeep runs export m-1 records.jsonl
head -n 1 records.jsonl
echo
echo "Workspaces: a small experiment with data, code and results, snapshotted, changed, restored:"
mkdir -p "$work/lab" && cd "$work/lab"
step datakeep ws init lab --keep "$work"
step datakeep ws add source-data data data
step datakeep ws add code code src
step datakeep ws add results results results
printf 'x,y\n1,2\n' > data/train.csv
cat > src/train.py <<'PY'
from datakeep.workspaces import Workspace

with Workspace.open(".") as ws:
    with ws.lineage.step("train", {"lr": 0.1}, inputs=["data"], code=["code/train.py"]) as step:
        rows = open("data/train.csv").read().splitlines()[1:]
        open("results/metrics.json", "w").write('{"rows": %d}' % len(rows))
        step.add_output("results")
PY
python src/train.py
step datakeep ws snapshot -m baseline --metric rows=1 v1
printf '3,4\n' >> data/train.csv
step datakeep ws status
python src/train.py
step datakeep ws snapshot -m "more data" --metric rows=2 v2
step datakeep ws history
step datakeep ws diff v1 v2
step datakeep ws lineage results
step datakeep ws restore v1
cat data/train.csv
cd "$work"

echo
echo "demo done: every step above ran against $work/.datakeep"
