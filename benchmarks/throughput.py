"""1(a) Same MLP, same batch size, same epochs: our trainer vs the tutorial DataLoader loop, rows per second."""

from __future__ import annotations

import time

from benchmarks.common import Tutorial, best_of, build_mlp, make_data, mlp_params, ours, sync


def measure(device: str = "cpu", rows: int = 200_000, features: int = 50, batch_sizes=(256, 4096), epochs: int = 1,
            repeats: int = 5) -> dict:
    data = make_data(rows, features, "binary")
    defaults = mlp_params()
    results = {"rows": rows, "features": features, "epochs": epochs, "device": device, "model": "mlp defaults "
               f"(hidden {defaults.hidden_sizes}, {defaults.activation}, dropout {defaults.dropout}, number "
               f"embeddings {defaults.numeric_embeddings}), both loops", "ours": "workbench.training.fit (AdamW, grad clip 1.0, "
               "per-epoch validation)", "tutorial": "DataLoader(TensorDataset, shuffle=True) + Adam, per-epoch "
               "validation", "by_batch": {}}
    for batch_size in batch_sizes:
        params = mlp_params(batch_size=batch_size, epochs=epochs, patience=0)

        def run_tutorial(params=params, batch_size=batch_size) -> float:
            loop = Tutorial(data, build_mlp(features, params, device), batch_size, params.lr, device)
            started = time.perf_counter()
            for _ in range(epochs):
                loop.epoch()
                loop.validate()
            sync(device)
            return time.perf_counter() - started

        def run_ours(params=params) -> float:
            return ours(data, params, device)[2]

        best = best_of({"tutorial": run_tutorial, "ours": run_ours}, repeats)
        trained = rows * epochs
        results["by_batch"][str(batch_size)] = {
            "ours_rows_per_s": round(trained / best["ours"]), "tutorial_rows_per_s": round(trained / best["tutorial"]),
            "ours_s": round(best["ours"], 3), "tutorial_s": round(best["tutorial"], 3),
            "speedup": round(best["tutorial"] / best["ours"], 2),
        }
    return results
