"""Published scaling laws by name, for planning without data (`ScalingLaw.from_published`).

Each entry is a law of this package with the parameters its paper reports, in
the paper's conventions (stated in `note`): loss in nats per token, N in
parameters, D in training tokens. They carry no bootstrap draws, so predictions
and plans from them have no intervals.
"""

PUBLISHED = {
    "hoffmann2022": {
        "law": "chinchilla",
        "params": {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28},
        "note": "Hoffmann et al. 2022 (Training Compute-Optimal LLMs), Approach 3, eq. (10); "
        "N counts all parameters; MassiveText loss",
    },
    "besiroglu2024": {
        "law": "chinchilla",
        "params": {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658},
        "note": "Besiroglu et al. 2024 (Chinchilla Scaling: A replication attempt), their refit "
        "of Approach 3 on Epoch's data extracted from Hoffmann et al.'s figure",
    },
    "kaplan2020": {
        "law": "kaplan",
        "params": {"alpha_N": 0.076, "alpha_D": 0.103, "N_c": 6.4e13, "D_c": 1.8e13},
        "note": "Kaplan et al. 2020 (Scaling Laws for Neural Language Models), Table 2: the fit "
        "of L(N, D), eq. (1.5); N counts non-embedding parameters; WebText2 loss",
    },
}
