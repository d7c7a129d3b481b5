"""train-head end to end on tiny caches the tests build: targets, flips, checkpoints, resume, bad input."""

import dataclasses
import logging
import shutil

import numpy as np
import pytest
import torch
from helpers.head_world import colour_world

from clawcrane.build.heads import load_head, new_head
from clawcrane.build.text import sentence_inputs
from clawcrane.cache.checkpoints import KIND_HEAD
from clawcrane.cache.features import open_features
from clawcrane.config import HeadConfig, TrainHeadConfig
from clawcrane.datasets.records import subset
from clawcrane.datasets.splits import validation_videos
from clawcrane.errors import CacheError, ConfigError, DataError
from clawcrane.pipeline.language import Vocabulary, pad_ids
from clawcrane.pipeline.trainer import build_split
from clawcrane.stages import train_head


def cfg(**kw) -> TrainHeadConfig:
    """A tiny head; keyword arguments naming HeadConfig fields (relation, dropout, ...) go to the head."""
    head_names = {f.name for f in dataclasses.fields(HeadConfig)}
    # motion off: these tests feed the cached p_i (10 columns) to the model themselves
    head = HeadConfig(**{"embed_dim": 32, "word_dim": 16, "lstm_hidden": 16, "motion": False,
                         **{k: v for k, v in kw.items() if k in head_names}})
    base = dict(epochs=2, batch_size=4, lr=3e-3, device="cpu")
    return TrainHeadConfig(head=head, **{**base, **{k: v for k, v in kw.items() if k not in head_names}})


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def world(tmp_path):
    return colour_world(tmp_path)


def test_flip_batch_swaps_left_right_sentence_and_uses_mirrored_rows():
    vocab = Vocabulary(["<pad>", "<unk>", "the", "left", "right", "dog"])
    text, lengths = pad_ids([vocab.encode("the left dog"), vocab.encode("the right dog")])
    frames = [(np.ones((2, 3)), np.zeros((2, 10)), 2 * np.ones((2, 3)), np.ones((2, 10)))]
    data = build_split(frame_rows=frames, samples=[(0, 1, 0, 1, 0)], text=text, text_lengths=lengths, type_names=["x"])
    plain = data.batch(torch.tensor([0]), torch.tensor([False]))
    flipped = data.batch(torch.tensor([0]), torch.tensor([True]))
    assert [vocab.tokens[i] for i in plain["text"][0]] == ["the", "left", "dog"]
    assert [vocab.tokens[i] for i in flipped["text"][0]] == ["the", "right", "dog"]
    assert float(flipped["feat"].mean()) == 2.0 and float(flipped["pos"].mean()) == 1.0
    assert int(flipped["target"]) == 1  # the same candidate is referred to in the mirrored frame


def test_train_head_learns_planted_colours_with_the_videos_deleted(world, tmp_path):
    dataset, features, _root = world
    shutil.rmtree(tmp_path / "videos")  # train-head must never decode a frame
    res = train_head.run(cfg(epochs=8), dataset, features=features, out=tmp_path / "run")
    # --val-fraction 0.1 of 6 train videos rounds to 1 held-out video, chosen by the hash of its id
    assert validation_videos([f"vid{v:02d}" for v in range(6)], 0.1) == ["vid02"]
    assert res.best_metrics["accuracy"] >= 0.9
    assert res.best_metrics["per_type"]["appearance"]["samples"] == 1 * 3 * 2  # 1 validation video x 3 objects x 2 frames
    # vid00 holds the train split's query on an undetected object: left out (IoU < 0.5) and counted
    assert res.counts["train"]["low_iou"] == 2 and res.counts["train"]["used"] == 5 * 3 * 2
    assert res.counts["val"]["used"] == 3 * 2 and "test" not in res.counts
    assert res.best_metrics["unmatched"] == 0
    assert res.best.is_file() and res.last.is_file() and (tmp_path / "run" / "metrics.json").is_file()
    payload = torch.load(res.best, weights_only=True)
    assert payload["validation"] == {"source": "carved", "fraction": 0.1, "videos": ["vid02"]}


def test_checkpoint_rebuilds_the_model_alone_with_identical_outputs(world, tmp_path):
    dataset, features, _ = world
    res = train_head.run(cfg(epochs=1), dataset, features=features, out=tmp_path / "run")
    payload = torch.load(res.last, weights_only=True)  # plain tensors / numbers / strings only
    assert payload["kind"] == KIND_HEAD and payload["feature_key"] == open_features(features).key
    model, config, vocab, meta = load_head(res.last)
    assert config.position == "full" and config.relation == "text-geo" and meta["epoch"] == 1
    assert meta["feature_meta"]["config"]["backbone"] == "planted"
    # rebuild by hand from the same state dict: the loaded model must score identically
    twin = new_head(config, vocab_size=len(vocab), feat_dim=payload["feat_dim"], seed=123)
    twin.load_state_dict(payload["model"])
    twin.eval()
    text, lengths = pad_ids([vocab.encode("the green ball"), vocab.encode("the red ball")])
    g = torch.Generator().manual_seed(0)
    feat, pos = torch.randn(2, 3, 8, generator=g), torch.rand(2, 3, 10, generator=g)
    valid = torch.ones(2, 3, dtype=torch.bool)
    torch.testing.assert_close(model(text, lengths, feat, pos, valid), twin(text, lengths, feat, pos, valid), rtol=0, atol=0)


def test_fixed_seed_gives_identical_training_on_cpu(world, tmp_path):
    dataset, features, _ = world
    a = train_head.run(cfg(epochs=2), dataset, features=features, out=tmp_path / "a")
    b = train_head.run(cfg(epochs=2), dataset, features=features, out=tmp_path / "b")
    sa, sb = torch.load(a.last, weights_only=True), torch.load(b.last, weights_only=True)
    for k in sa["model"]:
        assert torch.equal(sa["model"][k], sb["model"][k]), k
    c = train_head.run(cfg(epochs=2, seed=1), dataset, features=features, out=tmp_path / "c")
    sc = torch.load(c.last, weights_only=True)
    assert any(not torch.equal(sa["model"][k], sc["model"][k]) for k in sa["model"])


@pytest.mark.parametrize("reg", [{"dropout": 0.0, "weight_decay": 0.0}, {"dropout": 0.3, "weight_decay": 0.01}], ids=["paper", "regularised"])
def test_resume_continues_to_the_same_weights_as_an_uninterrupted_run(world, tmp_path, reg):
    # with dropout the global torch generator is part of the state: the checkpoint must carry it
    dataset, features, _ = world
    full = train_head.run(cfg(epochs=3, **reg), dataset, features=features, out=tmp_path / "full")
    train_head.run(cfg(epochs=1, **reg), dataset, features=features, out=tmp_path / "part")
    with pytest.raises(ConfigError, match="--resume"):
        train_head.run(cfg(epochs=3, **reg), dataset, features=features, out=tmp_path / "part")
    resumed = train_head.run(cfg(epochs=3, **reg), dataset, features=features, out=tmp_path / "part", resume=True)
    sf, sr = torch.load(full.last, weights_only=True), torch.load(resumed.last, weights_only=True)
    assert sr["epoch"] == 3 and len(sr["history"]) == 3
    for k in sf["model"]:
        torch.testing.assert_close(sf["model"][k], sr["model"][k], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="relation"):
        train_head.run(cfg(epochs=4, relation="none", **reg), dataset, features=features, out=tmp_path / "part", resume=True)


def test_resume_refuses_features_of_another_backbone_or_dataset(world, tmp_path):
    dataset, features, _ = world
    train_head.run(cfg(epochs=1), dataset, features=features, out=tmp_path / "run")
    other_ds, other_features, _ = colour_world(tmp_path / "other", seed=1)
    with pytest.raises(CacheError, match="not the one this run was trained on"):
        train_head.run(cfg(epochs=2), dataset, features=other_features, out=tmp_path / "run", resume=True)
    meta_path = other_features / "meta.json"
    meta_path.write_text(meta_path.read_text().replace('"planted"', '"resnet50"'))
    with pytest.raises(CacheError, match="backbone=resnet50 .* expects backbone=planted"):
        train_head.run(cfg(epochs=2), dataset, features=other_features, out=tmp_path / "run", resume=True)


def test_empty_train_split_and_foreign_feature_cache_are_clear_errors(world, tmp_path):
    dataset, features, _ = world
    test_only = subset(dataset, [v for v, video in dataset.videos.items() if video.split == "test"])
    with pytest.raises(DataError, match="no train samples"):
        train_head.run(cfg(), test_only, features=features, out=tmp_path / "run")
    renamed = subset(dataset, list(dataset.videos))
    renamed.queries = [q.with_(video_id="x" + q.video_id) for q in renamed.queries]
    with pytest.raises(CacheError, match="another dataset"):
        train_head.run(cfg(), renamed, features=features, out=tmp_path / "run2")


def test_unknown_only_validation_sentences_and_missing_flips_are_logged(tmp_path, caplog):
    dataset, features, _ = colour_world(tmp_path, flip=False)
    # vid02 is the validation video (see above): its words are not in the vocabulary, built from the rest of train
    dataset.queries = [q.with_(sentence="zorp blick") if q.video_id == "vid02" else q for q in dataset.queries]
    with caplog.at_level(logging.WARNING, logger="clawcrane"):
        res = train_head.run(cfg(epochs=1), dataset, features=features, out=tmp_path / "run")
    text = caplog.text
    assert "no word known to the vocabulary" in text and "zorp blick" in text
    assert "flip augmentation is off" in text
    assert torch.load(res.best, weights_only=True)["flip_used"] is False  # what ran, beside the option asked for


class FakeStates:
    """A stand-in frozen encoder: deterministic per-word states, and a count of encoded sentences."""

    name, version = "fake", "1"

    def __init__(self):
        self.encoded = 0

    def encode(self, sentences):
        self.encoded += len(sentences)
        out = []
        for s in sentences:
            rows = [np.random.default_rng(sum(map(ord, w))).normal(size=384) for w in s.split()] or [np.zeros(384)]
            out.append(np.stack(rows).astype(np.float16))
        return out


def test_frozen_text_encoder_states_are_cached_once_per_sentence(world, tmp_path):
    dataset, features, root = world
    fake = FakeStates()
    res = train_head.run(cfg(epochs=6, lr=1e-3, text_encoder="minilm"), dataset, features=features, out=tmp_path / "a", text_states=fake)
    first = fake.encoded
    # 3 distinct used sentences (the red/green/blue ball; the missed object's query is left out), nothing to mirror
    assert first == 3
    assert res.best_metrics["accuracy"] >= 0.9
    assert len(list(root.glob("text-*"))) == 1
    train_head.run(cfg(epochs=1, text_encoder="minilm"), dataset, features=features, out=tmp_path / "b", text_states=fake)
    assert fake.encoded == first  # the second run found every sentence in the cache
    model, config, _, _ = load_head(res.best)
    assert config.text_encoder == "minilm" and config.text_dim == 384


def test_sentence_inputs_feed_a_loaded_head_like_training_did(world, tmp_path):
    dataset, features, root = world
    res = train_head.run(cfg(epochs=6), dataset, features=features, out=tmp_path / "run")
    model, config, vocab, _ = load_head(res.best)
    text, lengths = sentence_inputs(config, vocab, ["The GREEN ball!", "the red ball"], cache_root=root)
    fc = open_features(features)
    vf = fc.video("vid06")  # a test video; frame 0 holds red, green, blue in candidate rows 0, 1, 2
    rows = vf.frame_rows(0)
    feat = torch.from_numpy(vf.feat[rows].astype(np.float32))[None].expand(2, -1, -1)
    pos = torch.from_numpy(vf.pos[rows])[None].expand(2, -1, -1)
    sim = model(text, lengths, feat, pos, torch.ones(2, 3, dtype=torch.bool))
    assert sim.argmax(dim=1).tolist() == [1, 0]


def test_a_run_from_before_ranks_motion_and_the_nonlinear_tsrm_resumes_with_the_options_it_had(world, tmp_path):
    # an old last.pt: no ranks/motion fields, relation 'text' meaning the linear TSRM (no fusion norm).
    # Resuming with the options it was trained with in today's names must be accepted, not refused
    from clawcrane.cache.checkpoints import KIND_HEAD, load_checkpoint, save_checkpoint

    dataset, features, _ = world
    train_head.run(cfg(epochs=1, relation="text-linear", ranks=False), dataset, features=features, out=tmp_path / "old")
    payload = load_checkpoint(tmp_path / "old" / "last.pt", KIND_HEAD)
    for head in (payload["config"]["head"], payload["head_config"]):
        head.pop("ranks"), head.pop("motion")
        head["relation"] = "text"
    save_checkpoint(tmp_path / "old" / "last.pt", payload)
    res = train_head.run(cfg(epochs=2, relation="text-linear", ranks=False), dataset, features=features,
                         out=tmp_path / "old", resume=True)
    assert res.epochs == 2
    with pytest.raises(ConfigError, match="--relation"):  # a real change is still refused
        train_head.run(cfg(epochs=3, relation="text", ranks=False), dataset, features=features, out=tmp_path / "old", resume=True)
