"""Estimator classes of a user's own, named by path in ``training.model``."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression


class ReversedClassifier(ClassifierMixin, BaseEstimator):
    """A logistic regression that lists its classes (and probability columns) in reverse order.

    Consistent with itself -- column j of ``predict_proba`` is ``classes_[j]`` -- but not in the
    sorted order scikit-learn's own classifiers use.
    """

    def __init__(self, C: float = 1.0, random_state: int | None = None) -> None:
        self.C = C
        self.random_state = random_state

    def fit(self, x, y):
        self.inner_ = LogisticRegression(C=self.C, max_iter=2000).fit(x, y)
        self.classes_ = self.inner_.classes_[::-1].copy()
        return self

    def predict_proba(self, x):
        return np.asarray(self.inner_.predict_proba(x))[:, ::-1]

    def predict(self, x):
        return self.classes_[np.argmax(self.predict_proba(x), axis=1)]
