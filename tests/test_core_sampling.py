"""Recht et al.'s sampling procedures (replication.sampling)."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from replication.errors import InputError
from replication.sampling import (
    ShortSampleWarning,
    frequency_bin,
    largest_remainder,
    load_class_thresholds,
    matched_frequency,
    threshold,
    top_images,
)


def test_largest_remainder_issue_examples():
    assert largest_remainder([1, 2, 3, 4, 10], 10).tolist() == [0, 1, 2, 2, 5]
    assert largest_remainder([0, 1, 2, 5, 42], 10).tolist() == [0, 0, 0, 1, 9]


def test_largest_remainder_rows_ties_and_empty():
    out = largest_remainder(np.array([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1], [3, 3, 0, 0, 0]]), 3)
    # one leftover unit among equal remainders goes to the highest bin
    assert out.tolist() == [[0, 0, 1, 1, 1], [0, 0, 0, 0, 0], [1, 0, 0, 0, 2], [1, 2, 0, 0, 0]]
    rng = np.random.default_rng(0)
    w = rng.integers(0, 50, size=(200, 5))
    w[w.sum(axis=1) == 0, 0] = 1
    r = largest_remainder(w, 10)
    assert np.all(r.sum(axis=1) == 10)
    assert np.all(np.abs(r - 10 * w / w.sum(axis=1, keepdims=True)) < 1)
    assert largest_remainder([0.1, 0.2, 0.7], 3).tolist() == [0, 1, 2]
    with pytest.raises(ValueError):
        largest_remainder([1, -1], 3)


def test_frequency_bin_edges_go_up():
    k = np.arange(11)
    assert frequency_bin(k / 10).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 4]
    assert frequency_bin([0.1999999, 0.2, 0.8, 1.0, 3 / 5, 4 / 5]).tolist() == [0, 1, 4, 4, 3, 4]
    with pytest.raises(ValueError):
        frequency_bin([1.2])


def test_matched_set_mean_true_s_closed_form():
    """Beta(2,2) candidates matched to a Beta(8,2) reference with 5 bins and
    10 annotators: mean true s 0.6975 (against 0.8)."""
    rng = np.random.default_rng(1)
    n_classes, n_ref, n_cand, size = 400, 250, 600, 100
    ref_class = np.repeat(np.arange(n_classes), n_ref)
    cand_class = np.repeat(np.arange(n_classes), n_cand)
    ref_k = rng.binomial(10, rng.beta(8, 2, ref_class.size))
    cand_s = rng.beta(2, 2, cand_class.size)
    cand_k = rng.binomial(10, cand_s)
    idx = matched_frequency(ref_k / 10, ref_class, cand_k / 10, cand_class, size, rng)
    assert idx.size == n_classes * size
    s = cand_s[idx]
    # sampling error of the mean of the matched s, doubled for the noise of the reference histograms
    tol = 4 * np.sqrt(2) * s.std() / np.sqrt(s.size)
    assert abs(s.mean() - 0.6975) < tol
    assert 0.8 - s.mean() > 0.1  # ~10 points of gap from selection alone
    # the per-class matched histogram equals the rounded reference histogram
    got = np.bincount(cand_class[idx] * 5 + frequency_bin(cand_k[idx] / 10), minlength=n_classes * 5)
    want = largest_remainder(np.bincount(ref_class * 5 + frequency_bin(ref_k / 10),
                                         minlength=n_classes * 5).reshape(n_classes, 5), size)
    assert np.array_equal(got.reshape(n_classes, 5), want)


def test_matched_frequency_fills_short_bins_from_the_next_higher_bin():
    rng = np.random.default_rng(0)
    # reference histogram over the 5 bins: [0, 4, 0, 4, 2] -> target for 5 images: [0, 2, 0, 2, 1]
    ref_freq = np.array([0.3] * 4 + [0.7] * 4 + [0.9] * 2)
    # candidates: bin 1 has 1 image, bin 2 has 3, bin 3 has 0, bin 4 has 3
    cand_freq = np.array([0.3, 0.5, 0.5, 0.5, 0.9, 0.9, 0.9])
    idx = matched_frequency(ref_freq, np.zeros(10), cand_freq, np.zeros(7), 5, rng, min_annotators=None)
    bins = frequency_bin(cand_freq[idx])
    # bin 1: its own image + one from bin 2; bin 3: two from bin 4 (bin 4 then keeps one)
    assert np.bincount(bins, minlength=5).tolist() == [0, 1, 1, 0, 3]
    assert len(idx) == 5


def test_matched_frequency_never_fills_downward_and_warns():
    rng = np.random.default_rng(0)
    ref_freq = np.array([0.9] * 5)
    cand_freq = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    with pytest.warns(ShortSampleWarning, match="1/3"):
        idx = matched_frequency(ref_freq, np.zeros(5), cand_freq, np.zeros(5), 3, rng, min_annotators=None)
    assert idx.tolist() == [4]


def test_matched_frequency_is_uniform_within_a_bin():
    rng = np.random.default_rng(3)
    counts = np.zeros(20)
    for _ in range(400):
        idx = matched_frequency(np.array([0.9]), np.zeros(1), np.full(20, 0.9), np.zeros(20), 5, rng,
                                min_annotators=None)
        counts[idx] += 1
    # each candidate is drawn with probability 5/20; binomial(400, 0.25) sd ~ 8.7
    assert np.all(np.abs(counts - 100) < 5 * np.sqrt(400 * 0.25 * 0.75))


def test_matched_frequency_drops_images_with_few_annotations():
    rng = np.random.default_rng(0)
    idx = matched_frequency(np.array([0.9, 0.9]), np.zeros(2), np.array([0.9, 0.9, 0.9]), np.zeros(3), 2, rng,
                            ref_annotators=np.array([10, 10]), cand_annotators=np.array([9, 10, 12]))
    assert idx.tolist() == [1, 2]


def test_threshold_with_class_exceptions():
    rng = np.random.default_rng(0)
    freq = np.array([0.7, 0.69, 0.9, 0.6, 0.55, 0.5, 1.0])
    cls = np.array([0, 0, 0, 1, 1, 1, 1])
    with pytest.warns(ShortSampleWarning):
        idx = threshold(freq, cls, 5, rng, class_thresholds={1: 0.6})
    assert idx.tolist() == [0, 2, 3, 6]
    idx = threshold(freq, cls, 1, rng, class_thresholds={1: 0.6})
    assert len(idx) == 2 and idx[0] in (0, 2) and idx[1] in (3, 6)
    with pytest.warns(ShortSampleWarning):  # without the exception only image 6 passes in class 1
        assert threshold(freq, cls, 2, rng).tolist() == [0, 2, 6]


def test_top_images_sorts_by_frequency_then_annotators():
    freq = np.array([0.9, 0.9, 1.0, 0.8, 0.9, 0.5])
    n = np.array([10, 12, 10, 10, 12, 10])
    cls = np.array([0, 0, 0, 0, 0, 1])
    with pytest.warns(ShortSampleWarning, match="1/3"):  # class 1 has one image
        assert top_images(freq, cls, 3, cand_annotators=n).tolist() == [1, 2, 4, 5]
    zero = cls == 0
    assert top_images(freq[zero], cls[zero], 2, cand_annotators=n[zero],
                      cand_ids=np.array(list("edcba"))).tolist() == [1, 2]
    assert top_images(freq, cls, 1, cand_annotators=n).tolist() == [2, 5]


@pytest.mark.parametrize("text,what", [
    ('{"n99999999": 0.5}', "unknown wnid(s) n99999999"),
    ('{"n01440764": 50}', "threshold(s) of n01440764 not a number in [0, 1]"),
    ('{"n01440764": 0.', "not valid JSON"),
    ('[0.5]', "expected an object mapping wnids to thresholds"),
])
def test_class_thresholds_bad_file(tmp_path, text, what):
    path = tmp_path / "thresholds.json"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(what)):
        load_class_thresholds(path)


def test_recht_parameters_from_the_reference_files(reference_dir):
    raw = reference_dir / "imagenetv2" / "raw"
    thresholds = load_class_thresholds(raw / "sampling_thresholds_a.json")
    info = {row["wnid"]: row["cid"] for row in json.loads((raw / "class_info.json").read_text())}
    wanted = json.loads((raw / "sampling_thresholds_a.json").read_text())
    assert thresholds == {info[w]: t for w, t in wanted.items()}
    assert len(thresholds) == 3 and min(thresholds.values()) == 0.5
    meta = json.loads((raw / "imagenetv2-b-33.json").read_text())
    assert tuple(meta["histogram_bins"]) == (0.2, 0.4, 0.6, 0.8)
    assert json.loads((raw / "imagenetv2-a-44.json").read_text())["selection_frequency_threshold"] == 0.7
