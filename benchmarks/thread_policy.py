"""What the reproducible default costs: training steps with the pinned thread count (the default: every usable
core, fixed for the run) and with the thread governor (``MEDZOO_THREADS=auto``), in one process on the same
batches, idle and beside CPU-bound competitors started here.

    .venv/bin/python benchmarks/thread_policy.py [--recipe tiny] [--steps 20] [--rounds 3] [--competitors 0 1 2]

For each load the two policies alternate for ``rounds`` rounds of ``steps`` training steps (after a warmup),
so a change in the machine's other load hits both alike. It prints samples/s of each (summed over the rounds)
and the ratio pinned / governed (1.0: no cost; below 1: what reproducibility costs in speed). The batches are
the tiny recipe's instruct stage (``app/speedbench/busy_machine.py`` builds them, as ``medzoo speed`` does).
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="tiny")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--competitors", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    import torch

    from medzoo.app.data_setup import ensure_data
    from medzoo.app.speedbench.busy_machine import competing_processes
    from medzoo.app.speedbench.train_step import bench_stage, medzoo_step, prepare, sample_batches
    from medzoo.core.cpu_threads import ThreadGovernor, available_cores, other_runnable
    from medzoo.core.model.build import build_model
    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training.stage_data import load_stage_data
    from medzoo.core.training.trainer import apply_tuning, build_optimizer

    recipe = load_recipe(args.recipe).config
    ensure_data(recipe, print)  # the built-in synthetic set, made on first use as `medzoo speed` does
    stage = bench_stage(recipe)
    torch.manual_seed(stage.seed)
    model = build_model(recipe.model, shrink=recipe.shrink)
    apply_tuning(model, stage.tuning)
    data = load_stage_data(model, stage, recipe.data.on_bad_record)
    model.train()
    prepared = prepare(model, data, stage, {"padded": sample_batches(data, stage, 8)["padded"]})["padded"]
    train_step = medzoo_step(model, build_optimizer(model, stage), stage.max_grad_norm)
    cores = available_cores()
    position = 0

    def run(steps: int, governor: ThreadGovernor | None) -> tuple[int, float, set[int]]:
        """(samples, seconds, thread counts used) over ``steps`` steps; pinned to ``cores`` without a governor."""
        nonlocal position
        if governor is None:
            torch.set_num_threads(cores)
        else:
            governor.threads = None  # the pinned rounds changed torch's count behind its back: set it again
        samples, threads, started = 0, set(), time.perf_counter()
        for _ in range(steps):
            if governor is not None:
                governor.adjust()
            threads.add(torch.get_num_threads())
            train_step(prepared.batches[position % len(prepared.batches)])
            samples += prepared.samples[position % len(prepared.samples)]
            position += 1
        return samples, time.perf_counter() - started, threads

    rows = []
    for competitors in args.competitors:
        with competing_processes(competitors) as seen:
            governor = ThreadGovernor(interval=0.5, fixed=False)
            others = other_runnable()
            totals = {"pinned": [0, 0.0, set()], "governed": [0, 0.0, set()]}
            for policy in totals:
                run(args.warmup, governor if policy == "governed" else None)
            for _ in range(args.rounds):
                for policy, total in totals.items():
                    samples, seconds, threads = run(args.steps, governor if policy == "governed" else None)
                    total[0] += samples
                    total[1] += seconds
                    total[2] |= threads
        pinned, governed = (totals[name][0] / totals[name][1] for name in ("pinned", "governed"))
        rows.append({
            "competitors": competitors, "competitors_seen": seen, "other_runnable_at_start": others, "cores": cores,
            "pinned": {"threads": sorted(totals["pinned"][2]), "samples_per_s": round(pinned, 1)},
            "governed": {"threads": sorted(totals["governed"][2]), "samples_per_s": round(governed, 1)},
            "pinned_over_governed": round(pinned / governed, 3),
        })
    print(f"tiny recipe, stage {stage.name}, {cores} usable cores, {args.rounds} x {args.steps} steps per policy")
    print("| competitors started (other runnable at start) | pinned (default): threads, samples/s | "
          "governed (auto): threads, samples/s | pinned / governed |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['competitors']} ({row['other_runnable_at_start']}) | "
              f"{row['pinned']['threads']}, {row['pinned']['samples_per_s']} | "
              f"{row['governed']['threads']}, {row['governed']['samples_per_s']} | {row['pinned_over_governed']} |")
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
