"""Elastic-net regression of wine quality, tracked in MLflow (the seed's wine project, numpy only).

Runs inside the Job that mlops.mlflow_k8s.mlflow_project_job creates: MLFLOW_TRACKING_URI and
MLFLOW_RUN_ID come from the Job's environment, so metrics land on the run the module created.
Metrics go out with log_batch, a few hundred points per request, not one request per point.
"""

import argparse
import json
import os
import time

import mlflow
import numpy as np
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

BATCH = 500  # metric points per log_batch request (MLflow accepts up to 1000)


def load(path):
    data = np.genfromtxt(path, delimiter=";", names=True)
    columns = list(data.dtype.names)
    target = columns[-1]
    features = np.column_stack([data[c] for c in columns[:-1]])
    return features, data[target], columns[:-1]


def elastic_net(x, y, alpha, l1_ratio, epochs, on_epoch):
    """Proximal gradient descent on 1/2n |y - Xw - b|^2 + alpha (l1 |w|_1 + (1 - l1)/2 |w|^2)."""
    n, d = x.shape
    w = np.zeros(d)
    b = float(y.mean())
    step = n / (np.linalg.norm(x, 2) ** 2 + n * alpha * (1 - l1_ratio) + 1e-12)
    for epoch in range(epochs):
        residual = x @ w + b - y
        grad = x.T @ residual / n + alpha * (1 - l1_ratio) * w
        w = w - step * grad
        w = np.sign(w) * np.maximum(np.abs(w) - step * alpha * l1_ratio, 0.0)
        b -= step * residual.mean()
        on_epoch(epoch, float(np.sqrt(np.mean((x @ w + b - y) ** 2))))
    return w, b


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--l1-ratio", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--data", default="data/wine-quality-sample.csv")
    parser.add_argument("--tag", default="baseline")
    args = parser.parse_args()

    x, y, names = load(args.data)
    rng = np.random.default_rng(42)
    order = rng.permutation(len(y))
    split = int(len(y) * 0.75)
    train, test = order[:split], order[split:]
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-12
    x = (x - mean) / std

    with mlflow.start_run() as run:  # MLFLOW_RUN_ID from the Job: the module's run
        client = MlflowClient()
        run_id = run.info.run_id
        pending = []

        def flush():
            for start in range(0, len(pending), BATCH):
                client.log_batch(run_id, metrics=pending[start : start + BATCH])
            pending.clear()

        def on_epoch(epoch, rmse):
            pending.append(Metric("train_rmse", rmse, int(time.time() * 1000), epoch))
            if len(pending) >= BATCH:
                flush()

        w, b = elastic_net(x[train], y[train], args.alpha, args.l1_ratio, args.epochs, on_epoch)
        flush()
        predicted = x[test] @ w + b
        error = predicted - y[test]
        rmse = float(np.sqrt(np.mean(error**2)))
        mae = float(np.mean(np.abs(error)))
        r2 = float(1 - np.sum(error**2) / np.sum((y[test] - y[test].mean()) ** 2))
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in (("rmse", rmse), ("mae", mae), ("r2", r2))],
        )
        mlflow.set_tag("wine.tag", args.tag)
        mlflow.log_dict({"intercept": b, "coefficients": dict(zip(names, map(float, w), strict=True))}, "model.json")
        print(json.dumps({"run_id": run_id, "rmse": rmse, "mae": mae, "r2": r2}))
        if os.environ.get("WINE_FAIL_ON_RMSE") and rmse > float(os.environ["WINE_FAIL_ON_RMSE"]):
            raise SystemExit(f"rmse {rmse:.3f} above WINE_FAIL_ON_RMSE")


if __name__ == "__main__":
    main()
