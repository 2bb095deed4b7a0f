"""
======================
Regression with spikes
======================

:class:`~sklearn_snn.SurrogateSNNRegressor` reads a real value from the membrane of a leaky
output neuron. Here it predicts disease progression in sklearn's diabetes data set, next to a
ridge regression.
"""

# %%
import os
import warnings

import matplotlib.pyplot as plt
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from sklearn_snn import SurrogateSNNRegressor
from sklearn_snn.plotting import LossCurveDisplay

QUICK = os.environ.get("SKLEARN_SNN_QUICK") == "1"
warnings.filterwarnings("ignore", category=ConvergenceWarning)

X, y = load_diabetes(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)

# The target is standardised around the network (like any neural regressor, it prefers targets
# of order one). With 331 training samples the network overfits quickly: early stopping on a
# validation split keeps the weights of the best validation score.
snn = TransformedTargetRegressor(
    SurrogateSNNRegressor((32,), n_steps=8, readout="membrane_mean", max_iter=5 if QUICK else 150,
                          early_stopping=True, validation_fraction=0.2, random_state=0),
    transformer=StandardScaler(),
).fit(X_train, y_train)
ridge = RidgeCV().fit(X_train, y_train)
print(f"SNN   R^2 on test: {snn.score(X_test, y_test):.3f}")
print(f"ridge R^2 on test: {ridge.score(X_test, y_test):.3f}")

# %%
fig, ax = plt.subplots()
ax.scatter(y_test, snn.predict(X_test), s=10, label="SNN")
ax.scatter(y_test, ridge.predict(X_test), s=10, label="ridge")
ax.plot([y.min(), y.max()], [y.min(), y.max()], "k--", lw=1)
ax.set_xlabel("true value")
ax.set_ylabel("prediction")
ax.legend()
plt.show()

# %%
# Training loss and validation score (R^2) per epoch
LossCurveDisplay.from_estimator(snn.regressor_)
plt.show()
