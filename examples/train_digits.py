"""Train the practical's digits MLP (64-50-10, tanh, softmax) with per-example SGD.

Run: python examples/train_digits.py [EPOCHS]   (default 100, the practical's)
"""
import sys

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from tinygrad_mlp import MLP
from tinygrad_mlp.training.loop import accuracy, train

epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 100
digits = load_digits()
X_train, X_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.2, random_state=42)

model = MLP([64, 50, 10], hidden="tanh", output="softmax", seed=0)  # Glorot-uniform weights, zero biases
history = train(model, X_train, y_train, epochs=epochs, lr=0.001, seed=0,  # a new shuffle every epoch
                X_val=X_test, y_val=y_test, val_label="test acc", progress=True)

print(f"final training loss {history.loss[-1]:.4f} after {history.epochs} epochs "
      f"({history.us_per_step:.0f} µs per SGD step)")
print(f"train accuracy {accuracy(model, X_train, y_train):.4f}, test accuracy {accuracy(model, X_test, y_test):.4f}")
