"""Paper 1's Table 1 findings against one or more runs of the 3dsiam protocol (one ``results.json`` per seed).

    python benchmarks/table1_findings.py runs/table1/seed0/results.json [runs/table1/seed1/results.json ...]

Prints, per row and label fraction, sensitivity / specificity / AUC / balanced accuracy as the mean over seeds of
each run's 5-fold mean (+- the std over seeds when there are several; the fold std of a single run otherwise), in %,
then each finding of Li et al. (MICCAI 2021, Sec. 4) with the paper's BraTS numbers and ours: whether our difference
goes the paper's way ("same direction") or not; compare it with the fold / seed spread of the first table before
calling it confirmed. Positive class as in the run (AdrenalMNIST3D: the majority class 0, so specificity is the
minor class's recall, as in the paper).
"""

from __future__ import annotations

import json
import sys

import numpy as np

#: Li et al., Table 1, BraTS: (sensitivity, specificity) with full and 50 % labels.
PAPER = {
    "Trad. radiomics": ((0.888, 0.697), (0.848, 0.697)),
    "Rubik's cube": ((0.744, 0.526), (0.680, 0.486)),
    "3DSiam": ((0.844, 0.407), (0.808, 0.526)),
    "3DSiam+SE": ((0.848, 0.513), (0.824, 0.566)),
    "3DSiam+RE": ((0.868, 0.486), (0.828, 0.605)),
    "Trad.+3DSiam": ((0.904, 0.645), (0.804, 0.566)),
    "Trad.+3DSiam+SE": ((0.916, 0.711), (0.848, 0.763)),
    "Trad.+3DSiam+RE": ((0.920, 0.711), (0.804, 0.763)),
    "Supervised": ((0.888, 0.711), (0.804, 0.566)),
}
METRICS = ("sensitivity", "specificity", "auc", "balanced_accuracy")


def load(paths: list[str]) -> dict:
    """(row, fraction, metric) -> list over runs of (fold mean, fold std)."""
    out: dict = {}
    for path in paths:
        with open(path) as f:
            records = json.load(f)["records"]
        for r in records:
            for m in METRICS:
                if m in r["metrics"]:
                    v = r["metrics"][m]
                    out.setdefault((r["feature_set"], r["label_fraction"], m), []).append((v["mean"], v["std"]))
    return out


def cell(values: list[tuple[float, float]]) -> str:
    means = np.array([v[0] for v in values], dtype=float) * 100
    spread = means.std(ddof=1) if len(means) > 1 else (values[0][1] or 0.0) * 100
    return f"{means.mean():.1f} +- {spread:.1f}"


def mean(data: dict, row: str, fraction: float, metric: str) -> float:
    return float(np.mean([v[0] for v in data[(row, fraction, metric)]]))


def main() -> None:
    paths = sys.argv[1:]
    data = load(paths)
    rows = list(dict.fromkeys(k[0] for k in data))
    fractions = sorted({k[1] for k in data}, reverse=True)
    spread = "std over seeds" if len(paths) > 1 else "std over folds"
    print(f"{len(paths)} run(s); mean of the 5-fold means, +- {spread}; %\n")
    head = " | ".join(f"{m} ({f:g})" for f in fractions for m in ("sens.", "spec.", "AUC", "bAcc"))
    print(f"| row | {head} |\n|---|" + "---:|" * (4 * len(fractions)))
    for row in rows:
        cells = [cell(data[(row, f, m)]) if (row, f, m) in data else "-" for f in fractions for m in METRICS]
        print(f"| {row} | " + " | ".join(cells) + " |")

    def has(*names: str) -> bool:
        return all((n, 1.0, "specificity") in data for n in names)

    print("\n| finding (Li et al., Table 1, BraTS) | paper | ours | |\n|---|---|---|---|")
    for fraction, idx in ((1.0, 0), (0.5, 1)):
        if fraction not in fractions:
            continue
        for variant in ("3DSiam+SE", "3DSiam+RE"):
            if has("3DSiam", variant):
                p0, p1 = PAPER["3DSiam"][idx][1], PAPER[variant][idx][1]
                o0, o1 = mean(data, "3DSiam", fraction, "specificity"), mean(data, variant, fraction, "specificity")
                ok = "same direction" if o1 > o0 else "opposite direction"
                print(
                    f"| {variant} raises specificity over 3DSiam ({fraction:g} labels) | {p0:.3f} -> {p1:.3f} | "
                    f"{o0:.3f} -> {o1:.3f} | {ok} |"
                )
        for variant in ("Trad.+3DSiam+SE", "Trad.+3DSiam+RE"):
            if has("Trad.+3DSiam", variant):
                p0, p1 = PAPER["Trad.+3DSiam"][idx][1], PAPER[variant][idx][1]
                o0 = mean(data, "Trad.+3DSiam", fraction, "specificity")
                o1 = mean(data, variant, fraction, "specificity")
                ok = "same direction" if o1 > o0 else "opposite direction"
                print(
                    f"| {variant} raises specificity over Trad.+3DSiam ({fraction:g} labels) | {p0:.3f} -> "
                    f"{p1:.3f} | {o0:.3f} -> {o1:.3f} | {ok} |"
                )
        if has("Trad. radiomics", "3DSiam"):
            p = PAPER["Trad. radiomics"][idx][1], PAPER["3DSiam"][idx][1]
            o = mean(data, "Trad. radiomics", fraction, "specificity"), mean(data, "3DSiam", fraction, "specificity")
            ok = "same direction" if o[1] < o[0] else "opposite direction"
            print(
                f"| 3DSiam alone is worse than radiomics on the minor class ({fraction:g} labels) | "
                f"{p[0]:.3f} vs {p[1]:.3f} | {o[0]:.3f} vs {o[1]:.3f} | {ok} |"
            )
        if has("Rubik's cube", "3DSiam"):
            o = (
                mean(data, "Rubik's cube", fraction, "balanced_accuracy"),
                mean(data, "3DSiam", fraction, "balanced_accuracy"),
            )
            p = [sum(PAPER[n][idx]) / 2 for n in ("Rubik's cube", "3DSiam")]
            ok = "same direction" if o[0] < o[1] else "opposite direction"
            print(
                f"| Rubik's cube is less discriminative than 3DSiam, bAcc ({fraction:g} labels) | "
                f"{p[0]:.3f} vs {p[1]:.3f} | {o[0]:.3f} vs {o[1]:.3f} | {ok} |"
            )


if __name__ == "__main__":
    main()
