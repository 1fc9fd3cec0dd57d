"""Grid search over hidden sizes and learning rates with tinygrad_mlp's scikit-learn estimator.

    python examples/grid_search.py            # about 10 s on a laptop core

The estimator is a drop-in for ``sklearn.neural_network.MLPClassifier``: it sits in a Pipeline
after a StandardScaler and GridSearchCV tunes it, with scikit-learn's parameter names.
"""
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tinygrad_mlp.training.estimators import MLPClassifier


def main() -> None:
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier(solver="adam", max_iter=20, random_state=0))])
    grid = {"mlp__hidden_layer_sizes": [(16,), (64,), (64, 32)],
            "mlp__learning_rate_init": [1e-3, 1e-2]}
    search = GridSearchCV(pipe, grid, cv=3, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 20 epochs is short on purpose
        search.fit(X_train, y_train)

    res = search.cv_results_
    print(f"{'hidden':>10} {'lr':>7} {'cv accuracy':>16} {'fit s':>6} {'rank':>4}")
    for i in sorted(range(len(res["params"])), key=lambda i: res["rank_test_score"][i]):
        p = res["params"][i]
        print(f"{str(p['mlp__hidden_layer_sizes']):>10} {p['mlp__learning_rate_init']:>7g} "
              f"{res['mean_test_score'][i]:>9.4f} ± {res['std_test_score'][i]:.4f} "
              f"{res['mean_fit_time'][i]:>6.2f} {res['rank_test_score'][i]:>4}")
    print(f"best params: {search.best_params_}")
    print(f"held-out accuracy of the refitted best pipeline: {search.score(X_test, y_test):.4f}")


if __name__ == "__main__":
    main()
