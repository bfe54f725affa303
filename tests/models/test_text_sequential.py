"""The text-aware sequential models: adaptor shapes and save/load, the dual-view forward, the tail blend, transfer."""

from __future__ import annotations

import numpy as np
import torch

from longtail.core.config import RecommendConfig, SequentialConfig, TextSequentialConfig
from longtail.models.base import Recommender, TrainData, make_recommender
from longtail.models.sequential import AdaptedItemEmbedding, DualViewNetwork, MoEAdaptor, TailBlendSASRec, TextAdaptorSASRec

# two clusters of items, {0, 1, 2} and {3, 4, 5}, whose text vectors say so; item 6 (cluster one's text) is never bought
HISTORIES = [np.array(h) for h in ([0, 1, 2], [0, 1], [1, 2], [0, 2, 1], [3, 4, 5], [3, 4], [4, 5, 3], [5, 3], [0, 1, 2, 0])]
_RAW = np.array([[1, 0.1, 0], [1, 0, 0.1], [1, 0.05, 0.05], [0.1, 1, 0], [0, 1, 0.1], [0.05, 1, 0.05], [1, 0.02, 0.02]], dtype=np.float32)
VECTORS = _RAW / np.linalg.norm(_RAW, axis=1, keepdims=True)
SEQUENTIAL = SequentialConfig(hidden=8, epochs=30, max_len=5, dropout=0.0, lr=1e-2)
SEEN = np.array([True] * 6 + [False])


def _tiny() -> TrainData:
    return TrainData(7, HISTORIES, None, VECTORS, seed=3)


def test_adaptor_maps_text_vectors_to_the_model_width() -> None:
    adaptor = MoEAdaptor(text_dim=3, hidden=8, experts=4, dropout=0.0)
    out = adaptor(torch.as_tensor(VECTORS))
    assert out.shape == (7, 8)
    # with the gate at zero every expert has weight 1/4: the output is the mean of the experts' whitened projections
    experts = [(torch.as_tensor(VECTORS) - adaptor.bias[k]) @ adaptor.weight[:, k * 8 : (k + 1) * 8] for k in range(4)]
    torch.testing.assert_close(out, torch.stack(experts).mean(0))


def test_unseen_items_take_their_vector_from_text_alone() -> None:
    embedding = AdaptedItemEmbedding(VECTORS, 8, TextSequentialConfig(adaptor_dropout=0.0), SEEN)
    with torch.no_grad():
        embedding.ids.fill_(1.0)
    table, text = embedding(), embedding.text_table()
    assert table.shape == (8, 8) and not table[0].any()
    torch.testing.assert_close(table[7], text[7])
    torch.testing.assert_close(table[1:7], text[1:7] + 1.0)
    replace = AdaptedItemEmbedding(VECTORS, 8, TextSequentialConfig(id_embedding="replace"), SEEN)
    assert not hasattr(replace, "ids")


def test_adaptor_model_round_trips_through_its_folder(tmp_path) -> None:
    model = TextAdaptorSASRec(SEQUENTIAL.model_copy(update={"epochs": 3}), TextSequentialConfig(experts=2)).fit(_tiny())
    restored = Recommender.load(model.save(tmp_path / "adaptor"))
    assert isinstance(restored, TextAdaptorSASRec) and restored.text_config.experts == 2
    users = [np.array([0, 1]), np.array([4])]
    np.testing.assert_array_equal(restored.score(users), model.score(users))
    np.testing.assert_array_equal(restored.network_.state_dict()["items.text"].numpy(), VECTORS)


def test_dual_view_forward_concatenates_the_two_views() -> None:
    network = DualViewNetwork(VECTORS, SEEN, SEQUENTIAL, TextSequentialConfig())
    network.eval()
    table = network.table()
    assert table.shape == (8, 16)
    torch.testing.assert_close(table[:, :8], network.semantic.table())
    # item 6 (row 7) was never bought: its collaborative half is zero, its semantic half comes from text
    assert not table[7, 8:].any() and table[7, :8].any()
    batch = torch.tensor([[0, 1, 2], [4, 5, 6]])
    hidden = network(batch, table)
    assert hidden.shape == (2, 3, 16)
    torch.testing.assert_close(hidden[:, :, 8:], network.collaborative(batch, table[:, 8:]))


def test_dual_view_learns_the_clusters() -> None:
    model = make_recommender("sasrec-dual-view", RecommendConfig(sequential=SEQUENTIAL)).fit(_tiny())
    top = model.recommend([np.array([0, 1]), np.array([3, 4])], k=1)
    assert top[0, 0] in {2, 6} and top[1, 0] == 5


def test_tail_blend_scores_new_items_by_text_and_head_items_by_the_model() -> None:
    model = TailBlendSASRec(SEQUENTIAL, TextSequentialConfig(tail_popularity=1.0, tail_recent=2)).fit(_tiny())
    users = [np.array([0, 1, 2]), np.array([3, 4])]
    blended = model.score(users)
    full = TextAdaptorSASRec.score(model, users)
    # the text path: cosine to the recency-weighted (1/2, 1) mean of the last two items' text vectors
    queries = np.stack([0.5 * VECTORS[1] + VECTORS[2], 0.5 * VECTORS[3] + VECTORS[4]])
    text = (queries / np.linalg.norm(queries, axis=1, keepdims=True)) @ VECTORS.T

    def z(scores: np.ndarray) -> np.ndarray:
        return (scores - scores.mean(1, keepdims=True)) / scores.std(1, keepdims=True)

    # item 6 was never bought: weight exp(0) = 1 on text; item 0 was bought 5 times: weight exp(-5)
    np.testing.assert_allclose(blended[:, 6], z(text)[:, 6], rtol=1e-5)
    weight = float(np.exp(-5.0))
    np.testing.assert_allclose(blended[:, 0], (1 - weight) * z(full)[:, 0] + weight * z(text)[:, 0], rtol=1e-5)
    # the never-bought item reads like cluster one, so it is recommended to cluster one's user
    assert model.recommend(users[:1], k=1)[0, 0] == 6


def test_fit_from_moves_the_adaptor_and_encoder_but_not_the_catalogue(tmp_path) -> None:
    source = TextAdaptorSASRec(SEQUENTIAL.model_copy(update={"epochs": 2}), TextSequentialConfig()).fit(_tiny())
    other_vectors = VECTORS[::-1].copy()
    target = TextAdaptorSASRec(SEQUENTIAL.model_copy(update={"epochs": 1, "lr": 1e-9}), TextSequentialConfig())
    target.fit_from(source, TrainData(7, HISTORIES[:4], None, other_vectors, seed=3))
    assert "items.adaptor.weight" in target.transferred_ and "position" in target.transferred_
    assert not {"items.text", "items.ids"} & set(target.transferred_)
    np.testing.assert_array_equal(target.network_.state_dict()["items.text"].numpy(), other_vectors)
    # a near-zero learning rate leaves the copied weights where the source left them
    torch.testing.assert_close(target.network_.state_dict()["items.adaptor.weight"], source.network_.state_dict()["items.adaptor.weight"])
