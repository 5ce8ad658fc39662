-- One server, one database per concern: MLflow's tables (its own migrations), Optuna's
-- studies, and automl's state (ledger, history, scheduler jobs, lock) in `automl`.
CREATE DATABASE mlflow OWNER automl;
CREATE DATABASE optuna OWNER automl;
