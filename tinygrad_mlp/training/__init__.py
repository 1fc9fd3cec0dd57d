"""The training loop and the scikit-learn estimators built on it."""
