"""Sequential recommendation: the SASRec network (`network.py`), its training loop (`trainer.py`), the recommender (`model.py`),
and the text-aware networks (`text_network.py`) and recommenders (`text_model.py`)."""

from longtail.models.sequential.model import SASRec
from longtail.models.sequential.network import ItemEmbedding, SASRecNetwork
from longtail.models.sequential.text_model import DualViewSASRec, TailBlendSASRec, TextAdaptorSASRec
from longtail.models.sequential.text_network import AdaptedItemEmbedding, DualViewNetwork, MoEAdaptor
from longtail.models.sequential.trainer import Trainer, sampling_log_probabilities

__all__ = [
    "AdaptedItemEmbedding",
    "DualViewNetwork",
    "DualViewSASRec",
    "ItemEmbedding",
    "MoEAdaptor",
    "SASRec",
    "SASRecNetwork",
    "TailBlendSASRec",
    "TextAdaptorSASRec",
    "Trainer",
    "sampling_log_probabilities",
]
