"""Exact ROC AUC and log loss in numpy (no thresholds, ties counted as half)."""

import numpy as np


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties 1/2.

    Args:
      labels: 0/1 values.
      scores: Any real scores (probabilities or logits), same length.

    Returns:
      The AUC as a float.

    Raises:
      ValueError: If the lengths differ, a label is not 0/1, or one class is absent.

    Example:
      >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
      0.75
      >>> roc_auc([0, 1], [0.5, 0.5])
      0.5
    """
    labels = np.asarray(labels, np.float64).ravel()
    scores = np.asarray(scores, np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"roc_auc: {labels.size} labels but {scores.size} scores")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("roc_auc: labels must be 0 or 1")
    positives = labels.sum()
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError(f"roc_auc: needs both classes, got {int(positives)} positives "
                         f"and {int(negatives)} negatives")
    # Mann-Whitney U with average ranks for tied scores.
    unique, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average_rank = ends - (counts - 1) / 2.0
    rank_sum = average_rank[inverse][labels == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def logloss(labels, probabilities, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy, with probabilities clipped to [eps, 1 - eps].

    Example:
      >>> round(logloss([1, 0], [0.5, 0.5]), 6)
      0.693147
    """
    labels = np.asarray(labels, np.float64).ravel()
    p = np.clip(np.asarray(probabilities, np.float64).ravel(), eps, 1.0 - eps)
    if labels.shape != p.shape:
        raise ValueError(f"logloss: {labels.size} labels but {p.size} probabilities")
    return float(-np.mean(labels * np.log(p) + (1.0 - labels) * np.log1p(-p)))
