#!/usr/bin/python3
"""convkit next to PyTorch on the CPU, in one interleaved run, as a ratio table.

  benchmarks/compare_pytorch.py [--bench build/release/benchmarks/convkit_bench_models]
                                [--threads 1 2] [--rounds 3] [--filter REGEX] [--markdown]
                                [--best-torch-blas]
  benchmarks/compare_pytorch.py --conv SHAPE_FILE... [--batch 1 8] [--threads 1] ...

For each round and thread count it runs convkit_bench_models (Google Benchmark, JSON) and
then the same work in PyTorch (torchvision's models, eval mode under no_grad for forward;
SGD-momentum training steps), and prints the median of the rounds with the ratio
PyTorch time / convkit time (> 1: convkit is faster). Needs Debian's python3-torch and
python3-torchvision, and OpenBLAS (libopenblas0-pthread) for PyTorch's BLAS: without it
Debian gives PyTorch the reference BLAS, and PyTorch ran 1.5-2x slower here (it warns); run
with /usr/bin/python3. PyTorch runs with glibc's malloc told to keep freed memory
(KEEP_FREED_MEMORY; --plain-malloc for the defaults), as convkit's allocator does. PyTorch's own threads are pinned with
torch.set_num_threads and OMP/OpenBLAS variables, as ../shared/bench/pytorch_reference.py does.

With --conv it runs convkit_bench_conv2d on benchdnn shape files (e.g.
../shared/benchdnn_shapes/conv/shapes_vgg_19) at each --batch instead, and PyTorch's
torch.nn.functional.conv2d on the same layers (taken from the benchmarks' labels): forward
under no_grad, and the data and weight (+ bias) gradients each alone through
torch.autograd.grad; it prints GFLOP/s (2·N·OC·OH·OW·C/g·KH·KW over wall time) as well.
"""
import argparse, json, os, platform, re, statistics, subprocess, sys, time

ap = argparse.ArgumentParser()
ap.add_argument("--bench", default="build/release/benchmarks/convkit_bench_models")
ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--filter", default=".", help="regex on benchmark names (forward_b1/resnet18, train_b8/vgg16, ...)")
ap.add_argument("--seconds", type=float, default=1.0, help="timed seconds per PyTorch figure and round")
ap.add_argument("--markdown", action="store_true")
ap.add_argument("--plain-malloc", action="store_true",
                help="run PyTorch with glibc's default malloc settings (see KEEP_FREED_MEMORY)")
ap.add_argument("--best-torch-blas", action="store_true",
                help="at more than one thread, also run PyTorch with OPENBLAS_NUM_THREADS=1 and keep its faster time "
                     "per item (PyTorch's best 2-thread setting for LeNet-5, issue 5)")
ap.add_argument("--conv", nargs="+", metavar="SHAPE_FILE", help="benchdnn conv shape files: compare conv2d passes")
ap.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes for --conv")
ap.add_argument("--min-time", type=float, default=0.2, help="Google Benchmark min time per conv benchmark (s)")
args = ap.parse_args()
if subprocess.run([sys.executable, "-c", "import torch, torchvision"], capture_output=True).returncode != 0:
    sys.exit(f"compare_pytorch.py: {sys.executable} cannot import torch and torchvision; install Debian's "
             "python3-torch and python3-torchvision (apt-get install python3-torch python3-torchvision) "
             "and run this with /usr/bin/python3")
if args.conv and args.bench == ap.get_default("bench"):
    args.bench = "build/release/benchmarks/convkit_bench_conv2d"
if not os.access(args.bench, os.X_OK):
    sys.exit(f"compare_pytorch.py: no benchmark program at {args.bench}; build it first (scripts/test.sh) or pass --bench")

# name -> (kind, model, batch)
WORK = {f"forward_b1/{m}": ("forward", m, 1) for m in ["alexnet", "vgg16", "googlenet", "resnet18", "resnet50"]}
WORK.update({f"forward_b8/{m}": ("forward", m, 8) for m in ["vgg16", "resnet50"]})
WORK.update({f"train_b8/{m}": ("train", m, 8) for m in ["resnet18", "vgg16"]})
WORK["train_b64/lenet5"] = ("train", "lenet5", 64)
WORK = {k: v for k, v in WORK.items() if re.search(args.filter, k)}
if args.conv:
    WORK = {}  # --conv: filled from the first convkit run, name -> descriptor
FLOPS = {}  # --conv: name -> nominal flops of the layer

# The start of both PyTorch children: arguments, threads, and the timer (median of 3 runs of
# repetitions that fill `seconds` in all, after two untimed calls).
CHILD_PRELUDE = r'''
import json, os, re, statistics, sys, time
threads, seconds, work = int(sys.argv[1]), float(sys.argv[2]), json.loads(sys.argv[3])
import torch
torch.set_num_threads(threads)
def timed(fn):
    fn(); t0 = time.perf_counter(); fn(); per = time.perf_counter() - t0
    reps = max(1, int(seconds / max(per, 1e-6) / 3))
    samples = []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps): fn()
        samples.append((time.perf_counter() - t0) / reps)
    return statistics.median(samples)
'''

TORCH_CHILD = CHILD_PRELUDE + r'''
import torch.nn as nn, torchvision.models as tvm
def lenet5():
    return nn.Sequential(nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                         nn.ReLU(), nn.Linear(84, 10))
build = {"alexnet": tvm.alexnet, "vgg16": tvm.vgg16, "resnet18": tvm.resnet18, "resnet50": tvm.resnet50,
         "googlenet": lambda: tvm.googlenet(aux_logits=False, init_weights=True), "lenet5": lenet5}
out = {}
for name, (kind, model, batch) in work.items():
    torch.manual_seed(0)
    m = build[model]()
    size = 32 if model == "lenet5" else 224
    x = torch.rand(batch, 1 if model == "lenet5" else 3, size, size)
    if kind == "forward":
        m.eval()
        with torch.no_grad():
            out[name] = timed(lambda: m(x))
    else:
        m.train()
        y = torch.randint(0, 10 if model == "lenet5" else 1000, (batch,))
        opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
        def step():
            opt.zero_grad(); nn.functional.cross_entropy(m(x), y).backward(); opt.step()
        out[name] = timed(step)
print(json.dumps({"torch": torch.__version__, "times": out}))
'''

CONV_CHILD = CHILD_PRELUDE + r'''
import torch.nn.functional as F
out = {}
for name, desc in work.items():
    d = {k: int(v) for k, v in re.findall(r"([a-z]+)(\d+)", desc)}
    torch.manual_seed(0)
    x = torch.rand(d["mb"], d["ic"], d["ih"], d["iw"], requires_grad=True)
    w = torch.rand(d["oc"], d["ic"] // d["g"], d["kh"], d["kw"], requires_grad=True)
    b = torch.rand(d["oc"], requires_grad=True)
    conv = lambda: F.conv2d(x, w, b, (d["sh"], d["sw"]), (d["ph"], d["pw"]), (d["dh"] + 1, d["dw"] + 1), d["g"])
    if name.endswith("/fwd"):
        with torch.no_grad():
            out[name] = timed(conv)
    else:
        y = conv()
        assert tuple(y.shape[2:]) == (d["oh"], d["ow"]), (name, tuple(y.shape))
        dy = torch.rand_like(y)
        wrt = (x,) if name.endswith("/bwd_data") else (w, b)
        out[name] = timed(lambda: torch.autograd.grad(y, wrt, dy, retain_graph=True))
print(json.dumps({"torch": torch.__version__, "times": out}))
'''


def conv_flops(desc):
    d = {k: int(v) for k, v in re.findall(r"([a-z]+)(\d+)", desc)}
    return 2.0 * d["mb"] * d["oc"] * d["oh"] * d["ow"] * (d["ic"] // d["g"]) * d["kh"] * d["kw"]


def run_convkit_conv(threads):
    times, context = {}, None
    for path in args.conv:
        cmd = [args.bench, f"--threads={threads}", f"--shapes={path}", "--batch=" + ",".join(map(str, args.batch)),
               f"--benchmark_min_time={args.min_time}", "--benchmark_format=json"]
        if args.filter != ".":
            cmd.append(f"--benchmark_filter={args.filter}")
        res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        context = res["context"]
        for b in res["benchmarks"]:
            times[b["name"]] = b["real_time"] / 1e6  # us -> s
            if b["name"] not in WORK:
                WORK[b["name"]] = b["label"]
                FLOPS[b["name"]] = conv_flops(b["label"])
    return times, context


def run_convkit(threads):
    names = "|".join(re.escape(n) for n in WORK)
    # Google Benchmark appends "/min_time:.../real_time" to each name.
    cmd = [args.bench, f"--threads={threads}", f"--benchmark_filter=^({names})(/|$)", "--benchmark_format=json"]
    res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    times = {}
    for b in res["benchmarks"]:
        for n in WORK:
            if b["name"] == n or b["name"].startswith(n + "/"):
                times[n] = b["real_time"] / 1e3  # ms -> s
    return times, res["context"]


# PyTorch allocates every activation afresh, and glibc hands large freed blocks back to the
# system (munmap, heap trimming), so each pass page-faults its activations in again; on this
# project's VM that made a VGG 3x3/256 conv at 56x56 take 43 ms instead of 17 (oneDNN's
# reorders of fresh memory). convkit keeps freed blocks for reuse (core/allocator.h); PyTorch's
# side gets the same through glibc's tunables, as a PyTorch user would through jemalloc.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 40),
                     "MALLOC_TOP_PAD_": str(1 << 28)}


def run_torch(threads, blas_threads=None):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(blas_threads or threads))
    if not args.plain_malloc:
        env.update(KEEP_FREED_MEMORY)
    child, seconds = (CONV_CHILD, args.min_time) if args.conv else (TORCH_CHILD, args.seconds)
    cmd = [sys.executable, "-c", child, str(threads), str(seconds), json.dumps(WORK)]
    res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout)
    return res["times"], res["torch"]


ck = {t: {} for t in args.threads}
pt = {t: {} for t in args.threads}
torch_version = context = None
start = time.time()
for r in range(args.rounds):
    for t in args.threads:
        times, context = run_convkit_conv(t) if args.conv else run_convkit(t)
        for n, s in times.items():
            ck[t].setdefault(n, []).append(s)
        times, torch_version = run_torch(t)
        if args.best_torch_blas and t > 1:
            single_blas, _ = run_torch(t, 1)
            times = {n: min(s, single_blas.get(n, s)) for n, s in times.items()}
        for n, s in times.items():
            pt[t].setdefault(n, []).append(s)
        print(f"round {r + 1}/{args.rounds}, {t} thread(s) done after {time.time() - start:.0f} s", file=sys.stderr)

cpu = "unknown"
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
isa = "AVX-512" if " avx512f" in flags else ("AVX2" if " avx2" in flags else "SSE")
print(f"machine: {cpu}, {os.cpu_count()} cores, {isa}; {platform.platform()}")
# PyTorch's linear layers (and any convolution oneDNN does not take) run on the system BLAS:
# Debian's python3-torch is content with the reference BLAS (libblas3), several times slower
# than OpenBLAS (libopenblas0-pthread), so the table names the one in use.
blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
if "openblas" not in blas:
    print(f"compare_pytorch.py: warning: PyTorch's BLAS is {blas}, not OpenBLAS: install libopenblas0-pthread "
          "for a fair comparison", file=sys.stderr)
print(f"convkit: {args.bench} (Eigen SIMD {context.get('eigen_simd', '?')}); PyTorch {torch_version}, BLAS {blas}")
print("PyTorch's malloc: " + ("glibc defaults" if args.plain_malloc else
      "freed memory kept (" + " ".join(f"{k}={v}" for k, v in KEEP_FREED_MEMORY.items()) + ")"))
if args.best_torch_blas:
    print("PyTorch at more than one thread: the faster of OPENBLAS_NUM_THREADS = threads and = 1, per item and round")
print(f"medians of {args.rounds} interleaved rounds; times in ms; ratio = PyTorch / convkit (> 1: convkit faster)")
cols = ("convkit", "PyTorch", "ratio") + (("convkit GFLOP/s", "PyTorch GFLOP/s") if args.conv else ())
head = ["work"] + [f"{c} {t}T" for t in args.threads for c in cols]
if args.markdown:
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
else:
    print("  ".join(f"{h:>14}" for h in head))
for n in WORK:
    row = [n]
    for t in args.threads:
        c, p = statistics.median(ck[t][n]), statistics.median(pt[t][n])
        row += [f"{1e3 * c:.2f}" if args.conv else f"{1e3 * c:.1f}", f"{1e3 * p:.2f}" if args.conv else f"{1e3 * p:.1f}",
                f"{p / c:.2f}"]
        if args.conv:
            row += [f"{FLOPS[n] / c * 1e-9:.1f}", f"{FLOPS[n] / p * 1e-9:.1f}"]
    if args.markdown:
        print("| " + " | ".join(row) + " |")
    else:
        print("  ".join(f"{x:>14}" for x in row))
