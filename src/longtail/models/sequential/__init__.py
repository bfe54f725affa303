"""Sequential recommendation: the SASRec network (`network.py`), its training loop (`trainer.py`), the recommender (`model.py`)."""

from longtail.models.sequential.model import SASRec
from longtail.models.sequential.network import ItemEmbedding, SASRecNetwork
from longtail.models.sequential.trainer import Trainer, sampling_log_probabilities

__all__ = ["ItemEmbedding", "SASRec", "SASRecNetwork", "Trainer", "sampling_log_probabilities"]
