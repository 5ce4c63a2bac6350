#!/usr/bin/env python3
# Paired differences between two Table 1 rows over the seeds of a `p4lm reproduce table1` folder: for
# each seed the difference of the rows' values (own users), then the mean and the 95% Student-t
# interval of those differences. Pairing by seed removes what the seeds share (the split, the corpus,
# the reward models), so it says more than comparing the two rows' intervals.
# Usage: python3 scripts/analysis/table1_paired.py runs/repro P4LM SFT
#        (rows: Base, SFT, P4LM from seed-<s>/main; P4LM-S and "SFT (single-stage)" from
#        seed-<s>/single-stage, named P4LM and SFT there; SFT-Text from seed-<s>/sft-text; Table 3's
#        "RL on <reward>" rows from seed-<s>/table3.csv, `p4lm reproduce table3`)
#        python3 scripts/analysis/table1_paired.py runs/repro "RL on precision" SFT
import csv, math, pathlib, sys

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
COLUMNS = ["rewards/precision", "rewards/personalization", "rewards/appeal", "rewards/preference_relevance",
           "gold/precision", "gold/personalization", "gold/fluency/words", "ended"]


def row(seed_dir, name):
    if name.startswith("RL on "):
        path, model = seed_dir / "table3.csv", name
    else:
        run, model = {"P4LM-S": ("single-stage", "P4LM"), "SFT (single-stage)": ("single-stage", "SFT"),
                      "SFT-Text": ("sft-text", "SFT-Text")}.get(name, ("main", name))
        path = seed_dir / run / "table1.csv"
    if not path.exists():
        sys.exit(f"{path}: missing (has this seed's run finished?)")
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["model"] == model and r["users"] == "own":
                return {k: float(r[k]) for k in COLUMNS}
    sys.exit(f"{path}: no own-users row for {model}")


def main():
    root, a, b = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    seeds = sorted((p for p in root.glob("seed-*") if p.is_dir()), key=lambda p: int(p.name[len("seed-"):]))
    if len(seeds) < 2:
        sys.exit(f"{root}: need at least two seed-* folders, found {len(seeds)}")
    rows = [(row(s, a), row(s, b)) for s in seeds]  # every file read before anything is printed
    print(f"{a} - {b}, own users, {len(seeds)} seeds ({', '.join(s.name for s in seeds)})")
    print(f"{'column':30} {'per seed':>30} {'mean':>8} {'95% CI':>20}")
    for k in COLUMNS:
        d = [ra[k] - rb[k] for ra, rb in rows]
        n, mean = len(d), sum(d) / len(d)
        half = T95.get(n - 1, 1.96) * math.sqrt(sum((x - mean) ** 2 for x in d) / (n - 1) / n)
        print(f"{k:30} {' '.join(f'{x:+.3f}' for x in d):>30} {mean:+8.3f} "
              f"{f'[{mean - half:+.3f}, {mean + half:+.3f}]':>20}")


if __name__ == "__main__":
    main()
