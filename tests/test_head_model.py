"""Object embedding (Eq. 2 + PRM Eq. 4), relation modules (Eq. 5-6) and the retrieval head."""

import pytest
import torch

from clawcrane.config import HeadConfig
from clawcrane.pipeline.head import ObjectEncoder, RetrievalHead
from clawcrane.pipeline.relations import (
    GeometricTextRelation,
    TextGuidedRelation,
    VanillaRelation,
    masked_attention,
    pair_geometry,
)

V, C = 30, 12


def small(position="full", relation="text", **kw) -> HeadConfig:
    """A tiny head without dropout unless asked (the training default 0.2 would make forward passes random)."""
    return HeadConfig(position=position, relation=relation, embed_dim=16, word_dim=8, lstm_hidden=8,
                      **{"dropout": 0.0, "ranks": False, "motion": False, **kw})


def inputs(B=2, N=4, L=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(2, V, (B, L), generator=g)
    lengths = torch.tensor([L, L - 2])[:B]
    feat, pos = torch.randn(B, N, C, generator=g), torch.rand(B, N, 10, generator=g)
    valid = torch.ones(B, N, dtype=torch.bool)
    valid[1, -1] = False
    feat[~valid], pos[~valid] = 0, 0
    return tokens, lengths, feat, pos, valid


@pytest.mark.parametrize("position", ["none", "absolute", "relative", "full"])
@pytest.mark.parametrize("relation", ["none", "vanilla", "text", "text-linear", "text-geo"])
def test_head_shapes_and_padded_scores_are_minus_inf(position, relation):
    torch.manual_seed(0)
    model = RetrievalHead(config=small(position, relation), vocab_size=V, feat_dim=C)
    tokens, lengths, feat, pos, valid = inputs()
    sim = model(tokens, lengths, feat, pos, valid)
    assert sim.shape == (2, 4)
    assert torch.isinf(sim[1, -1]) and torch.isfinite(sim[valid]).all()
    assert (sim[valid].abs() <= 1 + 1e-5).all()  # cosine similarities
    obj = model.embed_objects(tokens, lengths, feat, pos, valid)
    assert obj.shape == (2, 4, 16)
    torch.testing.assert_close(obj[valid].norm(dim=-1), torch.ones(int(valid.sum())))
    assert model.embed_text(tokens, lengths).shape == (2, 16)


@pytest.mark.parametrize("ranks,motion", [(True, False), (False, True), (True, True)])
def test_ranks_and_motion_heads_keep_shapes_and_ignore_padding(ranks, motion):
    torch.manual_seed(0)
    model = RetrievalHead(config=small("full", "text-geo", ranks=ranks, motion=motion), vocab_size=V, feat_dim=C).eval()
    tokens, lengths, feat, _, valid = inputs()
    pos = torch.rand(2, 4, model.pos_width) * valid[..., None]
    sim = model(tokens, lengths, feat, pos, valid)
    assert sim.shape == (2, 4) and torch.isinf(sim[1, -1]) and torch.isfinite(sim[valid]).all()
    extra = 3  # padded rows holding garbage must not move a real score
    sim2 = model(tokens, lengths, torch.cat([feat, 100 * torch.randn(2, extra, C)], 1),
                 torch.cat([pos, torch.rand(2, extra, model.pos_width)], 1),
                 torch.cat([valid, torch.zeros(2, extra, dtype=torch.bool)], 1))
    torch.testing.assert_close(sim2[:, :4][valid], sim[valid], atol=1e-5, rtol=1e-5)


def test_motion_term_moves_scores_only_through_the_motion_columns():
    # the same frame with two different track motions: only a motion head's scores change
    torch.manual_seed(0)
    tokens, lengths, feat, _, valid = inputs()
    for motion in (False, True):
        model = RetrievalHead(config=small("full", "none", motion=motion), vocab_size=V, feat_dim=C).eval()
        pos = torch.rand(2, 4, 10 + 9)
        moved = pos.clone()
        moved[..., 10:] = torch.randn(2, 4, 9)
        a, b = model(tokens, lengths, feat, pos, valid), model(tokens, lengths, feat, moved, valid)
        assert torch.allclose(a[valid], b[valid]) != motion


def test_object_encoder_and_relation_shapes():
    enc = ObjectEncoder(feat_dim=C, embed_dim=16, position="full")
    assert enc(torch.randn(2, 3, C), torch.rand(2, 3, 10)).shape == (2, 3, 16)
    f_V, valid = torch.randn(2, 3, 16), torch.ones(2, 3, dtype=torch.bool)
    assert VanillaRelation(16)(f_V, valid).shape == (2, 3, 16)
    assert TextGuidedRelation(16)(f_V, valid, torch.randn(2, 16)).shape == (2, 3, 16)
    assert GeometricTextRelation(16)(f_V, valid, torch.randn(2, 16), torch.rand(2, 3, 10)).shape == (2, 3, 16)
    assert pair_geometry(torch.rand(2, 3, 10)).shape == (2, 3, 3, 8)


def test_plain_top_down_pipeline_has_no_positional_or_relational_parameters():
    model = RetrievalHead(config=small("none", "none"), vocab_size=V, feat_dim=C)
    names = [n for n, _ in model.named_parameters()]
    assert model.objects.w_p is None and model.relation is None and model.text.rel_attn is None
    assert not any("w_p" in n or "relation" in n or "rel_" in n for n in names)
    tokens, lengths, feat, pos, valid = inputs()
    pos.requires_grad_(True)
    sim = model(tokens, lengths, feat, pos, valid)
    sim[valid].sum().backward()
    assert pos.grad is None or float(pos.grad.abs().sum()) == 0.0  # positions never enter the score
    other = model(tokens, lengths, feat, torch.rand_like(pos), valid)
    torch.testing.assert_close(sim.detach(), other.detach())


def test_absolute_position_reads_only_the_box_and_relative_only_the_ranks():
    tokens, lengths, feat, pos, valid = inputs()
    for position, changed in (("absolute", slice(8, 10)), ("relative", slice(0, 8))):
        torch.manual_seed(0)
        model = RetrievalHead(config=small(position, "none"), vocab_size=V, feat_dim=C)
        other = pos.clone()
        other[..., changed] = torch.rand_like(other[..., changed])
        torch.testing.assert_close(model(tokens, lengths, feat, pos, valid), model(tokens, lengths, feat, other, valid))
    torch.manual_seed(0)
    full = RetrievalHead(config=small("full", "none"), vocab_size=V, feat_dim=C)
    moved = pos.clone()
    moved[..., 8] = 1 - moved[..., 8]
    assert not torch.allclose(full(tokens, lengths, feat, pos, valid)[valid], full(tokens, lengths, feat, moved, valid)[valid])


@pytest.mark.parametrize("relation", ["none", "vanilla", "text", "text-linear", "text-geo"])
def test_padding_candidates_never_change_real_scores(relation):
    torch.manual_seed(0)
    model = RetrievalHead(config=small("full", relation), vocab_size=V, feat_dim=C).eval()
    tokens, lengths, feat, pos, valid = inputs()
    sim = model(tokens, lengths, feat, pos, valid)
    extra = 3  # append padded rows holding garbage: they must be ignored
    feat2 = torch.cat([feat, torch.randn(2, extra, C) * 100], 1)
    pos2 = torch.cat([pos, torch.rand(2, extra, 10)], 1)
    valid2 = torch.cat([valid, torch.zeros(2, extra, dtype=torch.bool)], 1)
    sim2 = model(tokens, lengths, feat2, pos2, valid2)
    torch.testing.assert_close(sim2[:, :4][valid], sim[valid], atol=1e-6, rtol=1e-5)
    assert torch.isinf(sim2[:, 4:]).all()


def test_tsrm_object_embeddings_depend_on_the_sentence_but_vanilla_ones_do_not():
    tokens, lengths, feat, pos, valid = inputs()
    tokens2 = torch.flip(tokens, dims=[1])
    lengths2 = torch.full_like(lengths, tokens.shape[1])
    for relation, depends in (("text", True), ("text-linear", True), ("text-geo", True), ("vanilla", False)):
        torch.manual_seed(0)
        model = RetrievalHead(config=small("full", relation), vocab_size=V, feat_dim=C)
        a = model.embed_objects(tokens, lengths, feat, pos, valid)
        b = model.embed_objects(tokens2, lengths2, feat, pos, valid)
        assert (not torch.allclose(a, b)) == depends


def test_masked_attention_hand_case_and_empty_frame():
    # one frame, two valid keys with equal logits (q = 0) and a padded third: output = mean of the valid values
    q = torch.zeros(1, 3, 2)
    k = torch.randn(1, 3, 2)
    v = torch.tensor([[[1.0, 0.0], [3.0, 2.0], [100.0, 100.0]]])
    valid = torch.tensor([[True, True, False]])
    out = masked_attention(q, k, v, valid)
    torch.testing.assert_close(out[0, 0], torch.tensor([2.0, 1.0]))
    empty = masked_attention(q, k, v, torch.zeros(1, 3, dtype=torch.bool))
    assert torch.equal(empty, torch.zeros_like(empty))  # no NaN from a frame without candidates


def test_head_config_rejects_unknown_choices():
    with pytest.raises(ValueError):
        HeadConfig(position="polar")


def test_dropout_acts_only_in_training_and_adds_no_parameters():
    # dropout layers own no weights, so the same seed builds identical weights, and eval mode is deterministic
    torch.manual_seed(0)
    plain = RetrievalHead(config=small("full", "text"), vocab_size=V, feat_dim=C)
    torch.manual_seed(0)
    dropped = RetrievalHead(config=small("full", "text", dropout=0.5), vocab_size=V, feat_dim=C)
    assert plain.state_dict().keys() == dropped.state_dict().keys()
    tokens, lengths, feat, pos, valid = inputs()
    plain.eval(), dropped.eval()
    torch.testing.assert_close(plain(tokens, lengths, feat, pos, valid), dropped(tokens, lengths, feat, pos, valid))
    dropped.train()
    a, b = dropped(tokens, lengths, feat, pos, valid), dropped(tokens, lengths, feat, pos, valid)
    assert not torch.equal(a[valid], b[valid])  # two training passes draw different masks


def test_linear_tsrm_attention_weights_do_not_depend_on_the_sentence():
    # Eq. 5 read literally is linear: f_k(m) = W_k A f_V(m) + W_k B f_t, and the f_t part adds one
    # number to every logit of a row, which softmax cancels; so the linear TSRM cannot use the
    # sentence to choose whom to attend to (the reason for the nonlinear `text` and for text-geo)
    torch.manual_seed(0)
    tsrm = TextGuidedRelation(16)
    f_V, valid = torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.bool)
    f_t1, f_t2 = torch.randn(2, 16), 10 * torch.randn(2, 16)
    torch.testing.assert_close(tsrm.attention(f_V, f_t1, valid), tsrm.attention(f_V, f_t2, valid), atol=1e-5, rtol=1e-4)
    # the same through forward: F_o = f_v + attn f_v with f_v = W_v(A f_V + B f_t) and rows of attn
    # summing to 1, so changing f_t moves every object's output by the same vector 2 W_v B (f_t1 - f_t2)
    delta = tsrm(f_V, valid, f_t1) - tsrm(f_V, valid, f_t2)  # (B, N, D)
    torch.testing.assert_close(delta, delta[:, :1].expand_as(delta), atol=1e-4, rtol=1e-4)


def test_tsrm_attention_weights_follow_the_sentence():
    # the nonlinear fusion ReLU(LayerNorm(W_o [f_V; f_t])) does not split into an object part plus a
    # sentence part, so the logits of a row no longer differ from another sentence's by one constant
    torch.manual_seed(0)
    tsrm = TextGuidedRelation(16, nonlinear=True)
    f_V, valid = torch.randn(2, 5, 16), torch.ones(2, 5, dtype=torch.bool)
    f_t1, f_t2 = torch.randn(2, 16), 10 * torch.randn(2, 16)
    assert not torch.allclose(tsrm.attention(f_V, f_t1, valid), tsrm.attention(f_V, f_t2, valid), atol=1e-3)
    delta = tsrm(f_V, valid, f_t1) - tsrm(f_V, valid, f_t2)
    assert not torch.allclose(delta, delta[:, :1].expand_as(delta), atol=1e-3)


def test_text_geo_attention_depends_on_the_sentence():
    torch.manual_seed(0)
    geo = GeometricTextRelation(16)
    f_V, pos, valid = torch.randn(1, 5, 16), torch.rand(1, 5, 10), torch.ones(1, 5, dtype=torch.bool)
    a1 = geo.attention(f_V, torch.randn(1, 16), valid, pos)
    a2 = geo.attention(f_V, 5 * torch.randn(1, 16), valid, pos)
    assert not torch.allclose(a1, a2, atol=1e-3)
    assert torch.equal(torch.diagonal(a1, dim1=1, dim2=2), torch.zeros(1, 5))  # never on itself
    # and the change reaches the outputs beyond a common shift (unlike the paper's TSRM above)
    delta = geo(f_V, valid, torch.randn(1, 16), pos) - geo(f_V, valid, 5 * torch.randn(1, 16), pos)
    assert not torch.allclose(delta, delta[:, :1].expand_as(delta), atol=1e-3)


def test_text_geo_candidate_alone_gets_no_context_and_never_attends_to_itself():
    torch.manual_seed(0)
    geo = GeometricTextRelation(16)
    f_V, f_t, pos = torch.randn(1, 3, 16), torch.randn(1, 16), torch.rand(1, 3, 10)
    # a frame holding one real candidate: no other object to look at, so F_o = W_s f_V exactly
    alone = torch.tensor([[True, False, False]])
    torch.testing.assert_close(geo(f_V, alone, f_t, pos)[0, 0], geo.w_s(f_V)[0, 0])
    # two candidates: each one's context is the other's value alone (softmax over one key = 1),
    # so changing candidate 0's own value-side input cannot change its context term
    two = torch.tensor([[True, True, False]])
    out = geo(f_V, two, f_t, pos)
    f_v = geo.w_v(geo.fuse(f_V, f_t))
    torch.testing.assert_close(out[0, 0], geo.w_s(f_V)[0, 0] + f_v[0, 1])
    torch.testing.assert_close(out[0, 1], geo.w_s(f_V)[0, 1] + f_v[0, 0])


def test_pair_geometry_hand_case():
    # frame-normalised boxes: n = [0.1, 0.1, 0.3, 0.3] (centre 0.2, 0.2; w = h = 0.2, scale 0.2),
    # m = [0.4, 0.1, 0.5, 0.5] (centre 0.45, 0.3; w 0.1, h 0.4): m lies 0.25 right and 0.1 below n,
    # the x gap is 0.4 - 0.3 = 0.1, the boxes overlap in y by 0.2 (gap -0.2)
    def p(x1, y1, x2, y2):
        return [x1, y1, x2, y2, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.0, 0.0]
    pos = torch.tensor([[p(0.1, 0.1, 0.3, 0.3), p(0.4, 0.1, 0.5, 0.5)]])
    g = pair_geometry(pos)[0, 0, 1]  # query n = 0, key m = 1
    expected = torch.tensor([0.25 / 0.2, 0.1 / 0.2, 0.1 / 0.2, -0.2 / 0.2, 0.25, 0.1,
                             float(torch.log(torch.tensor(0.101 / 0.201))), float(torch.log(torch.tensor(0.401 / 0.201)))])
    torch.testing.assert_close(g, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(pair_geometry(pos)[0, 0, 0, :6], torch.tensor([0.0, 0.0, -1.0, -1.0, 0.0, 0.0]))  # self: overlap = own size


def test_a_head_saved_as_text_before_the_nonlinear_tsrm_loads_as_text_linear():
    # checkpoints written when `text` meant the linear reading hold no fusion norm: they rebuild as
    # `text-linear` with the same weights and the same scores, instead of failing on missing keys
    from dataclasses import asdict

    from clawcrane.build.heads import head_from_payload
    from clawcrane.pipeline.language import PAD, UNK

    torch.manual_seed(0)
    old = RetrievalHead(config=small("full", "text-linear"), vocab_size=V, feat_dim=C).eval()
    payload = {"head_config": {**asdict(old.config), "relation": "text"}, "vocab": [PAD, UNK] + [f"w{i}" for i in range(V - 2)],
               "feat_dim": C, "model": old.state_dict()}
    model, config, _ = head_from_payload(payload)
    assert config.relation == "text-linear"
    args = inputs()
    torch.testing.assert_close(model(*args), old(*args))


def test_a_head_saved_before_ranks_and_motion_existed_loads_without_them():
    # its stored config has no `ranks` / `motion` fields; today's defaults (on) would ask for weights
    # and input columns the file never had, so the fields take the value the file was trained with
    from dataclasses import asdict

    from clawcrane.build.heads import head_from_payload
    from clawcrane.pipeline.language import PAD, UNK

    torch.manual_seed(0)
    old = RetrievalHead(config=small("full", "text-geo"), vocab_size=V, feat_dim=C).eval()
    stored = {k: v for k, v in asdict(old.config).items() if k not in ("ranks", "motion")}
    payload = {"head_config": stored, "vocab": [PAD, UNK] + [f"w{i}" for i in range(V - 2)], "feat_dim": C,
               "model": old.state_dict()}
    model, config, _ = head_from_payload(payload)
    assert (config.ranks, config.motion) == (False, False)
    args = inputs()
    torch.testing.assert_close(model(*args), old(*args))
