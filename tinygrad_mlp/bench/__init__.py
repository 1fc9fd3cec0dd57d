"""Question 3 (digits) side by side with scikit-learn, PyTorch and a hand-written loop, and its pictures."""
