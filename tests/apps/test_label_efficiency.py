"""Label-efficiency runner on tiny data: rows, nested patient-level subsets, resume after a crash, outputs."""

from __future__ import annotations

import csv

import pytest
import torch

from monai_ssl.apps.label_efficiency import read_results, run_label_efficiency, summarise_results

pytestmark = pytest.mark.usefixtures("one_thread")

def patient_datalist(n_patients: int = 40, per_patient: int = 2) -> list[dict]:
    return [{"image": torch.full((1, 4, 4), float(p % 2)), "label": p % 2, "patient_id": f"p{p}"}
            for p in range(n_patients) for _ in range(per_patient)]


class Recorder:
    """train_fn/eval_fn pair that records what it saw; the 'model' is a dict."""

    def __init__(self, crash_at: int | None = None):
        self.calls, self.crash_at = [], crash_at

    def init(self, name):
        return lambda seed: {"name": name, "seed": seed}

    def train(self, model, labelled, val, seed, fraction):
        if self.crash_at is not None and len(self.calls) == self.crash_at:
            raise RuntimeError("simulated crash")
        self.calls.append((model["name"], fraction, seed, labelled, val))
        model["n"] = len(labelled)

    def evaluate(self, model, test):
        return {"auc": 0.5 + 0.4 * model["n"] / 80 + 0.01 * (model["name"] == "b"), "test_n": len(test)}


def test_runner_rows_subsets_and_outputs(tmp_path):
    rec = Recorder()
    data = patient_datalist()
    rows = run_label_efficiency(data, {"a": rec.init("a"), "b": rec.init("b")}, rec.train, rec.evaluate,
                                tmp_path, fractions=(0.25, 1.0), seeds=(0, 1), log=None)
    assert len(rows) == 8 and len(rec.calls) == 8
    assert {(r["init"], r["fraction"], r["seed"]) for r in rows} == {
        (i, f, s) for i in "ab" for f in (0.25, 1.0) for s in (0, 1)}
    for seed in (0, 1):
        runs = {(n, f): (lab, val) for n, f, s, lab, val in rec.calls if s == seed}
        small, full = runs[("a", 0.25)][0], runs[("a", 1.0)][0]
        assert runs[("b", 0.25)][0] == small  # same labelled subset for every init
        ids_small = [id(d) for d in small]
        assert set(ids_small) <= {id(d) for d in full}  # nested fractions
        assert 0 < len(small) < len(full)
        pats_train = {d["patient_id"] for d in full}
        assert not pats_train & {d["patient_id"] for d in runs[("a", 1.0)][1]}  # no patient in train and val
        assert {d["label"] for d in small} == {0, 1}  # stratified
        # whole patients only
        assert all(sum(d["patient_id"] == p for d in small) == 2 for p in {d["patient_id"] for d in small})
    # splits differ between seeds
    assert {d["patient_id"] for *_, s, lab, _ in rec.calls if s == 0 for d in lab} != {
        d["patient_id"] for *_, s, lab, _ in rec.calls if s == 1 for d in lab}
    on_disk = read_results(tmp_path / "results.csv")
    assert on_disk == rows
    assert all("test_auc" in r and "test_n" in r and r["n_positive"] <= r["n_labelled"] for r in rows)
    summary = (tmp_path / "summary.md").read_text()
    assert "| a | 0.25 |" in summary and "| b | 1 |" in summary and "±" in summary
    assert (tmp_path / "label_efficiency.png").stat().st_size > 1000


def test_resume_after_crash_skips_finished_runs(tmp_path):
    data = patient_datalist()

    def inits(rec):
        return {"a": rec.init("a"), "b": rec.init("b")}

    crashing = Recorder(crash_at=3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_label_efficiency(data, inits(crashing), crashing.train, crashing.evaluate, tmp_path,
                             fractions=(0.25, 1.0), seeds=(0, 1), log=None)
    with open(tmp_path / "results.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 3  # everything finished before the crash is on disk
    rec = Recorder()
    rows = run_label_efficiency(data, inits(rec), rec.train, rec.evaluate, tmp_path,
                                fractions=(0.25, 1.0), seeds=(0, 1), log=None)
    assert len(rows) == 8 and len(rec.calls) == 5
    done_first = {(n, f, s) for n, f, s, *_ in crashing.calls}
    assert not done_first & {(n, f, s) for n, f, s, *_ in rec.calls}
    assert len({(r["init"], r["fraction"], r["seed"]) for r in read_results(tmp_path / "results.csv")}) == 8
    # a third run has nothing to do
    again = Recorder()
    run_label_efficiency(data, inits(again), again.train, again.evaluate, tmp_path, fractions=(0.25, 1.0),
                         seeds=(0, 1), log=None)
    assert again.calls == []


@pytest.mark.slow
def test_official_splits_and_real_finetune(tmp_path):
    """Official train/test lists without patient ids (as PneumoniaMNIST) and a real fine-tune of a tiny net."""
    from monai.data import DataLoader
    from monai.networks.nets import ResNet

    from monai_ssl.evaluation.finetune import compute_auc, finetune_classifier, predict_proba

    def make(n, seed):
        g = torch.Generator().manual_seed(seed)
        out = []
        for i in range(n):
            x = 0.3 * torch.rand(1, 8, 8, generator=g)
            x[:, :4] += 0.7 * (i % 2)
            out.append({"image": x, "label": torch.tensor(i % 2)})
        return out

    data = {"train": make(48, 0), "val": make(16, 1), "test": make(24, 2)}

    def init(seed):
        torch.manual_seed(seed)
        return ResNet("basic", [1, 1, 1, 1], [4, 8, 8, 8], spatial_dims=2, n_input_channels=1, num_classes=2)

    def train(model, labelled, val, seed, fraction):
        dl = DataLoader(labelled, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(seed))
        finetune_classifier(model, dl, epochs=3, epoch_length=4, lr=5e-3, task="binary")

    def evaluate(model, test):
        return {"auc": compute_auc(*predict_proba(model, DataLoader(test, batch_size=32)))}

    rows = run_label_efficiency(data, {"scratch": init, "other": init}, train, evaluate, tmp_path,
                                fractions=(0.25, 1.0), seeds=(0, 1), log=None)
    assert len(rows) == 8
    assert {r["n_labelled"] for r in rows} == {12, 48}
    assert all(r["n_test"] == 24 for r in rows)
    full = [r["test_auc"] for r in rows if r["fraction"] == 1.0]
    assert min(full) > 0.9, full


def test_bad_arguments(tmp_path):
    rec = Recorder()
    with pytest.raises(ValueError, match="fractions"):
        run_label_efficiency(patient_datalist(), {"a": rec.init("a")}, rec.train, rec.evaluate, tmp_path,
                             fractions=(0.0, 1.0), log=None)
    with pytest.raises(ValueError, match="init_fns"):
        run_label_efficiency(patient_datalist(), {}, rec.train, rec.evaluate, tmp_path, log=None)
    with pytest.raises(ValueError, match="'test'"):
        run_label_efficiency({"train": patient_datalist()}, {"a": rec.init("a")}, rec.train, rec.evaluate,
                             tmp_path, log=None)
    assert summarise_results([]) == "(no results)"


def test_plot_leaves_the_matplotlib_backend_alone(tmp_path, monkeypatch):
    # a notebook's inline backend must survive: plot_results draws on a bare Figure, never through pyplot
    import matplotlib

    from monai_ssl.apps.label_efficiency import plot_results

    monkeypatch.setitem(matplotlib.rcParams, "backend", "module://matplotlib_inline.backend_inline")
    before = matplotlib.rcParams._get_backend_or_none()
    rows = [{"init": i, "fraction": f, "seed": s, "test_auc": 0.5 + 0.1 * f + 0.01 * s}
            for i in ("scratch", "ssl") for f in (0.01, 1.0) for s in (0, 1)]
    assert plot_results(rows, tmp_path / "p.png").stat().st_size > 1000
    assert matplotlib.rcParams._get_backend_or_none() == before


def test_recipes_are_chosen_on_the_validation_subset_and_test_is_scored_once(tmp_path):
    """Recipe 'good' wins on validation; 'test_best' would win on test. Only validation may decide."""
    data = patient_datalist(n_patients=80)
    seen = {"test_calls": 0, "val_sizes": []}

    def train(model, labelled, val, seed, fraction, quality):
        model["quality"], model["n"] = quality, len(labelled)
        seen["val_sizes"].append((fraction, len(val)))

    def evaluate(model, items):
        is_test = any(d.get("split") == "test" for d in items)
        seen["test_calls"] += is_test
        q = model["quality"]
        auc = {"good": 0.9, "test_best": 0.6, "flat": 0.95}[q] if not is_test else {"good": 0.8, "test_best": 0.99,
                                                                                      "flat": 0.5}[q]
        return {"auc": auc, "predicted_classes": 1 if q == "flat" else 2}

    splits = seed_splits_with_tags(data)
    recipes = {"test_best": {"quality": "test_best"}, "good": {"quality": "good"}, "flat": {"quality": "flat"}}
    rows = run_label_efficiency(splits, {"a": lambda seed: {}}, train, evaluate, tmp_path, fractions=(0.1, 1.0),
                                seeds=(0,), recipes=recipes, log=None)
    assert [r["recipe"] for r in rows] == ["good", "good"]  # 'flat' scores best on val but predicts one class
    assert seen["test_calls"] == 2  # once per row, for the chosen model only
    val_total = len(splits["val"])
    assert dict(seen["val_sizes"])[1.0] == val_total and 0 < dict(seen["val_sizes"])[0.1] < val_total / 5
    for r in rows:
        assert r["selected_on"] == "val" and r["status"] == "ok" and r["test_auc"] == 0.8 and r["val_auc"] == 0.9
        assert r["n_labels_used"] == r["n_labelled"] + r["n_val_labelled"]
    on_disk = read_results(tmp_path / "results.csv")
    assert on_disk[0]["recipe_params"] == '{"quality": "good"}'


def test_a_run_predicting_one_class_is_marked_failed_and_left_out_of_the_means(tmp_path):
    data = patient_datalist()

    def train(model, labelled, val, seed, fraction):
        model["n"] = len(labelled)

    def evaluate(model, items):
        return {"auc": 0.7, "predicted_classes": 1 if model["name"] == "collapsed" else 2}

    rows = run_label_efficiency(data, {"collapsed": lambda s: {"name": "collapsed"}, "fine": lambda s: {"name": "f"}},
                                train, evaluate, tmp_path, fractions=(1.0,), seeds=(0, 1), log=None)
    assert {r["status"] for r in rows if r["init"] == "collapsed"} == {"failed: predicts one class for every image"}
    summary = (tmp_path / "summary.md").read_text()
    assert "| collapsed | 1 |" in summary and "| 0 / 2 | n/a" in summary and "| 2 / 0 | 0.700" in summary


def test_several_recipes_without_validation_data_are_refused(tmp_path):
    official = {"train": patient_datalist(), "test": patient_datalist(10)}
    with pytest.raises(ValueError, match="test split is never used for selection"):
        run_label_efficiency(official, {"a": lambda s: {}}, lambda *a, **k: None, lambda m, d: {"auc": 0.5},
                             tmp_path, fractions=(1.0,), seeds=(0,), recipes={"x": {}, "y": {}}, log=None)


def seed_splits_with_tags(data: list[dict]) -> dict[str, list[dict]]:
    from monai_ssl.data import patient_split

    split = patient_split(data, seed=0)
    return {k: [{**d, "split": k} for d in split[k]] for k in ("train", "val", "test")}


def test_select_recipe_breaks_auc_ties_by_log_loss_then_grid_order():
    from monai_ssl.apps.label_efficiency import select_recipe

    scores = {"a": {"auc": 1.0, "log_loss": 0.6}, "b": {"auc": 1.0, "log_loss": 0.2},
              "c": {"auc": 0.9, "log_loss": 0.1}}
    assert select_recipe(scores) == "b"
    assert select_recipe({"a": {"auc": 1.0}, "b": {"auc": 1.0}}) == "a"
    assert select_recipe({"a": {"auc": float("nan")}, "b": {"auc": 0.6}}) == "b"
    assert select_recipe({"a": {"auc": 1.0, "predicted_classes": 1}, "b": {"auc": 0.6, "predicted_classes": 2}}) == "b"
