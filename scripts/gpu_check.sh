#!/usr/bin/env bash
# The GPU check (BENCHMARKS.md, "On a GPU"): one short script for a lent GPU machine.
#   1. the CUDA tests (tests/test_gpu.py, and bench speed's own tests);
#   2. the command line: train a hypernetwork briefly with --device cuda, then score 1,000 nb201
#      architectures with it on the GPU and on this machine's CPU, and compare the scores;
#   3. `python -m benchmarks.speed --device cuda`: architectures per second, the ratio to a bare forward
#      pass on the GPU (a batch's networks one by one and together), training steps per second
#      and peak GPU memory, for nb201 and macro, on
#      MNIST-1D and on 32x32x3 images (NB201 at C=16 N=5);
#   4. where two GPUs are at hand, a 2-process torchrun training of the hypernetwork (NCCL).
# Usage (repo root; hypernas importable, e.g. PYTHONPATH=.):  OUT=runs/gpu scripts/gpu_check.sh
# Each step runs even when an earlier one fails; the exit code is the number of failed steps.
set -uo pipefail
out=${OUT:-runs/gpu_check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=5
hn() { python3 -m hypernas.cli "$@"; }
failed=0
step() {  # step NAME COMMAND...: run, log to $out/NAME.log, time it, count failures
    local name=$1; shift
    echo "== $name: $*"
    local start=$SECONDS
    if "$@" > >(tee "$out/$name.log") 2>&1; then echo "== $name: ok in $((SECONDS - start)) s"
    else echo "== $name: FAILED in $((SECONDS - start)) s"; failed=$((failed + 1)); fi
}

step env bash -c 'nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; date -u;
  python3 -c "import torch, optuna; print(torch.__version__, optuna.__version__, torch.cuda.get_device_name())"'
step tests python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_bench_speed.py
step train hn train-hypernet --space nb201 --dataset mnist1d --channels 8 --cells 1 --steps 300 \
    --meta-batch 8 --device cuda --out "$out/hypernet.pt"
hn sample --space nb201 --channels 8 --cells 1 -n 1000 --seed 0 > "$out/archs.txt"
for device in cuda cpu; do
    step "score_$device" hn score --hypernet "$out/hypernet.pt" --archs "$out/archs.txt" --samples 1 --json \
        --device "$device"
done
step compare python3 - "$out" <<'EOF'
import json, sys
rows = {d: [json.loads(line) for line in open(f"{sys.argv[1]}/score_{d}.log") if line.startswith("{")]
        for d in ("cuda", "cpu")}
gpu, cpu = rows["cuda"], rows["cpu"]
assert len(gpu) == len(cpu) == 1000, (len(gpu), len(cpu))
assert [r["hash"] for r in gpu] == [r["hash"] for r in cpu]
print("max |loss difference|", max(abs(g["loss"] - c["loss"]) for g, c in zip(gpu, cpu)))
# accuracies are float32 means: rounding differs below 1e-6; one flipped prediction is 1/400
print("max |accuracy difference|", max(abs(g["accuracy"] - c["accuracy"]) for g, c in zip(gpu, cpu)))
EOF
step speed_nb201 hn bench speed --spaces nb201 --device cuda --archs 1000 --repeats 3 --train-steps 50 --execution each,together \
    --out-md "$out/speed_nb201.md"
step speed_macro hn bench speed --spaces macro --device cuda --archs 200 --repeats 3 --train-steps 20 \
    --out-md "$out/speed_macro.md"
# the image-sized workload: NB201 at C=16 N=5 and macro on 32x32x3 (random images of CIFAR-10's shape)
step speed_images hn bench speed --workload images --device cuda --archs 50 --repeats 2 --fit-steps 5 --execution each,together \
    --train-steps 10 --out-md "$out/speed_images.md"
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -ge 2 ]; then  # the hypernetwork trained by two processes, NCCL
    step torchrun_2gpu python3 -m torch.distributed.run --nproc-per-node 2 -m hypernas.cli train-hypernet \
        --space nb201 --dataset mnist1d --channels 8 --cells 1 --steps 100 --meta-batch 8 --device cuda \
        --out "$out/hypernet_2gpu.pt"
else
    echo "== torchrun_2gpu: skipped, $gpus GPU(s) here"
fi
echo "== $failed step(s) failed"
exit "$failed"
