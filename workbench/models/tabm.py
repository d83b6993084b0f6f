"""TabM (Gorishniy et al., ICLR 2025): k MLPs that share most of their weights (BatchEnsemble), trained at once.

The network is the authors' `tabm` package (TabM.make, with its defaults: 3 blocks of 512, dropout 0.1, k = 32, the
"tabm" architecture and its initialisation); categories go in as one-hot codes, as the package does. It outputs one
prediction per member, (batch, k, n_outputs): the Objective trains each member on its own (the mean of the members'
losses) and predicts with the mean of their predictions, probabilities for classification (see tasks.Objective).
"""

from __future__ import annotations

from dataclasses import dataclass

import rtdl_num_embeddings
import tabm
import torch
from torch import nn

from workbench.models.layers import ActivationSize
from workbench.models.params import LEARNING_RATE_HELP, NeuralParams, param

ARCHITECTURES = ("tabm", "tabm-mini")
NUMERIC_EMBEDDINGS = ("none", "periodic")
PERIODIC_FREQUENCIES, PERIODIC_SIZE = 48, 24  # rtdl_num_embeddings.PeriodicEmbeddings' defaults


@dataclass(frozen=True)
class TabMParams(NeuralParams):
    # The optimiser the authors give for the default TabM: AdamW, lr 2e-3, weight decay 3e-4 (README, "Default
    # optimizer").
    lr: float = param(2e-3, LEARNING_RATE_HELP, label="Learning rate", min=1e-6, max=1.0)
    weight_decay: float = param(3e-4, "L2 penalty that keeps weights small, against overfitting.",
                                label="Weight decay (L2)", advanced=True, min=0.0, max=1.0)
    k: int = param(32, "How many member networks train together; the prediction is their average. More members "
                   "are steadier but slower.", label="Ensemble members", min=1, max=128)
    width: int = param(512, "Neurons in each hidden layer of every member.", label="Layer width", min=1, max=8192)
    n_blocks: int = param(3, "How many hidden layers each member has.", label="Hidden layers", advanced=True, min=1,
                          max=16)
    dropout: float = param(0.1, "Share of neurons switched off at random while training, against overfitting.",
                           label="Dropout", advanced=True, min=0.0, max=0.9)
    architecture: str = param("tabm", "tabm: the members share weights but each scales every layer its own way "
                              "(the authors' default); tabm-mini: they differ only in how they scale the inputs, "
                              "faster and more regularised.", label="Architecture", advanced=True,
                              choices=ARCHITECTURES)
    numeric_embeddings: str = param("none", "periodic: each number becomes a small learned vector of sines and "
                                    "cosines before the layers; can help where a number's effect is irregular.",
                                    label="Number embeddings", advanced=True, choices=NUMERIC_EMBEDDINGS)


class TabM(nn.Module):
    def __init__(self, n_numeric: int, cardinalities: list[int], n_outputs: int, params: TabMParams):
        super().__init__()
        self.n_numeric, self.n_categorical = n_numeric, len(cardinalities)
        embeddings = None
        if params.numeric_embeddings == "periodic" and n_numeric:
            embeddings = rtdl_num_embeddings.PeriodicEmbeddings(n_numeric, PERIODIC_SIZE,
                                                                n_frequencies=PERIODIC_FREQUENCIES, lite=False)
        # TabM.make fills in the rest of the authors' defaults (the scaling initialisation follows the embeddings).
        self.network = tabm.TabM.make(n_num_features=n_numeric, cat_cardinalities=list(cardinalities),
                                      d_out=n_outputs, num_embeddings=embeddings, k=params.k, d_block=params.width,
                                      n_blocks=params.n_blocks, dropout=params.dropout,
                                      arch_type=params.architecture)
        self.d_in = (n_numeric * (PERIODIC_SIZE if embeddings is not None else 1)) + sum(cardinalities)
        self.k, self.width, self.n_blocks = params.k, params.width, params.n_blocks
        self.embedded = embeddings is not None

    def activation_size(self) -> ActivationSize:
        """Per member and hidden layer: the scaled input, the matmul and its scaled output, the ReLU and the dropout
        mask and output (about 5 widths); the first layer also holds the k scaled inputs, and the periodic
        embeddings their sines and cosines. The backward pass holds about two layers' gradients at once."""
        k, width = self.k, self.width
        embedding = self.n_numeric * (2 * PERIODIC_FREQUENCIES + 2 * PERIODIC_SIZE) if self.embedded else 0
        training = embedding + self.d_in * (1 + k) + k * (5 * width * self.n_blocks + 2 * width)
        return ActivationSize(training=training, inference=embedding + self.d_in * (1 + k) + 3 * k * width)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """(batch, k, n_outputs): every member's output."""
        return self.network(x_num if self.n_numeric else None, x_cat if self.n_categorical else None)
